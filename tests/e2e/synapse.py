"""A real Synapse homeserver on loopback for end-to-end tests, and a small client for it.

``SynapseServer`` writes a complete ``homeserver.yaml`` into a temporary
directory and runs ``python -m synapse.app.homeserver`` with the interpreter of
the separate Synapse virtual environment. It listens on two loopback ports:

* a plain HTTP listener with the ``client`` resource (``client_url``), used by
  tests to register users, ask for OpenID tokens and create rooms;
* a TLS listener with the ``federation`` resource (``federation_url``), whose
  certificate for ``localhost`` / ``127.0.0.1`` is issued by the ``test_ca`` fixture's
  CA; the service under test verifies OpenID tokens against it.

The server name is ``localhost:<federation port>``, so Matrix server discovery
of that name (hostname with explicit port) leads straight to the TLS listener.
Synapse is told to contact nothing else: no trusted key servers, no stats
reporting, no URL previews, and outbound federation is limited to itself.

``SynapseClient`` speaks the client-server API with the standard library only,
so it can be used from synchronous and asynchronous tests alike.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from tests.support.ports import free_port
from tests.support.tls import TestCA

JsonDict = dict[str, Any]

SYNAPSE_PYTHON_ENV = "MATRIXRTC_TEST_SYNAPSE_PYTHON"
"""Environment variable naming the Python interpreter that has Synapse installed."""

_REPO_ROOT = Path(__file__).resolve().parents[2]

# Only what Synapse needs to run; proxy variables are left out on purpose so
# that nothing Synapse does can be routed towards another host.
_INHERITED_ENV = ("PATH", "LANG", "LC_ALL", "HOME", "TMPDIR")

# Rate limits high enough that test loops never hit them.
_GENEROUS = {"per_second": 1000, "burst_count": 10000}


class SynapseStartError(RuntimeError):
    """Synapse could not be configured or did not come up in time."""


class MatrixRequestError(RuntimeError):
    """A homeserver answered a request with a status other than the one expected."""

    def __init__(self, method: str, url: str, status: int, body: JsonDict | str) -> None:
        super().__init__(f"{method} {url} answered {status}: {body}")
        self.status = status
        self.body = body


@dataclass(frozen=True)
class SynapseUser:
    """A user registered on the test homeserver, logged in with one device."""

    user_id: str
    access_token: str
    device_id: str
    password: str

    @property
    def localpart(self) -> str:
        return self.user_id[1:].split(":", 1)[0]


def synapse_python() -> Path:
    """The interpreter to run Synapse with: ``$MATRIXRTC_TEST_SYNAPSE_PYTHON`` or the repo venv."""
    configured = os.environ.get(SYNAPSE_PYTHON_ENV)
    default = _REPO_ROOT / ".venv" / "synapse" / "bin" / "python"
    python = Path(configured) if configured else default
    if not python.is_file():
        source = f"${SYNAPSE_PYTHON_ENV}" if configured else "the default location"
        raise SynapseStartError(
            f"no Python interpreter for Synapse at {python} (from {source}); "
            "run `make install-test` to create .venv/synapse, or point "
            f"{SYNAPSE_PYTHON_ENV} at a Python that has matrix-synapse installed"
        )
    return python


def http_json(
    method: str,
    url: str,
    body: JsonDict | None = None,
    *,
    access_token: str | None = None,
    context: ssl.SSLContext | None = None,
    timeout: float = 10.0,
) -> tuple[int, JsonDict | str]:
    """Sends one request; returns the status and the JSON body (or raw text if not JSON)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if access_token is not None:
        request.add_header("Authorization", f"Bearer {access_token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            status, raw = int(response.status), response.read()
    except urllib.error.HTTPError as error:
        with error:
            status, raw = int(error.code), error.read()
    text = raw.decode("utf-8", errors="replace")
    try:
        parsed = json.loads(text)
    except ValueError:
        return status, text
    return status, parsed if isinstance(parsed, dict) else text


def _state_path(room_id: str, event_type: str, state_key: str) -> str:
    quoted = [urllib.parse.quote(part, safe="") for part in (room_id, event_type, state_key)]
    return "/_matrix/client/v3/rooms/{}/state/{}/{}".format(*quoted)


class SynapseClient:
    """Client-server API calls the tests need, against one ``SynapseServer``."""

    def __init__(self, server: SynapseServer) -> None:
        self.server = server

    def request(
        self,
        method: str,
        path: str,
        body: JsonDict | None = None,
        *,
        access_token: str | None = None,
        expect: int | None = 200,
    ) -> JsonDict:
        """Calls the client API at ``path``; raises ``MatrixRequestError`` unless ``expect``."""
        url = self.server.client_url + path
        status, answer = http_json(method, url, body, access_token=access_token)
        if expect is not None and status != expect:
            raise MatrixRequestError(method, url, status, answer)
        if not isinstance(answer, dict):
            raise MatrixRequestError(method, url, status, answer)
        return answer

    def register(self, username: str | None = None, password: str | None = None) -> SynapseUser:
        """Registers a new user with the dummy auth flow; ``username`` defaults to a fresh one."""
        username = username or f"user-{secrets.token_hex(6)}"
        password = password or secrets.token_urlsafe(16)
        answer = self.request(
            "POST",
            "/_matrix/client/v3/register",
            {
                "username": username,
                "password": password,
                "auth": {"type": "m.login.dummy"},
                "initial_device_display_name": "e2e test device",
            },
        )
        return SynapseUser(
            user_id=str(answer["user_id"]),
            access_token=str(answer["access_token"]),
            device_id=str(answer["device_id"]),
            password=password,
        )

    def openid_token(self, user: SynapseUser) -> JsonDict:
        """A fresh OpenID token for ``user``, exactly as Synapse returns it.

        Keys: ``access_token``, ``token_type``, ``matrix_server_name``, ``expires_in``.
        """
        user_path = urllib.parse.quote(user.user_id, safe="")
        return self.request(
            "POST",
            f"/_matrix/client/v3/user/{user_path}/openid/request_token",
            {},
            access_token=user.access_token,
        )

    def create_room(self, user: SynapseUser, **body: Any) -> str:
        """Creates a room as ``user`` (extra keyword arguments go into the body); its room ID."""
        answer = self.request(
            "POST", "/_matrix/client/v3/createRoom", dict(body), access_token=user.access_token
        )
        return str(answer["room_id"])

    def schedule_delayed_state(
        self,
        user: SynapseUser,
        room_id: str,
        event_type: str,
        state_key: str,
        content: JsonDict,
        delay_ms: int,
    ) -> str:
        """Schedules a delayed state event (MSC4140) as ``user``; returns its ``delay_id``."""
        answer = self.request(
            "PUT",
            f"{_state_path(room_id, event_type, state_key)}?org.matrix.msc4140.delay={delay_ms}",
            content,
            access_token=user.access_token,
        )
        return str(answer["delay_id"])

    def delayed_event_action(self, delay_id: str, action: str) -> tuple[int, JsonDict | str]:
        """``restart``, ``send`` or ``cancel`` a delayed event without authentication."""
        return http_json(
            "POST",
            f"{self.server.client_url}/_matrix/client/unstable/org.matrix.msc4140"
            f"/delayed_events/{urllib.parse.quote(delay_id, safe='')}/{action}",
            {},
        )

    def state_event(
        self, user: SynapseUser, room_id: str, event_type: str, state_key: str
    ) -> JsonDict | None:
        """The content of a room state event, or ``None`` when there is none."""
        url = self.server.client_url + _state_path(room_id, event_type, state_key)
        status, answer = http_json("GET", url, access_token=user.access_token)
        if status == 404:
            return None
        if status != 200 or not isinstance(answer, dict):
            raise MatrixRequestError("GET", url, status, answer)
        return answer

    def openid_userinfo(self, openid_access_token: str) -> tuple[int, JsonDict | str]:
        """Asks the federation listener (over TLS, trusting the test CA) whom a token belongs to.

        This is the request the service makes; returns the status and the body.
        """
        query = urllib.parse.urlencode({"access_token": openid_access_token})
        return http_json(
            "GET",
            f"{self.server.federation_url}/_matrix/federation/v1/openid/userinfo?{query}",
            context=self.server.ca.client_context(),
        )


class SynapseServer:
    """One Synapse process on loopback, configured from scratch in ``directory``.

    Attributes:
        python: the interpreter Synapse runs with.
        directory: where the configuration, database, media, keys and logs live.
        ca: the test CA that issued the federation listener's certificate.
        client_port / federation_port: the two loopback ports.
        server_name: ``localhost:<federation_port>``, the Matrix server name; user IDs
            look like ``@name:localhost:<federation_port>``.
        client_url: ``http://127.0.0.1:<client_port>``, plain HTTP client-server API.
        federation_url: ``https://localhost:<federation_port>``, TLS federation API.
        config_path: the ``homeserver.yaml`` written for this server.
        log_path: Synapse's own log file; ``console_log_path`` has its stdout/stderr.
        startup_seconds: how long the last ``start()`` took until both listeners answered.
        client: a ``SynapseClient`` for this server.
    """

    def __init__(self, python: Path, directory: Path, ca: TestCA) -> None:
        self.python = python
        self.directory = directory
        self.ca = ca
        self.client_port = free_port()
        self.federation_port = free_port()
        while self.federation_port == self.client_port:
            self.federation_port = free_port()
        self.server_name = f"localhost:{self.federation_port}"
        self.client_url = f"http://127.0.0.1:{self.client_port}"
        self.federation_url = f"https://localhost:{self.federation_port}"
        self.config_path = directory / "homeserver.yaml"
        self.log_path = directory / "homeserver.log"
        self.console_log_path = directory / "console.log"
        self.startup_seconds: float | None = None
        self.client = SynapseClient(self)
        self._proc: subprocess.Popen[bytes] | None = None
        self._console: IO[bytes] | None = None

    # -- configuration -------------------------------------------------------------------------

    def config(self) -> JsonDict:
        """The complete homeserver configuration (written as JSON, which is valid YAML)."""
        cert, key = self.ca.write_server_cert(self.directory, "localhost", "127.0.0.1")
        loopback = ["127.0.0.1"]
        return {
            "server_name": self.server_name,
            "public_baseurl": f"{self.client_url}/",
            "pid_file": str(self.directory / "homeserver.pid"),
            "listeners": [
                {
                    "port": self.client_port,
                    "bind_addresses": loopback,
                    "type": "http",
                    "tls": False,
                    "x_forwarded": False,
                    "resources": [{"names": ["client"], "compress": False}],
                },
                {
                    "port": self.federation_port,
                    "bind_addresses": loopback,
                    "type": "http",
                    "tls": True,
                    "resources": [{"names": ["federation"], "compress": False}],
                },
            ],
            "tls_certificate_path": str(cert),
            "tls_private_key_path": str(key),
            "database": {
                "name": "sqlite3",
                "args": {"database": str(self.directory / "homeserver.db")},
            },
            "log_config": str(self._write_log_config()),
            "media_store_path": str(self.directory / "media_store"),
            "signing_key_path": str(self._write_signing_key()),
            "registration_shared_secret": secrets.token_urlsafe(32),
            "macaroon_secret_key": secrets.token_urlsafe(32),
            "form_secret": secrets.token_urlsafe(32),
            # Contact nobody: no stats, no key servers, no previews, no other homeservers.
            "report_stats": False,
            "trusted_key_servers": [],
            "suppress_key_server_warning": True,
            "federation_domain_whitelist": [self.server_name],
            "url_preview_enabled": False,
            "enable_metrics": False,
            # Fast password hashing: registration is on the path of most tests.
            "bcrypt_rounds": 4,
            "enable_registration": True,
            "enable_registration_without_verification": True,
            "rc_message": _GENEROUS,
            "rc_registration": _GENEROUS,
            "rc_login": {
                "address": _GENEROUS,
                "account": _GENEROUS,
                "failed_attempts": _GENEROUS,
            },
            "rc_joins": {"local": _GENEROUS, "remote": _GENEROUS},
            "rc_joins_per_room": _GENEROUS,
            "rc_room_creation": _GENEROUS,
            "rc_invites": {
                "per_room": _GENEROUS,
                "per_user": _GENEROUS,
                "per_issuer": _GENEROUS,
            },
            "rc_delayed_event_mgmt": _GENEROUS,
            "experimental_features": {"msc4140_enabled": True},
            "max_event_delay_duration": "24h",
        }

    def _write_signing_key(self) -> Path:
        # Synapse's key file format: "<algorithm> <version> <unpadded base64 32-byte seed>".
        seed = base64.b64encode(secrets.token_bytes(32)).decode().rstrip("=")
        path = self.directory / "signing.key"
        path.write_text(f"ed25519 e2e {seed}\n")
        return path

    def _write_log_config(self) -> Path:
        log_config = {
            "version": 1,
            "formatters": {
                "precise": {
                    "format": "%(asctime)s - %(name)s - %(lineno)d - %(levelname)s"
                    " - %(request)s - %(message)s"
                }
            },
            "handlers": {
                "file": {
                    "class": "logging.FileHandler",
                    "formatter": "precise",
                    "filename": str(self.log_path),
                    "encoding": "utf8",
                }
            },
            "loggers": {"synapse.storage.SQL": {"level": "INFO"}},
            "root": {"level": "INFO", "handlers": ["file"]},
            "disable_existing_loggers": False,
        }
        path = self.directory / "log.config"
        path.write_text(json.dumps(log_config, indent=2))
        return path

    # -- process -------------------------------------------------------------------------------

    def start(self, timeout: float = 90.0) -> SynapseServer:
        """Writes the configuration, starts Synapse and waits until both listeners answer."""
        self.config_path.write_text(json.dumps(self.config(), indent=2))
        env = {k: os.environ[k] for k in _INHERITED_ENV if k in os.environ}
        began = time.monotonic()
        self._console = self.console_log_path.open("wb")
        self._proc = subprocess.Popen(
            [str(self.python), "-m", "synapse.app.homeserver", "-c", str(self.config_path)],
            cwd=self.directory,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._console,
            stderr=subprocess.STDOUT,
        )
        try:
            self._wait_ready(began + timeout)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - began
        return self

    def _wait_ready(self, deadline: float) -> None:
        context = self.ca.client_context()
        checks: list[tuple[str, ssl.SSLContext | None]] = [
            (f"{self.client_url}/_matrix/client/versions", None),
            (f"{self.federation_url}/_matrix/federation/v1/version", context),
        ]
        last_error = "no answer yet"
        while checks:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise SynapseStartError(
                    f"Synapse exited with status {self._proc.returncode} during start-up\n"
                    + self.log_tail()
                )
            if time.monotonic() > deadline:
                raise SynapseStartError(
                    f"Synapse did not answer {checks[0][0]} in time ({last_error})\n"
                    + self.log_tail()
                )
            url, ssl_context = checks[0]
            try:
                status, body = http_json("GET", url, context=ssl_context, timeout=2)
            except OSError as error:
                last_error = repr(error)
                time.sleep(0.1)
                continue
            if status == 200:
                checks.pop(0)
            else:
                last_error = f"status {status}: {body}"
                time.sleep(0.1)

    def stop(self, timeout: float = 20.0) -> None:
        """Stops Synapse (SIGTERM, then SIGKILL after ``timeout``); safe to call twice."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        if self._console is not None:
            self._console.close()
            self._console = None

    @property
    def pid(self) -> int | None:
        """The process ID of the running Synapse, ``None`` when it is not running."""
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = 60) -> str:
        """The last lines of Synapse's log file and of its console output, for error messages."""
        parts = []
        for label, path in (("log", self.log_path), ("console", self.console_log_path)):
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                text = "(missing)"
            tail = "\n".join(text.splitlines()[-lines:])
            parts.append(f"--- Synapse {label} ({path}) ---\n{tail}")
        return "\n".join(parts)


def start_synapse(
    directory: Path, ca: TestCA, *, python: Path | None = None, timeout: float = 90.0
) -> SynapseServer:
    """Starts a configured Synapse in ``directory``; raises ``SynapseStartError`` on failure."""
    server = SynapseServer(python or synapse_python(), directory, ca)
    return server.start(timeout)
