"""Configuration parsing: defaults, cleaning, files, deprecations and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from matrixrtc_auth.config import Config, ConfigError, clean_value, mask_url_password

BASE = {"LIVEKIT_URL": "wss://sfu.example.com", "LIVEKIT_KEY": "key", "LIVEKIT_SECRET": "s3cret"}


def parse(**env: str) -> Config:
    return Config.from_env({**BASE, **env})


def test_minimal_environment_gives_documented_defaults() -> None:
    config = Config.from_env(BASE)
    assert config.livekit_url == "wss://sfu.example.com"
    assert (config.livekit_key, config.livekit_secret) == ("key", "s3cret")
    assert (config.bind_host, config.bind_port) == (None, 8080)
    assert config.full_access_homeservers is None
    assert config.is_full_access("anything.example")
    assert not config.skip_verify_tls
    assert config.log_level == "INFO"
    assert any("EVERY homeserver" in w for w in config.warnings)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("  value \n", "value"),
        ('"value"', "value"),
        ("'\"value\"'", "value"),
        ("&quot;value&quot;", "value"),
        (' " value " ', "value"),
        ("va'lue", "va'lue"),
        ('"unbalanced', '"unbalanced'),
    ],
)
def test_values_are_cleaned_of_container_damage(raw: str, clean: str) -> None:
    assert clean_value(raw) == clean


def test_cleaned_values_reach_the_config() -> None:
    config = parse(LIVEKIT_KEY='"key"\n', LIVEKIT_SECRET="&quot;s3cret&quot;")
    assert (config.livekit_key, config.livekit_secret) == ("key", "s3cret")


@pytest.mark.parametrize("missing", ["LIVEKIT_URL", "LIVEKIT_KEY", "LIVEKIT_SECRET"])
def test_missing_required_variable_is_named(missing: str) -> None:
    env = {k: v for k, v in BASE.items() if k != missing}
    with pytest.raises(ConfigError, match=missing):
        Config.from_env(env)


def test_empty_value_counts_as_missing() -> None:
    with pytest.raises(ConfigError, match="LIVEKIT_SECRET"):
        parse(LIVEKIT_SECRET="  ")


@pytest.mark.parametrize("url", ["sfu.example.com", "ftp://sfu.example.com", "wss://"])
def test_livekit_url_must_be_a_websocket_or_http_url(url: str) -> None:
    with pytest.raises(ConfigError, match="LIVEKIT_URL"):
        parse(LIVEKIT_URL=url)


def test_secret_from_file_is_trimmed(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("from-file\n\n")
    config = parse(LIVEKIT_SECRET_FROM_FILE=str(secret_file))
    assert config.livekit_secret == "from-file"
    assert "LIVEKIT_SECRET_FROM_FILE" in config.credentials_source
    assert any("LIVEKIT_SECRET is ignored" in w for w in config.warnings)


def test_unreadable_secret_file_names_variable_not_content(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="LIVEKIT_KEY_FROM_FILE") as info:
        parse(LIVEKIT_KEY_FROM_FILE=str(tmp_path / "absent"))
    assert "No such file" in str(info.value)


def test_key_file_takes_precedence(tmp_path: Path) -> None:
    key_file = tmp_path / "keys.yaml"
    key_file.write_text("# LiveKit keys\nfilekey: filesecret\n")
    config = parse(LIVEKIT_KEY_FILE=str(key_file))
    assert (config.livekit_key, config.livekit_secret) == ("filekey", "filesecret")
    assert "filesecret" not in repr(config)


def test_key_file_without_pair_is_refused(tmp_path: Path) -> None:
    key_file = tmp_path / "keys.yaml"
    key_file.write_text("just-a-key\n")
    with pytest.raises(ConfigError, match="LIVEKIT_KEY_FILE"):
        parse(LIVEKIT_KEY_FILE=str(key_file))


@pytest.mark.parametrize(
    ("bind", "host", "port"),
    [(":9000", None, 9000), ("127.0.0.1:9001", "127.0.0.1", 9001), ("[::1]:9002", "::1", 9002)],
)
def test_bind_forms(bind: str, host: str | None, port: int) -> None:
    config = parse(LIVEKIT_JWT_BIND=bind)
    assert (config.bind_host, config.bind_port) == (host, port)


@pytest.mark.parametrize("bind", ["9000", "host:", "host:0", "host:70000", "a:b:c"])
def test_bad_bind_is_refused(bind: str) -> None:
    with pytest.raises(ConfigError, match="LIVEKIT_JWT_BIND"):
        parse(LIVEKIT_JWT_BIND=bind)


def test_deprecated_port_works_with_warning() -> None:
    config = parse(LIVEKIT_JWT_PORT="6080")
    assert (config.bind_host, config.bind_port) == (None, 6080)
    assert any("LIVEKIT_JWT_PORT is deprecated" in w for w in config.warnings)


def test_bind_and_port_together_are_refused() -> None:
    with pytest.raises(ConfigError, match="LIVEKIT_JWT_BIND and LIVEKIT_JWT_PORT"):
        parse(LIVEKIT_JWT_BIND=":1", LIVEKIT_JWT_PORT="2")


def test_full_access_list_is_trimmed_and_checked() -> None:
    config = parse(LIVEKIT_FULL_ACCESS_HOMESERVERS=" example.com , Other.org:8448 ,")
    assert config.full_access_homeservers == frozenset({"example.com", "other.org:8448"})
    assert config.is_full_access("EXAMPLE.com")
    assert not config.is_full_access("evil.com")
    assert not any("EVERY homeserver" in w for w in config.warnings)


def test_full_access_star_means_everyone() -> None:
    assert parse(LIVEKIT_FULL_ACCESS_HOMESERVERS="*").full_access_homeservers is None


@pytest.mark.parametrize("value", ["*,example.com", "exa mple.com", "evil.com/path"])
def test_bad_full_access_entries_are_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="LIVEKIT_FULL_ACCESS_HOMESERVERS"):
        parse(LIVEKIT_FULL_ACCESS_HOMESERVERS=value)


def test_local_homeservers_is_a_deprecated_alias() -> None:
    config = parse(LIVEKIT_LOCAL_HOMESERVERS="example.com")
    assert config.full_access_homeservers == frozenset({"example.com"})
    assert any("deprecated" in w for w in config.warnings)


def test_skip_verify_needs_the_exact_confirmation() -> None:
    assert parse(LIVEKIT_INSECURE_SKIP_VERIFY_TLS="YES_I_KNOW_WHAT_I_AM_DOING").skip_verify_tls
    config = parse(LIVEKIT_INSECURE_SKIP_VERIFY_TLS="true")
    assert not config.skip_verify_tls
    assert any("stays ON" in w for w in config.warnings)


@pytest.mark.parametrize(
    ("value", "level"),
    [("debug", "DEBUG"), ("WARN", "WARNING"), ("warning", "WARNING"), ("error", "ERROR")],
)
def test_log_levels(value: str, level: str) -> None:
    assert parse(LIVEKIT_LOG_LEVEL=value).log_level == level


@pytest.mark.parametrize("value", ["true", "1", "YES", "On"])
def test_debug_switch_accepts_boolean_spellings(value: str) -> None:
    assert parse(LIVEKIT_DEBUG=value).log_level == "DEBUG"


def test_bad_boolean_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="LIVEKIT_DEBUG"):
        parse(LIVEKIT_DEBUG="maybe")


def test_bad_log_level_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="LIVEKIT_LOG_LEVEL"):
        parse(LIVEKIT_LOG_LEVEL="loud")


def test_ssl_cert_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="SSL_CERT_FILE"):
        parse(SSL_CERT_FILE=str(tmp_path / "missing.pem"))


def test_unknown_variables_are_warned_about() -> None:
    config = parse(LIVEKIT_FULL_ACESS_HOMESERVERS="typo.example")
    assert any("LIVEKIT_FULL_ACESS_HOMESERVERS" in w for w in config.warnings)


def test_description_masks_the_secret() -> None:
    config = parse(LIVEKIT_SECRET="very-secret-value")
    assert "very-secret-value" not in config.describe()
    assert "very-secret-value" not in repr(config)
    assert "livekit_secret=***" in config.describe()


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://:hunter2@redis:6379/0", "redis://:***@redis:6379/0"),
        ("redis://user:hunter2@redis/0", "redis://user:***@redis/0"),
        ("redis://redis/0?password=hunter2&db=1", "redis://redis/0?password=***&db=1"),
        ("unix:///run/redis.sock?password=hunter2", "unix:///run/redis.sock?password=***"),
        ("redis://redis:6379/0", "redis://redis:6379/0"),
    ],
)
def test_redis_passwords_are_masked_for_logs(url: str, masked: str) -> None:
    assert mask_url_password(url) == masked
    assert "hunter2" not in parse(LIVEKIT_REDIS_URL=url).describe()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LIVEKIT_REDIS_URL", "redis://redis:abc/0"),
        ("LIVEKIT_REDIS_URL", "redis://r:99999/0"),
        ("LIVEKIT_URL", "wss://sfu.example.com:99999"),
    ],
)
def test_urls_with_bad_ports_are_refused_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        parse(**{name: value})
