"""The errors a call to the daemon raises: the API's own `code`, `message` and `field`."""

from __future__ import annotations

from typing import Any


class MeanwhileError(Exception):
    """A request the daemon refused, or a daemon that could not be reached.

    `code` is the API's error code (`invalid_argument`, `not_found`, `conflict`,
    `unavailable`, ...), `message` says what was wrong and what to do, and `field`
    names the request field at fault when there is one. `status` is the HTTP status,
    or None when no answer came.
    """

    def __init__(
        self,
        code: str,
        message: str,
        field: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.status = status

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code!r}, message={self.message!r}, "
            f"field={self.field!r}, status={self.status!r})"
        )


class InvalidArgument(MeanwhileError):
    """A field of the request is wrong (`invalid_argument`, HTTP 400)."""


class NotFound(MeanwhileError):
    """No such task, queue, schedule or budget (`not_found`, HTTP 404)."""


class Conflict(MeanwhileError):
    """The state does not allow the request (`conflict`, `idempotency_conflict`,
    `no_provider`, HTTP 409)."""


class Unauthorized(MeanwhileError):
    """The bearer token is missing or wrong (`unauthorized`, `forbidden`)."""


class Unavailable(MeanwhileError):
    """No daemon answers, or it cannot serve now (`unavailable`, `disk_full`)."""


_BY_CODE: dict[str, type[MeanwhileError]] = {
    "invalid_argument": InvalidArgument,
    "payload_too_large": InvalidArgument,
    "not_found": NotFound,
    "conflict": Conflict,
    "idempotency_conflict": Conflict,
    "no_provider": Conflict,
    "confined": Conflict,
    "unauthorized": Unauthorized,
    "forbidden": Unauthorized,
    "unavailable": Unavailable,
    "disk_full": Unavailable,
}


def error(
    code: str, message: str, field: str | None = None, status: int | None = None
) -> MeanwhileError:
    """The exception for an error `code`: its subclass when there is one."""
    return _BY_CODE.get(code, MeanwhileError)(code, message, field, status)


def from_response(status: int, body: bytes) -> MeanwhileError:
    """The exception for an error answer: `{"error": {"code", "message", "field"}}`
    (a bare `{"code", "message", "field"}` is read too)."""
    import json

    parsed: Any
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
        parsed = parsed["error"]
    if isinstance(parsed, dict) and isinstance(parsed.get("code"), str):
        return error(
            parsed["code"],
            str(parsed.get("message") or parsed["code"]),
            parsed.get("field") if isinstance(parsed.get("field"), str) else None,
            status,
        )
    text = body.decode("utf-8", "replace").strip()[:500]
    return error(
        "internal", f"the daemon answered HTTP {status}: {text or '(no body)'}", None, status
    )
