"""The REST flow: status, login (password step), send, verify, phone.

Every failure answers ``{"detail": ..., "code": ...}`` (plus ``attempts_left``
for verification and ``fields`` for malformed input), with ``Retry-After`` on
429 and 503. The provider's PIN id and full numbers never leave the server.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import authenticate, login
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.views.decorators.csrf import ensure_csrf_cookie
from rest_framework import exceptions, status
from rest_framework.authentication import CSRFCheck, SessionAuthentication
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import flow, state
from ..exceptions import (
    InvalidCredentials,
    NoChallenge,
    OtpError,
    PhoneNumberError,
    RateLimited,
    RateLimitUnavailable,
    SendBudgetExhausted,
)
from ..phones import mask_phone_number
from ..ratelimits import check_login
from ..services import challenge_summary
from . import serializers as s
from .schema import document


def _authentication_classes() -> list[type]:
    classes: list[type] = [SessionAuthentication]
    if "rest_framework.authtoken" in settings.INSTALLED_APPS:
        from rest_framework.authentication import TokenAuthentication

        classes.append(TokenAuthentication)
    return classes


def _enforce_csrf(request: Request) -> None:
    """CSRF for every session client, anonymous ones included (login CSRF)."""
    check = CSRFCheck(lambda r: None)  # type: ignore[arg-type, return-value]
    check.process_request(request._request)
    reason = check.process_view(request._request, None, (), {})
    if reason:
        raise exceptions.PermissionDenied(f"CSRF Failed: {reason}")


class OtpAPIView(APIView):
    """Base: our authentication, CSRF for session clients, one error shape."""

    permission_classes = [AllowAny]
    throttle_classes: list = []

    def get_authenticators(self) -> list:
        return [cls() for cls in _authentication_classes()]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        if request.method not in ("GET", "HEAD", "OPTIONS") and not flow.is_token_client(
            request
        ):
            _enforce_csrf(request)

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, OtpError):
            body = exc.as_dict()
            if isinstance(exc, PhoneNumberError):
                body["fields"] = {"phone_number": [str(exc.detail)]}
            response = Response(body, status=exc.status_code)
            retry_after = getattr(exc, "retry_after", None)
            if retry_after:
                response["Retry-After"] = str(int(retry_after))
            return response
        response = super().handle_exception(exc)
        response.data = _error_body(exc, response.data)
        return response

    def challenge_response(self, challenge: Any, http_status: int = status.HTTP_202_ACCEPTED):
        body = challenge_summary(challenge, timezone.now())
        body.pop("purpose")
        return Response({"phone": challenge.masked_phone, **body}, status=http_status)


def _error_body(exc: Exception, data: Any) -> dict[str, Any]:
    """DRF's own errors in our shape: a field error keeps its messages under ``fields``."""
    if isinstance(exc, exceptions.ValidationError) and isinstance(data, dict):
        fields = {key: [str(m) for m in value] for key, value in data.items()}
        first = next(iter(fields.values()), ["Invalid input."])
        return {"detail": first[0], "code": "invalid", "fields": fields}
    if isinstance(exc, exceptions.APIException):
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else exc.default_code
        detail = data.get("detail", exc.default_detail) if isinstance(data, dict) else data
        return {"detail": str(detail), "code": str(code)}
    return {"detail": "Error.", "code": "error"}


@method_decorator(ensure_csrf_cookie, name="dispatch")
class StatusView(OtpAPIView):
    """Where the login stands; sets the CSRF cookie for session clients."""

    @document(responses={200: s.StatusSerializer}, summary="Login and challenge status")
    def get(self, request: Request) -> Response:
        current = flow.login_state(request)
        challenge = None
        if current == state.PENDING:
            challenge = flow.login_challenge(request)
        elif flow.can_change_phone(request):
            challenge = flow.phone_challenge(request)
        return Response(
            {
                "state": current,
                "phone": self.masked_phone(request, current),
                "challenge": challenge_summary(challenge, timezone.now()) if challenge else None,
            }
        )

    def masked_phone(self, request: Request, current: str) -> str | None:
        if current == flow.ANONYMOUS:
            number = request.session.get(flow.SESSION_PHONE_KEY) if request.session else None
        else:
            number = state.get_user_phone(request.user)
        return mask_phone_number(number) if number else None


class LoginView(OtpAPIView):
    """The password step for SPAs: ``authenticate`` + ``login``; a code is needed next."""

    @document(
        request=s.LoginSerializer,
        responses={200: s.StateSerializer, 400: s.ErrorSerializer, 429: s.ErrorSerializer},
        summary="Password step",
        errors=[InvalidCredentials, RateLimited, RateLimitUnavailable],
    )
    def post(self, request: Request) -> Response:
        data = _valid(s.LoginSerializer, request)
        check_login(request, data["username"])
        user = authenticate(
            request._request, username=data["username"], password=data["password"]
        )
        if user is None:
            raise InvalidCredentials()
        login(request._request, user)
        request.user = user
        current = flow.login_state(request)
        phone = state.get_user_phone(user) if current == state.PENDING else None
        return Response({"state": current, "phone": mask_phone_number(phone) if phone else None})


class SendView(OtpAPIView):
    """First code or resend for the pending login, or for an active phone challenge."""

    @document(
        request=s.SendSerializer,
        responses={202: s.SentSerializer, 400: s.ErrorSerializer, 429: s.ErrorSerializer},
        summary="Send or resend a code",
        errors=[NoChallenge, RateLimited, SendBudgetExhausted],
    )
    def post(self, request: Request) -> Response:
        data = _valid(s.SendSerializer, request)
        if data.get("phone_number"):
            return self.challenge_response(
                flow.start_phone_verification(request, data["phone_number"])
            )
        if flow.login_state(request) == state.PENDING:
            return self.challenge_response(flow.send_login_code(request))
        return self.challenge_response(flow.resend_phone_code(request))


class PhoneView(OtpAPIView):
    """Enrol a first number or change it: a code goes to the new number."""

    @document(
        request=s.PhoneNumberSerializer,
        responses={202: s.SentSerializer, 400: s.ErrorSerializer, 429: s.ErrorSerializer},
        summary="Enrol or change a phone number",
        errors=[PhoneNumberError, RateLimited, SendBudgetExhausted],
    )
    def post(self, request: Request) -> Response:
        data = _valid(s.PhoneNumberSerializer, request)
        return self.challenge_response(
            flow.start_phone_verification(request, data["phone_number"])
        )


class VerifyView(OtpAPIView):
    """Check a code: completes the pending login, or confirms a new number."""

    @document(
        request=s.PinSerializer,
        responses={200: s.StateSerializer, 400: s.ErrorSerializer, 429: s.ErrorSerializer},
        summary="Verify a code",
        errors=[NoChallenge, RateLimited],
    )
    def post(self, request: Request) -> Response:
        data = _valid(s.PinSerializer, request)
        if flow.login_state(request) == state.PENDING:
            flow.verify_login_code(request, data["pin"])
            return Response({"state": state.VERIFIED})
        challenge = flow.verify_phone_code(request, data["pin"])
        return Response({"state": flow.login_state(request), "phone": challenge.masked_phone})


def _valid(serializer_class: type, request: Request) -> dict[str, Any]:
    if not isinstance(request.data, dict):
        raise exceptions.ParseError("Send a JSON object.")
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)
