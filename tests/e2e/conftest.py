"""Fixtures for end-to-end tests: one real Synapse homeserver per pytest session.

``synapse`` (session scope) is a running ``tests.e2e.synapse.SynapseServer``:

* ``synapse.server_name`` - ``localhost:<federation port>``, the Matrix server name
  (use it for ``LIVEKIT_FULL_ACCESS_HOMESERVERS``);
* ``synapse.client_url`` - plain HTTP client-server API on 127.0.0.1;
* ``synapse.federation_url`` - TLS federation API, certificate from ``test_ca``
  (give the service ``SSL_CERT_FILE=test_ca.cert_file``);
* ``synapse.client`` - a ``SynapseClient`` with ``register()``, ``openid_token(user)``,
  ``create_room(user)``, ``openid_userinfo(token)``, delayed-event helpers
  (``schedule_delayed_state``, ``delayed_event_action``, ``state_event``) and ``request(...)``;
* ``synapse.directory``, ``synapse.config_path``, ``synapse.log_path``,
  ``synapse.startup_seconds``, ``synapse.log_tail()``.

Synapse runs with the interpreter named by ``$MATRIXRTC_TEST_SYNAPSE_PYTHON``
(``make pytest`` sets it), else ``<repo>/.venv/synapse/bin/python``. When it
cannot be started the fixture raises, so every test using it errors: these
tests are never skipped.

``synapse_user`` (function scope) is a freshly registered ``SynapseUser``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.synapse import SynapseServer, SynapseUser, start_synapse
from tests.support.tls import TestCA


@pytest.fixture(scope="session")
def synapse(tmp_path_factory: pytest.TempPathFactory, test_ca: TestCA) -> Iterator[SynapseServer]:
    server = start_synapse(tmp_path_factory.mktemp("synapse"), test_ca)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def synapse_user(synapse: SynapseServer) -> SynapseUser:
    return synapse.client.register()
