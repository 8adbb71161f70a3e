"""OpenAPI annotations, active only when drf-spectacular (the ``openapi`` extra) is installed.

Every failure of every operation is the shared ``Error`` component; each
operation lists the statuses it can answer with, one example per stable
error code (built from the exceptions themselves, so the documented body is
the one sent), and ``Retry-After`` on 429 and 503.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions as drf

from .. import exceptions as otp
from . import serializers as s
from .errors import RETRY_AFTER_STATUSES, error_body

try:
    from drf_spectacular.openapi import AutoSchema
    from drf_spectacular.utils import (
        OpenApiExample,
        OpenApiParameter,
        OpenApiResponse,
        extend_schema,
    )
except ImportError:  # pragma: no cover - exercised only without the extra
    extend_schema = None  # type: ignore[assignment]

TAG = "otp"

STATUS_DESCRIPTIONS = {
    400: _("Refused input or a failed verification (see `code`)."),
    401: _(
        "This step needs another login state (`otp_required`: a verified login to change "
        "a phone), or the pending login timed out (`login_expired`): sign in again."
    ),
    403: _("CSRF check failed (session clients) or the token is not valid."),
    429: _("Too many requests: wait `Retry-After` seconds."),
    503: _("Codes cannot be sent or checked now: wait `Retry-After` seconds."),
}


def document(
    *,
    operation_id: str,
    summary: str,
    description: str,
    success: tuple[int, Any, str],
    request: type | None = None,
    errors: Iterable[Exception] = (),
    examples: Iterable[tuple[str, Any]] = (),
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Describe one operation: its JSON body, its success and every failure it may answer.

    ``success`` is ``(status, serializer, description)``. ``errors`` are
    exception instances: each becomes an example of the ``Error`` response
    under its status. ``examples`` are ``(name, body)`` pairs of the success
    response.
    """
    if extend_schema is None:
        return lambda view: view
    failures = [*errors, *_common_errors(request)]
    by_status: dict[int, list[dict[str, Any]]] = {}
    for error in failures:
        body = error_body(error)
        bodies = by_status.setdefault(_status_of(error), [])
        if body["code"] not in {known["code"] for known in bodies}:
            bodies.append(body)

    success_status, success_serializer, success_description = success
    responses: dict[int, Any] = {
        success_status: OpenApiResponse(success_serializer, description=success_description)
    }
    response_examples = [
        OpenApiExample(name, value=body, status_codes=[success_status], response_only=True)
        for name, body in examples
    ]
    for status, bodies in sorted(by_status.items()):
        codes = ", ".join(f"`{body['code']}`" for body in bodies)
        responses[status] = OpenApiResponse(
            s.ErrorSerializer, description=f"{STATUS_DESCRIPTIONS[status]} Codes: {codes}."
        )
        response_examples += [
            OpenApiExample(body["code"], value=body, status_codes=[status], response_only=True)
            for body in bodies
        ]
    retry_statuses = [status for status in RETRY_AFTER_STATUSES if status in by_status]
    parameters = []
    if retry_statuses:
        parameters.append(
            OpenApiParameter(
                "Retry-After",
                type=int,
                location=OpenApiParameter.HEADER,
                required=True,
                response=retry_statuses,
                description=_("Seconds to wait before trying again."),
            )
        )
    annotate = extend_schema(
        operation_id=operation_id,
        summary=summary,
        description=description,
        tags=[TAG],
        request={"application/json": request} if request is not None else None,
        responses=responses,
        parameters=parameters,
        examples=response_examples,
    )

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        # extend_schema builds on DEFAULT_SCHEMA_CLASS as configured when this
        # module is imported; a spectacular AutoSchema keeps the annotation
        # valid even if REST_FRAMEWORK is set later (override_settings in tests).
        view.schema = _schema_base()  # type: ignore[attr-defined]
        return annotate(view)

    return decorate


def only_otp_api(endpoints: list[tuple], **kwargs: Any) -> list[tuple]:
    """drf-spectacular preprocessing hook: keep only this app's API in a schema.

    Add ``"infobip_otp.api.schema.only_otp_api"`` to
    ``SPECTACULAR_SETTINGS["PREPROCESSING_HOOKS"]`` to publish the OTP API alone.
    """
    from .views import OtpAPIView

    return [
        endpoint
        for endpoint in endpoints
        if issubclass(getattr(endpoint[3], "cls", type(None)), OtpAPIView)
    ]


def _schema_base() -> type:
    from rest_framework.settings import api_settings

    configured = api_settings.DEFAULT_SCHEMA_CLASS
    if isinstance(configured, type) and issubclass(configured, AutoSchema):
        return configured
    return AutoSchema


def _status_of(error: Exception) -> int:
    # DRF answers 403, not 401, to a failed authentication when the first
    # authenticator (the session) has no ``WWW-Authenticate`` challenge.
    if isinstance(error, (drf.AuthenticationFailed, drf.NotAuthenticated)):
        return 403
    return int(getattr(error, "status_code", 400))


def _common_errors(request: type | None) -> list[Exception]:
    """Failures any operation may answer with, and those of any JSON body.

    The middleware answers ``login_expired`` once a pending login has timed
    out; session clients need the CSRF header on every POST.
    """
    errors: list[Exception] = [
        otp.OtpRequired(),
        otp.NotAuthenticated(),
        otp.LoginExpired(),
        drf.AuthenticationFailed(_("Invalid token.")),
    ]
    if request is not None:
        field = next(iter(request().fields))
        errors += [
            drf.ValidationError({field: [_("This field may not be blank.")]}),
            drf.ParseError("JSON parse error - Expecting value: line 1 column 1 (char 0)"),
            drf.PermissionDenied("CSRF Failed: CSRF token missing."),
        ]
    return errors
