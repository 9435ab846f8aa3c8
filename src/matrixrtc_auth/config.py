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
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from matrixrtc_auth.matrix.servername import InvalidServerName, parse_server_name

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
    }
)
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
    # Warnings found while parsing; logged once logging is set up.
    warnings: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Config:
        return _Parser(env).parse()

    def is_full_access(self, server_name: str) -> bool:
        if self.full_access_homeservers is None:
            return True
        return server_name.lower() in self.full_access_homeservers

    def describe(self) -> str:
        """The effective configuration as one log-friendly line, secrets masked."""
        full = (
            "*"
            if self.full_access_homeservers is None
            else ",".join(sorted(self.full_access_homeservers))
        )
        bind = f"{self.bind_host or '*'}:{self.bind_port}"
        return (
            f"livekit_url={self.livekit_url} livekit_key={self.livekit_key} "
            f"livekit_secret=*** credentials_from={self.credentials_source} bind={bind} "
            f"full_access_homeservers={full} skip_verify_tls={self.skip_verify_tls} "
            f"ssl_cert_file={self.ssl_cert_file or '-'} log_level={self.log_level}"
        )


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
        host, port = self.bind()
        return Config(
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
            warnings=tuple(self.warnings),
        )

    def check_unknown(self) -> None:
        for name in sorted(self.env):
            if name.startswith(_WATCHED_PREFIXES) and name not in KNOWN_VARIABLES:
                self.warnings.append(f"{name} is not a setting this version knows; ignored")

    def livekit_url(self) -> str:
        url = self.get("LIVEKIT_URL")
        if url is None:
            raise ConfigError("LIVEKIT_URL is required (the SFU's ws:// or wss:// URL)")
        parts = urlsplit(url)
        if parts.scheme not in ("ws", "wss", "http", "https") or not parts.hostname:
            raise ConfigError("LIVEKIT_URL must be a ws://, wss://, http:// or https:// URL")
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
            key, secret = clean_value(key), clean_value(secret)
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


def _split_bind(value: str) -> tuple[str | None, int]:
    match = _BIND_RE.fullmatch(value)
    if match is None:
        raise ConfigError("LIVEKIT_JWT_BIND must be host:port, :port or [ipv6]:port")
    host = match.group("v6") or match.group("host") or None
    return host, _port("LIVEKIT_JWT_BIND", match.group("port"))


def _port(name: str, value: str) -> int:
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise ConfigError(f"{name}: port must be a number from 1 to 65535")
    return int(value)
