"""The TLS settings of every outgoing connection (homeservers and the SFU)."""

from __future__ import annotations

import ssl

from matrixrtc_auth.config import Config


def client_ssl_context(config: Config) -> ssl.SSLContext:
    """System trust store, or ``SSL_CERT_FILE`` alone when set; TLS 1.2 at least."""
    if config.skip_verify_tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context = ssl.create_default_context(cafile=config.ssl_cert_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context
