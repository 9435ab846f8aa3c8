"""Logging: set-up, the request ID, structured fields and making values safe to log.

Log calls pass structured fields through ``extra=fields(...)``; the formatter
prints them as ``key=value`` after the message, in a fixed order, so that lines
read the same everywhere and can be grepped. Every field value goes through
``safe`` (control characters removed, length capped), because many come from
clients or homeservers and a log line must not be forgeable.

Credentials never reach this module: callers log server names, statuses and
causes, never tokens, secrets or URLs that carry them.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import warnings
from datetime import UTC, datetime
from typing import Any

from jwt.warnings import InsecureKeyLengthWarning

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

# The structured fields, in the order they are printed.
FIELDS = (
    "request_id",
    "method",
    "path",
    "status",
    "matrix_id",
    "server_name",
    "tier",
    "room",
    "lk_identity",
    "client",
    "state",
    "event",
    "cause",
    "elapsed_ms",
)
MAX_VALUE_LENGTH = 256
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def safe(value: object, limit: int = MAX_VALUE_LENGTH) -> str:
    """A value fit for a log line: one line, no control characters, bounded length."""
    text = _UNSAFE.sub("?", str(value))
    if len(text) > limit:
        return text[:limit] + f"...(+{len(text) - limit})"
    return text


def fields(**values: Any) -> dict[str, Any]:
    """``extra=`` for a log call; ``None`` values are left out."""
    return {"fields": {k: v for k, v in values.items() if v is not None}}


class FieldFormatter(logging.Formatter):
    """``time level logger: message key=value ...``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra: dict[str, Any] = dict(getattr(record, "fields", {}))
        rid = request_id.get()
        if rid != "-":
            extra.setdefault("request_id", rid)
        parts = [f"{key}={_quote(safe(extra.pop(key)))}" for key in FIELDS if key in extra]
        parts += [f"{key}={_quote(safe(value))}" for key, value in sorted(extra.items())]
        return f"{line} {' '.join(parts)}" if parts else line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time``, ``level``, ``logger``, ``message``, then fields.

    Field names are those of ``FIELDS`` (plus any a call adds); an exception
    goes into ``exception`` as text. Values are made safe like in text lines.
    """

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": safe(record.getMessage(), limit=4096),
        }
        rid = request_id.get()
        if rid != "-":
            document["request_id"] = rid
        for key, value in getattr(record, "fields", {}).items():
            document[key] = value if isinstance(value, (bool, int, float)) else safe(value)
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, ensure_ascii=False)


def _quote(text: str) -> str:
    if not text or any(c in text for c in ' "='):
        escaped = text.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    return text


def setup_logging(level: str, log_format: str = "text") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter() if log_format == "json" else FieldFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiohttp's access log would repeat each request; our middleware logs them once.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # Library warnings become log lines in our format instead of raw stderr text.
    logging.captureWarnings(True)
    # A short secret is reported once at start (config.py); PyJWT would repeat it.
    warnings.filterwarnings("ignore", category=InsecureKeyLengthWarning)
