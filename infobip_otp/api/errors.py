"""The one shape of every API failure, shared by the views and the OpenAPI schema.

``{"detail": ..., "code": ...}``, plus ``attempts_left`` for a failed
verification and ``fields`` for malformed input. The same shape for every
failure means a client cannot tell more than the code says (SECURITY rule 6).
"""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions

from ..conf import app_settings
from ..exceptions import OtpError, PhoneNumberError

#: Statuses that always carry ``Retry-After``: the client should come back later.
RETRY_AFTER_STATUSES = (429, 503)


def error_body(exc: Exception) -> dict[str, Any]:
    """The JSON body of a failed request, for our errors and DRF's alike."""
    if isinstance(exc, OtpError):
        body = exc.as_dict()
        if isinstance(exc, PhoneNumberError):
            body["fields"] = {"phone_number": [str(exc.detail)]}
        return body
    if isinstance(exc, exceptions.ValidationError) and isinstance(exc.detail, dict):
        fields = {key: _messages(value) for key, value in exc.detail.items()}
        first = next(iter(fields.values()), None) or ["Invalid input."]
        return {"detail": first[0], "code": "invalid", "fields": fields}
    if isinstance(exc, exceptions.APIException):
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else exc.default_code
        detail = exc.detail if isinstance(exc.detail, str) else exc.default_detail
        return {"detail": str(detail), "code": str(code)}
    return {"detail": "Error.", "code": "error"}


def retry_after(exc: Exception, status_code: int) -> int | None:
    """Seconds for ``Retry-After``: the error's own wait, or a default on 429/503.

    The provider does not always say how long to wait; the circuit breaker's
    cool-down is then the earliest moment a new try can reach it.
    """
    seconds = getattr(exc, "retry_after", None)
    if not seconds and status_code in RETRY_AFTER_STATUSES:
        seconds = app_settings.BREAKER_COOLDOWN
    return max(1, int(seconds)) if seconds else None


def _messages(value: Any) -> list[str]:
    if isinstance(value, (list, tuple)):
        return [str(item) for item in value]
    return [str(value)]
