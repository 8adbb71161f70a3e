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

from .. import exceptions as otp
from .. import flow, state
from ..exceptions import InvalidCredentials, OtpError
from ..phones import mask_phone_number
from ..ratelimits import check_login
from ..services import challenge_summary
from ..views import hide_secrets
from . import serializers as s
from .errors import error_body, retry_after
from .schema import document

EXAMPLE_PHONE = "+44*******123"
SENT_EXAMPLE = {"phone": EXAMPLE_PHONE, "expires_in": 300, "resend_in": 30, "attempts_left": 5}
PHONE_ERRORS = (otp.InvalidPhoneNumber(), otp.RegionNotAllowed(), otp.NumberTypeNotAllowed())
SEND_ERRORS = (
    otp.FactorLocked(),
    otp.RateLimited(),
    otp.SendBudgetExhausted(),
    otp.ProviderUnavailable(),
    otp.RateLimitUnavailable(),
)


def _authentication_classes() -> list[type]:
    classes: list[type] = [SessionAuthentication]
    if "rest_framework.authtoken" in settings.INSTALLED_APPS:
        from rest_framework.authentication import TokenAuthentication

        classes.append(TokenAuthentication)
    return classes


def _enforce_csrf(request: Request) -> None:
    """CSRF for every session client, anonymous ones included (login CSRF)."""
    check = CSRFCheck(lambda r: None)  # type: ignore[arg-type]
    check.process_request(request._request)
    reason = check.process_view(request._request, None, (), {})  # type: ignore[arg-type]
    if reason:
        raise exceptions.PermissionDenied(f"CSRF Failed: {reason}")


@hide_secrets
class OtpAPIView(APIView):
    """Base: our authentication, CSRF for session clients, one error shape."""

    permission_classes = [AllowAny]
    throttle_classes: list = []

    def get_authenticators(self) -> list:
        return [cls() for cls in _authentication_classes()]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        if request.method not in ("GET", "HEAD", "OPTIONS") and not flow.is_token_client(request):
            _enforce_csrf(request)

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, OtpError):
            response = Response(status=exc.status_code)
        else:
            response = super().handle_exception(exc)
        response.data = error_body(exc)
        seconds = retry_after(exc, response.status_code)
        if seconds:
            response["Retry-After"] = str(seconds)
        return response

    def challenge_response(
        self, challenge: Any, http_status: int = status.HTTP_202_ACCEPTED
    ) -> Response:
        body = challenge_summary(challenge, timezone.now())
        body.pop("purpose")
        return Response({"phone": challenge.masked_phone, **body}, status=http_status)


@method_decorator(ensure_csrf_cookie, name="dispatch")
class StatusView(OtpAPIView):
    """Where the login stands; sets the CSRF cookie for session clients."""

    @document(
        operation_id="otp_status",
        summary="Login and challenge status",
        description=(
            "Where the login stands and, while a code is expected, its challenge: seconds "
            "until it expires, attempts left and seconds until a resend is allowed. "
            "Sets the `csrftoken` cookie that session clients send back as `X-CSRFToken`."
        ),
        success=(200, s.StatusSerializer, "The state of this session or token."),
        examples=[
            ("anonymous", {"state": "anonymous", "phone": None, "challenge": None}),
            (
                "pending",
                {
                    "state": "pending",
                    "phone": EXAMPLE_PHONE,
                    "challenge": {
                        "purpose": "login",
                        "expires_in": 287,
                        "attempts_left": 5,
                        "resend_in": 17,
                    },
                },
            ),
        ],
    )
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
        operation_id="otp_login",
        summary="Password step",
        description=(
            "Signs the session in with a username and password. When the user must pass "
            "the second factor the login is `pending` (send and verify a code next) or "
            "`enroll` (add a phone first); an unknown user and a wrong password answer alike."
        ),
        request=s.LoginSerializer,
        success=(200, s.StateSerializer, "Signed in; `state` says what comes next."),
        errors=[InvalidCredentials(), otp.RateLimited(), otp.RateLimitUnavailable()],
        examples=[
            ("pending", {"state": "pending", "phone": EXAMPLE_PHONE}),
            ("not_required", {"state": "not_required", "phone": None}),
        ],
    )
    def post(self, request: Request) -> Response:
        data = _valid(s.LoginSerializer, request)
        check_login(request, data["username"])
        user = authenticate(request._request, username=data["username"], password=data["password"])
        if user is None:
            raise InvalidCredentials()
        login(request._request, user)
        request.user = user
        current = flow.login_state(request)
        phone = state.login_phone(request._request, user) if current == state.PENDING else None
        return Response({"state": current, "phone": mask_phone_number(phone) if phone else None})


class SendView(OtpAPIView):
    """First code or resend for the pending login, or for an active phone challenge."""

    @document(
        operation_id="otp_send",
        summary="Send or resend a code",
        description=(
            "Sends the first code of a pending login, or a new code for the active "
            "challenge (pending login, or a number given to `phone/`) once `resend_in` "
            "has passed. With `phone_number` it does what `phone/` does."
        ),
        request=s.SendSerializer,
        success=(202, s.SentSerializer, "A code is on its way."),
        errors=[otp.NoChallenge(), *PHONE_ERRORS, *SEND_ERRORS],
        examples=[
            ("sent", SENT_EXAMPLE),
        ],
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
        operation_id="otp_phone",
        summary="Enrol or change a phone number",
        description=(
            "Sends a code to a new number; `verify/` then confirms it. Allowed while "
            "enrolling a first phone, after a verified login, or for an anonymous session "
            "when `INFOBIP_OTP_ANONYMOUS_PHONE_VERIFICATION` is on. Numbers outside the "
            "allowed countries or types are refused before any SMS is sent."
        ),
        request=s.PhoneNumberSerializer,
        success=(202, s.SentSerializer, "A code is on its way to the new number."),
        errors=[*PHONE_ERRORS, *SEND_ERRORS],
        examples=[
            ("sent", SENT_EXAMPLE),
        ],
    )
    def post(self, request: Request) -> Response:
        data = _valid(s.PhoneNumberSerializer, request)
        return self.challenge_response(flow.start_phone_verification(request, data["phone_number"]))


class VerifyView(OtpAPIView):
    """Check a code: completes the pending login, or confirms a new number."""

    @document(
        operation_id="otp_verify",
        summary="Verify a code",
        description=(
            "Checks the code of the active challenge: completes a pending login (the "
            "session key and CSRF token change), or confirms a new number. Every failed "
            "verification has status 400 and the same shape; only `code` and "
            "`attempts_left` differ."
        ),
        request=s.PinSerializer,
        success=(200, s.StateSerializer, "The code was right."),
        errors=[
            otp.InvalidPin(attempts_left=4),
            otp.ChallengeExpired(),
            otp.ChallengeLocked(),
            otp.NoChallenge(),
            otp.FactorLocked(),
            otp.RateLimited(),
            otp.ProviderUnavailable(),
            otp.RateLimitUnavailable(),
        ],
        examples=[
            ("login verified", {"state": "verified"}),
            ("number confirmed", {"state": "verified", "phone": EXAMPLE_PHONE}),
        ],
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
