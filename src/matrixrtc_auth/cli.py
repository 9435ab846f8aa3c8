"""The ``matrixrtc-auth`` command: with no arguments (or ``serve``) it runs the service."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Mapping
from datetime import UTC, datetime

from matrixrtc_auth import __version__
from matrixrtc_auth.config import Config, ConfigError, clean_value
from matrixrtc_auth.logs import setup_logging

log = logging.getLogger("matrixrtc_auth")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="matrixrtc-auth",
        description="MatrixRTC Authorization Service, configured by environment variables.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="run the service (the default)")
    doctor = commands.add_parser(
        "doctor", help="check the deployment this environment describes, end to end"
    )
    doctor.add_argument("--json", action="store_true", help="print the results as JSON")
    healthcheck = commands.add_parser(
        "healthcheck", help="exit 0 when the service's /healthz answers 200 within 2 s"
    )
    healthcheck.add_argument(
        "url", nargs="?", help="the /healthz URL (default: this machine, LIVEKIT_JWT_BIND)"
    )
    keygen = commands.add_parser(
        "keygen",
        help="print a new Ed25519 key pair for V2 verification, or convert a PEM key",
    )
    keygen.add_argument(
        "--from-pem",
        metavar="FILE",
        help="convert this Ed25519 PEM private or public key instead of making a new one",
    )
    args = parser.parse_args(argv)

    if args.command in (None, "serve"):
        return run_service()
    if args.command == "doctor":
        from matrixrtc_auth.doctor import run_doctor

        return run_doctor(os.environ, as_json=args.json)
    if args.command == "healthcheck":
        from matrixrtc_auth.healthcheck import run_healthcheck

        return run_healthcheck(args.url, os.environ)
    if args.command == "keygen":
        # Deferred import, like the service's: each command loads what it needs.
        from matrixrtc_auth.keygen import run_keygen

        return run_keygen(args.from_pem)
    parser.error(f"unknown command {args.command}")
    return 2


def config_error_line(message: str, env: Mapping[str, str]) -> str:
    """The one line a configuration error gets, in the log format asked for if possible."""
    text = f"configuration error: {message}"
    if clean_value(env.get("LIVEKIT_LOG_FORMAT", "")).lower() == "json":
        return json.dumps(
            {
                "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "level": "ERROR",
                "logger": "matrixrtc_auth",
                "message": text,
            }
        )
    return f"matrixrtc-auth: {text}"


def run_service() -> int:
    try:
        config = Config.from_env(os.environ)
    except ConfigError as exc:
        print(config_error_line(str(exc), os.environ), file=sys.stderr)
        return 1

    setup_logging(config.log_level, config.log_format)
    for warning in config.warnings:
        log.warning(warning)
    if config.skip_verify_tls:
        log.warning(
            "LIVEKIT_INSECURE_SKIP_VERIFY_TLS is on: TLS certificates of homeservers and "
            "the SFU are NOT verified; anyone on the network path can impersonate them. "
            "Use this for testing only."
        )
    if config.skip_verify_tls and config.require_ocsp_staple:
        log.warning(
            "REQUIRE_OCSP_STAPLE has no effect while LIVEKIT_INSECURE_SKIP_VERIFY_TLS is on: "
            "stapled OCSP responses are not checked either"
        )
    log.info("matrixrtc-auth %s starting: %s", __version__, config.describe())

    # Deferred import: configuration errors are reported before aiohttp loads.
    from matrixrtc_auth.app import serve

    return asyncio.run(serve(config))
