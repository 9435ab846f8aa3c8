"""Errors the service answers with, in the Matrix shape ``{"errcode", "error"}``.

Handlers and the token flow raise these; one middleware (``http/middleware.py``)
turns them into responses. The message is what the client reads, so it never
carries a token, a secret or an internal detail; the precise cause goes to the
log, through ``log_cause``.
"""

from __future__ import annotations


class MatrixError(Exception):
    """An error with an HTTP status and a Matrix errcode."""

    status = 500
    errcode = "M_UNKNOWN"
    # Whether the connection must close after this answer (its request is in a bad state).
    close_connection = False

    def __init__(self, message: str, *, log_cause: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        # What the operator needs to know; logged, never sent.
        self.log_cause = log_cause or message

    def body(self) -> dict[str, str]:
        return {"errcode": self.errcode, "error": self.message}


class NotJson(MatrixError):
    status = 400
    errcode = "M_NOT_JSON"


class BadJson(MatrixError):
    status = 400
    errcode = "M_BAD_JSON"


class TooLarge(MatrixError):
    status = 413
    errcode = "M_TOO_LARGE"


class Unauthorized(MatrixError):
    status = 401
    errcode = "M_UNAUTHORIZED"


class Forbidden(MatrixError):
    status = 403
    errcode = "M_FORBIDDEN"


class NotFound(MatrixError):
    status = 404
    errcode = "M_NOT_FOUND"


class Unrecognized(MatrixError):
    status = 404
    errcode = "M_UNRECOGNIZED"


class MethodNotAllowed(MatrixError):
    status = 405
    errcode = "M_UNRECOGNIZED"


class Unknown(MatrixError):
    status = 500
    errcode = "M_UNKNOWN"


class ShuttingDown(MatrixError):
    status = 503
    errcode = "M_UNKNOWN"


class LimitExceeded(MatrixError):
    status = 429
    errcode = "M_LIMIT_EXCEEDED"


class DuplicateSession(MatrixError):
    status = 409
    errcode = "M_DUPLICATE_SESSION"


class RequestTimeout(MatrixError):
    status = 408
    errcode = "M_UNKNOWN"
    # The rest of the body may still trickle in; do not wait for it.
    close_connection = True


class HeadersTooLarge(MatrixError):
    status = 431
    errcode = "M_TOO_LARGE"
