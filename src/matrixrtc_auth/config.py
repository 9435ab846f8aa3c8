"""Service configuration: the environment, read once, cleaned and checked, into one object.

Everything the service can be told comes from environment variables with the
same names as the Go service operators know (PROTOCOL.md section 9).
``Config.from_env`` is a pure function of a mapping, so tests pass a dict and
the running service passes ``os.environ``; nothing else reads the environment.

Values are cleaned the way container tooling tends to mangle them (surrounding
whitespace, layers of quotes, HTML entities) before they are parsed. Every
problem raises ``ConfigError`` with one line that names the variable; the
message never contains a secret.
"""

from __future__ import annotations

import html
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from matrixrtc_auth.matrix.servername import InvalidServerName, parse_server_name
from matrixrtc_auth.verification import (
    VERIFICATION_VARIABLES,
    V2Settings,
    VerificationConfigError,
    parse_verification,
)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

SKIP_VERIFY_CONFIRMATION = "YES_I_KNOW_WHAT_I_AM_DOING"
DEFAULT_BIND = ":8080"

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
_LOG_LEVELS = {
    "debug": "DEBUG",
    "info": "INFO",
    "warn": "WARNING",
    "warning": "WARNING",
    "error": "ERROR",
}

# Variables this version understands; any other LIVEKIT_*/MATRIX_* variable gets a
# warning at start, because a typo in a security setting must not pass silently.
KNOWN_VARIABLES = frozenset(
    {
        "LIVEKIT_URL",
        "LIVEKIT_KEY",
        "LIVEKIT_KEY_FROM_FILE",
        "LIVEKIT_SECRET",
        "LIVEKIT_SECRET_FROM_FILE",
        "LIVEKIT_KEY_FILE",
        "LIVEKIT_JWT_BIND",
        "LIVEKIT_JWT_PORT",
        "LIVEKIT_FULL_ACCESS_HOMESERVERS",
        "LIVEKIT_LOCAL_HOMESERVERS",
        "LIVEKIT_INSECURE_SKIP_VERIFY_TLS",
        "LIVEKIT_LOG_LEVEL",
        "LIVEKIT_DEBUG",
        "LIVEKIT_ALLOWED_HOMESERVERS",
        "LIVEKIT_BLOCKED_HOMESERVERS",
        "LIVEKIT_BLOCK_RESTRICTED_HOMESERVERS",
        "LIVEKIT_BLOCK_SAME_DEVICE_DUPLICATE",
        "LIVEKIT_BLOCK_SAME_USER_MULTIPLE_DEVICES",
        "LIVEKIT_IS_PUBLIC_FACING",
        "LIVEKIT_REDIS_URL",
        "LIVEKIT_TRUSTED_PROXIES",
        "LIVEKIT_CS_API_URL_OVERRIDES",
        "LIVEKIT_METRICS_BIND",
        "LIVEKIT_LOG_FORMAT",
        "LIVEKIT_SANITY_CHECK_INTERVAL_SECONDS",
    }
)
DEFAULT_TRUSTED_PROXIES = "127.0.0.0/8,::1/128"
# HS256 keys shorter than the hash are weak (RFC 7518 section 3.2).
MIN_SECRET_BYTES = 32
_WATCHED_PREFIXES = ("LIVEKIT_", "MATRIX_")


class ConfigError(Exception):
    """A configuration problem that stops the service at start (one line, no secrets)."""


@dataclass(frozen=True)
class Config:
    """The effective configuration of one service process."""

    livekit_url: str
    livekit_key: str
    livekit_secret: str = field(repr=False)
    # Where key and secret came from, for the start-up line (never their values).
    credentials_source: str
    bind_host: str | None
    bind_port: int
    # None means "every homeserver has full access" (the seed's `*`).
    full_access_homeservers: frozenset[str] | None
    skip_verify_tls: bool = False
    ssl_cert_file: str | None = None
    log_level: str = "INFO"
    log_format: str = "text"  # or "json": one object per line
    # Where /metrics is served, on a listener of its own; None: not served.
    metrics_bind: tuple[str | None, int] | None = None
    # Access lists (section 5); empty means "no such list".
    allowed_homeservers: frozenset[str] = frozenset()
    blocked_homeservers: frozenset[str] = frozenset()
    block_restricted: bool = False
    # Duplicate session prevention (section 6).
    block_same_device: bool = False
    block_same_user_devices: bool = False
    # SSRF guard for outgoing calls to homeservers (section 7.1).
    public_facing: bool = False
    redis_url: str | None = field(default=None, repr=False)
    # Peers whose X-Forwarded-For / X-Real-IP / CF-Connecting-IP are believed.
    trusted_proxies: tuple[IPNetwork, ...] = ()
    # Delegated delayed leave events (section 8): client-server API base URLs by
    # server name (lower-cased), and the participant sanity check period (0 = off).
    cs_api_overrides: Mapping[str, str] = field(default_factory=dict)
    sanity_check_interval: float = 0.0
    # V2 verification (section 3.2): None means V1 for everyone.
    v2: V2Settings | None = None
    # Refuse homeservers whose TLS handshake staples no valid OCSP response.
    require_ocsp_staple: bool = False
    # Warnings found while parsing; logged once logging is set up.
    warnings: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Config:
        return _Parser(env).parse()

    def is_full_access(self, server_name: str) -> bool:
        if self.full_access_homeservers is None:
            return True
        return server_name.lower() in self.full_access_homeservers

    @property
    def tracks_identities(self) -> bool:
        """Whether issued identities must be remembered for duplicate checks."""
        return self.block_same_device or self.block_same_user_devices

    def describe(self) -> str:
        """The effective configuration as one log-friendly line, secrets masked."""
        full_access = self.full_access_homeservers
        full = "*" if full_access is None else _names(full_access)
        bind = f"{self.bind_host or '*'}:{self.bind_port}"
        redis = mask_url_password(self.redis_url) if self.redis_url else "-"
        proxies = ",".join(str(n) for n in self.trusted_proxies) or "-"
        return (
            f"livekit_url={self.livekit_url} livekit_key={self.livekit_key} "
            f"livekit_secret=*** credentials_from={self.credentials_source} bind={bind} "
            f"full_access_homeservers={full} "
            f"allowed_homeservers={_names(self.allowed_homeservers)} "
            f"blocked_homeservers={_names(self.blocked_homeservers)} "
            f"block_restricted={self.block_restricted} "
            f"block_same_device={self.block_same_device} "
            f"block_same_user_devices={self.block_same_user_devices} "
            f"public_facing={self.public_facing} redis={redis} trusted_proxies={proxies} "
            f"skip_verify_tls={self.skip_verify_tls} "
            f"ssl_cert_file={self.ssl_cert_file or '-'} log_level={self.log_level} "
            f"log_format={self.log_format} metrics_bind={_bind_text(self.metrics_bind)} "
            f"cs_api_overrides={','.join(sorted(self.cs_api_overrides)) or '-'} "
            f"sanity_check_interval={self.sanity_check_interval:g}s "
            f"require_ocsp_staple={self.require_ocsp_staple} "
            f"verification={'v2 ' + self.v2.describe() if self.v2 else 'v1'}"
        )


def _bind_text(bind: tuple[str | None, int] | None) -> str:
    if bind is None:
        return "-"
    host, port = bind
    return f"{host or '*'}:{port}"


def _names(servers: frozenset[str]) -> str:
    return ",".join(sorted(servers)) or "-"


def mask_url_password(url: str) -> str:
    """The URL with any password (user-info or ``password=`` query) replaced by ***."""
    parts = urlsplit(url)
    if parts.password is not None:
        host = parts.netloc.rsplit("@", 1)[1]
        parts = parts._replace(netloc=f"{parts.username or ''}:***@{host}")
    if parts.query:
        query = [
            (name, "***" if name.lower() in _SECRET_QUERY_NAMES else value)
            for name, value in parse_qsl(parts.query, keep_blank_values=True)
        ]
        parts = parts._replace(query=urlencode(query, safe="*"))
    masked = urlunsplit(parts)
    # urlunsplit drops the "//" of an empty authority (unix:///path); keep the form.
    if not parts.netloc and url.startswith(f"{parts.scheme}://"):
        masked = f"{parts.scheme}://{masked[len(parts.scheme) + 1 :]}"
    return masked


_SECRET_QUERY_NAMES = frozenset({"password", "username"})


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1].strip()
    return value


def clean_value(raw: str) -> str:
    """Undoes the usual damage: whitespace, newlines, matching quotes, HTML entities."""
    value = raw
    while True:
        before = value
        value = html.unescape(value.strip())
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        if value == before:
            return value


class _Parser:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.warnings: list[str] = []

    def get(self, name: str) -> str | None:
        raw = self.env.get(name)
        if raw is None:
            return None
        value = clean_value(raw)
        return value or None

    def boolean(self, name: str, default: bool = False) -> bool:
        value = self.get(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ConfigError(f"{name} must be true or false (also 1/0, yes/no, on/off)")

    def read_file(self, name: str, path: str) -> str:
        try:
            return Path(path).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "unreadable"
            raise ConfigError(f"{name}: cannot read {path}: {reason}") from None

    def parse(self) -> Config:
        self.check_unknown()
        url = self.livekit_url()
        key, secret, source = self.credentials()
        if len(secret.encode()) < MIN_SECRET_BYTES:
            self.warnings.append(
                f"the LiveKit API secret is shorter than {MIN_SECRET_BYTES} bytes; anyone who "
                "guesses it can mint tokens (fine for livekit-server --dev, not for production)"
            )
        host, port = self.bind()
        config = Config(
            livekit_url=url,
            livekit_key=key,
            livekit_secret=secret,
            credentials_source=source,
            bind_host=host,
            bind_port=port,
            full_access_homeservers=self.full_access(),
            skip_verify_tls=self.skip_verify(),
            ssl_cert_file=self.ssl_cert_file(),
            log_level=self.log_level(),
            log_format=self.log_format(),
            metrics_bind=self.metrics_bind(),
            allowed_homeservers=self.optional_list("LIVEKIT_ALLOWED_HOMESERVERS"),
            blocked_homeservers=self.optional_list("LIVEKIT_BLOCKED_HOMESERVERS"),
            block_restricted=self.boolean("LIVEKIT_BLOCK_RESTRICTED_HOMESERVERS"),
            block_same_device=self.boolean("LIVEKIT_BLOCK_SAME_DEVICE_DUPLICATE"),
            block_same_user_devices=self.boolean("LIVEKIT_BLOCK_SAME_USER_MULTIPLE_DEVICES"),
            public_facing=self.boolean("LIVEKIT_IS_PUBLIC_FACING"),
            redis_url=self.redis_url(),
            trusted_proxies=self.trusted_proxies(),
            cs_api_overrides=self.cs_api_overrides(),
            sanity_check_interval=self.non_negative_seconds(
                "LIVEKIT_SANITY_CHECK_INTERVAL_SECONDS"
            ),
            v2=self.verification(),
            require_ocsp_staple=self.boolean("REQUIRE_OCSP_STAPLE"),
        )
        check_access_lists(config, self.warnings)
        if config.redis_url is None:
            self.warnings.append(
                "LIVEKIT_REDIS_URL is not set: delegated leave events (and issued identities) "
                "live in memory only and are forgotten when the service restarts"
            )
        return replace(config, warnings=tuple(self.warnings))

    def verification(self) -> V2Settings | None:
        try:
            return parse_verification(self)
        except VerificationConfigError as exc:
            raise ConfigError(str(exc)) from None

    def optional_list(self, name: str) -> frozenset[str]:
        value = self.get(name)
        if value is None:
            return frozenset()
        servers = parse_server_list(name, value)
        if "*" in servers:
            raise ConfigError(f"{name}: '*' is not allowed here; name the servers")
        return servers

    def redis_url(self) -> str | None:
        url = self.get("LIVEKIT_REDIS_URL")
        if url is None:
            return None
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss", "unix") or not (parts.hostname or parts.path):
            raise ConfigError("LIVEKIT_REDIS_URL must be a redis://, rediss:// or unix:// URL")
        _check_port("LIVEKIT_REDIS_URL", url)
        return url

    def log_format(self) -> str:
        value = (self.get("LIVEKIT_LOG_FORMAT") or "text").lower()
        if value not in ("text", "json"):
            raise ConfigError("LIVEKIT_LOG_FORMAT must be text or json")
        return value

    def metrics_bind(self) -> tuple[str | None, int] | None:
        value = self.get("LIVEKIT_METRICS_BIND")
        return None if value is None else _split_bind(value, "LIVEKIT_METRICS_BIND")

    def cs_api_overrides(self) -> dict[str, str]:
        name = "LIVEKIT_CS_API_URL_OVERRIDES"
        value = self.get(name)
        overrides: dict[str, str] = {}
        if value is None:
            return overrides
        for item in value.split(","):
            entry = clean_value(item)
            if not entry:
                continue
            server, sep, url = entry.partition("=")
            server, url = clean_value(server), clean_value(url)
            if not sep or not server or not url:
                raise ConfigError(f"{name}: entries are server=url, got {entry!r}")
            try:
                parse_server_name(server)
            except InvalidServerName:
                raise ConfigError(f"{name}: {server!r} is not a valid server name") from None
            if "://" not in url:
                url = f"https://{url}"
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigError(f"{name}: {url!r} is not an http(s) URL")
            overrides[server.lower()] = url.rstrip("/")
        return overrides

    def non_negative_seconds(self, name: str) -> float:
        value = self.get(name)
        if value is None:
            return 0.0
        try:
            seconds = float(value)
        except ValueError:
            raise ConfigError(f"{name} must be a number of seconds") from None
        if not seconds >= 0 or seconds == float("inf"):
            raise ConfigError(f"{name} must be 0 (off) or a positive number of seconds")
        return seconds

    def trusted_proxies(self) -> tuple[IPNetwork, ...]:
        value = self.get("LIVEKIT_TRUSTED_PROXIES")
        if value is None:
            value = DEFAULT_TRUSTED_PROXIES
        networks: list[IPNetwork] = []
        for item in value.split(","):
            entry = clean_value(item)
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                raise ConfigError(
                    f"LIVEKIT_TRUSTED_PROXIES: {entry!r} is not an IP address or network"
                ) from None
        return tuple(networks)

    def check_unknown(self) -> None:
        for name in sorted(self.env):
            known = name in KNOWN_VARIABLES or name in VERIFICATION_VARIABLES
            if name.startswith(_WATCHED_PREFIXES) and not known:
                self.warnings.append(f"{name} is not a setting this version knows; ignored")

    def livekit_url(self) -> str:
        url = self.get("LIVEKIT_URL")
        if url is None:
            raise ConfigError("LIVEKIT_URL is required (the SFU's ws:// or wss:// URL)")
        parts = urlsplit(url)
        if parts.scheme not in ("ws", "wss", "http", "https") or not parts.hostname:
            raise ConfigError("LIVEKIT_URL must be a ws://, wss://, http:// or https:// URL")
        _check_port("LIVEKIT_URL", url)
        return url

    def credentials(self) -> tuple[str, str, str]:
        key_file = self.get("LIVEKIT_KEY_FILE")
        if key_file is not None:
            for other in (
                "LIVEKIT_KEY",
                "LIVEKIT_SECRET",
                "LIVEKIT_KEY_FROM_FILE",
                "LIVEKIT_SECRET_FROM_FILE",
            ):
                if self.get(other) is not None:
                    self.warnings.append(f"{other} is ignored because LIVEKIT_KEY_FILE is set")
            key, secret = self.key_file(key_file)
            return key, secret, f"LIVEKIT_KEY_FILE {key_file}"
        key, key_from = self.one_secret("LIVEKIT_KEY")
        secret, secret_from = self.one_secret("LIVEKIT_SECRET")
        return key, secret, f"{key_from}+{secret_from}"

    def one_secret(self, name: str) -> tuple[str, str]:
        file_var = f"{name}_FROM_FILE"
        path = self.get(file_var)
        if path is not None:
            if self.get(name) is not None:
                self.warnings.append(f"{name} is ignored because {file_var} is set")
            value = self.read_file(file_var, path)
            if not value:
                raise ConfigError(f"{file_var}: {path} is empty")
            return value, file_var
        direct = self.get(name)
        if direct is None:
            raise ConfigError(
                f"{name} is required (or {file_var}, or LIVEKIT_KEY_FILE with 'key: secret')"
            )
        return direct, name

    def key_file(self, path: str) -> tuple[str, str]:
        for line in self.read_file("LIVEKIT_KEY_FILE", path).splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            key, sep, secret = line.partition(":")
            # The file is YAML-like: quotes may wrap a value; nothing else is undone
            # (a secret may well contain "&amp;").
            key, secret = _unquote(key.strip()), _unquote(secret.strip())
            if not sep or not key or not secret:
                break
            return key, secret
        raise ConfigError(f"LIVEKIT_KEY_FILE: {path} must hold a line 'key: secret'")

    def bind(self) -> tuple[str | None, int]:
        bind = self.get("LIVEKIT_JWT_BIND")
        port = self.get("LIVEKIT_JWT_PORT")
        if bind is not None and port is not None:
            raise ConfigError(
                "LIVEKIT_JWT_BIND and LIVEKIT_JWT_PORT are both set; keep only "
                "LIVEKIT_JWT_BIND (host:port)"
            )
        if port is not None:
            self.warnings.append("LIVEKIT_JWT_PORT is deprecated; use LIVEKIT_JWT_BIND=:PORT")
            return None, _port("LIVEKIT_JWT_PORT", port)
        return _split_bind(bind or DEFAULT_BIND)

    def full_access(self) -> frozenset[str] | None:
        value = self.get("LIVEKIT_FULL_ACCESS_HOMESERVERS")
        name = "LIVEKIT_FULL_ACCESS_HOMESERVERS"
        legacy = self.get("LIVEKIT_LOCAL_HOMESERVERS")
        if legacy is not None:
            if value is None:
                self.warnings.append(
                    "LIVEKIT_LOCAL_HOMESERVERS is deprecated; rename it to "
                    "LIVEKIT_FULL_ACCESS_HOMESERVERS"
                )
                value, name = legacy, "LIVEKIT_LOCAL_HOMESERVERS"
            else:
                self.warnings.append(
                    "LIVEKIT_LOCAL_HOMESERVERS is ignored because "
                    "LIVEKIT_FULL_ACCESS_HOMESERVERS is set"
                )
        if value is None:
            self.warnings.append(
                "LIVEKIT_FULL_ACCESS_HOMESERVERS is not set: users of EVERY "
                "homeserver may create LiveKit rooms (default '*')"
            )
            return None
        servers = parse_server_list(name, value)
        if "*" in servers:
            if len(servers) > 1:
                raise ConfigError(f"{name}: '*' must stand alone")
            return None
        return servers

    def skip_verify(self) -> bool:
        value = self.get("LIVEKIT_INSECURE_SKIP_VERIFY_TLS")
        if value is None:
            return False
        if value == SKIP_VERIFY_CONFIRMATION:
            return True
        self.warnings.append(
            "LIVEKIT_INSECURE_SKIP_VERIFY_TLS is set but not to "
            f"{SKIP_VERIFY_CONFIRMATION}; TLS verification stays ON"
        )
        return False

    def ssl_cert_file(self) -> str | None:
        path = self.get("SSL_CERT_FILE")
        if path is not None and not Path(path).is_file():
            raise ConfigError(f"SSL_CERT_FILE: {path} is not a readable file")
        return path

    def log_level(self) -> str:
        if self.boolean("LIVEKIT_DEBUG"):
            return "DEBUG"
        value = self.get("LIVEKIT_LOG_LEVEL")
        if value is None:
            return "INFO"
        try:
            return _LOG_LEVELS[value.lower()]
        except KeyError:
            raise ConfigError("LIVEKIT_LOG_LEVEL must be debug, info, warn or error") from None


def listen_address(env: Mapping[str, str]) -> tuple[str | None, int]:
    """The (host, port) the service listens on, from the environment alone."""
    return _Parser(env).bind()


def check_access_lists(config: Config, warnings: list[str]) -> None:
    """The start-up refusals and warnings of section 5, each naming the way out."""
    allowed, blocked = config.allowed_homeservers, config.blocked_homeservers
    full = config.full_access_homeservers
    both = allowed & blocked
    if both:
        raise ConfigError(
            f"LIVEKIT_ALLOWED_HOMESERVERS and LIVEKIT_BLOCKED_HOMESERVERS both name "
            f"{_names(both)}; remove them from one list (with an allow list, servers not on "
            "it are refused anyway, so the block list can usually go)"
        )
    full_and_blocked = (full or frozenset()) & blocked
    if full_and_blocked:
        raise ConfigError(
            f"LIVEKIT_FULL_ACCESS_HOMESERVERS and LIVEKIT_BLOCKED_HOMESERVERS both name "
            f"{_names(full_and_blocked)}; remove them from one of the two lists"
        )
    if config.block_restricted and full is not None:
        restricted_allowed = allowed - full
        if restricted_allowed:
            raise ConfigError(
                "LIVEKIT_BLOCK_RESTRICTED_HOMESERVERS=true refuses every server not in "
                "LIVEKIT_FULL_ACCESS_HOMESERVERS, but LIVEKIT_ALLOWED_HOMESERVERS also names "
                f"{_names(restricted_allowed)}; add them to LIVEKIT_FULL_ACCESS_HOMESERVERS, "
                "remove them from the allow list, or set "
                "LIVEKIT_BLOCK_RESTRICTED_HOMESERVERS=false"
            )
    if blocked and allowed:
        warnings.append(
            "LIVEKIT_BLOCKED_HOMESERVERS has no effect next to LIVEKIT_ALLOWED_HOMESERVERS: "
            "only allowed servers get in; drop the block list"
        )
    elif blocked and config.block_restricted:
        warnings.append(
            "LIVEKIT_BLOCKED_HOMESERVERS has no effect with "
            "LIVEKIT_BLOCK_RESTRICTED_HOMESERVERS=true: only full-access servers get in"
        )
    if config.block_restricted and full is None:
        warnings.append(
            "LIVEKIT_BLOCK_RESTRICTED_HOMESERVERS=true has no effect while every homeserver "
            "has full access (LIVEKIT_FULL_ACCESS_HOMESERVERS is '*')"
        )


def parse_server_list(name: str, value: str) -> frozenset[str]:
    """A comma-separated list of server names (or `*`), each checked, lower-cased."""
    servers: set[str] = set()
    for item in value.split(","):
        entry = clean_value(item)
        if not entry:
            continue
        if entry != "*":
            try:
                parse_server_name(entry)
            except InvalidServerName:
                raise ConfigError(f"{name}: {entry!r} is not a valid server name") from None
        servers.add(entry.lower())
    if not servers:
        raise ConfigError(f"{name} is set but names no homeserver")
    return frozenset(servers)


_BIND_RE = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:\[\]]*)):(?P<port>[^:]+)$")


def _split_bind(value: str, name: str = "LIVEKIT_JWT_BIND") -> tuple[str | None, int]:
    match = _BIND_RE.fullmatch(value)
    if match is None:
        raise ConfigError(f"{name} must be host:port, :port or [ipv6]:port")
    host = match.group("v6") or match.group("host") or None
    return host, _port(name, match.group("port"))


def _check_port(name: str, url: str) -> None:
    try:
        urlsplit(url).port  # noqa: B018 - reading it validates it
    except ValueError:
        raise ConfigError(f"{name}: the port must be a number from 1 to 65535") from None


def _port(name: str, value: str) -> int:
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise ConfigError(f"{name}: port must be a number from 1 to 65535")
    return int(value)
