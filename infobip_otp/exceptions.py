"""One exception root, with a status, a default detail and a stable code.

Views turn any :class:`OtpError` into ``{"detail": ..., "code": ...}`` with
``status_code``; the codes are part of the public contract.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _


class OtpError(Exception):
    """Root of every error this app raises on purpose."""

    status_code = 400
    default_detail: Any = _("The request could not be completed.")
    default_code = "error"

    def __init__(self, detail: Any = None, *, code: str | None = None) -> None:
        self.detail = detail if detail is not None else self.default_detail
        self.code = code or self.default_code
        super().__init__(str(self.detail))

    def as_dict(self) -> dict[str, Any]:
        """The JSON body a view answers with."""
        return {"detail": str(self.detail), "code": self.code}


class ConfigurationError(OtpError):
    """The app is configured in a way it refuses to run with."""

    status_code = 500
    default_detail = _("Two-factor authentication is misconfigured.")
    default_code = "configuration_error"


# Verification failures: same status and shape, only the code differs
# (SECURITY rule 6), so a client learns what the user needs and nothing more.
class VerificationFailed(OtpError):
    """Base for every failed verification."""

    default_detail = _("The code could not be verified.")
    default_code = "invalid_pin"

    def __init__(self, detail: Any = None, *, attempts_left: int = 0, **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        self.attempts_left = attempts_left

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "attempts_left": self.attempts_left}


class InvalidPin(VerificationFailed):
    default_detail = _("The code is not correct.")
    default_code = "invalid_pin"


class ChallengeExpired(VerificationFailed):
    default_detail = _("The code has expired. Request a new one.")
    default_code = "expired"


class ChallengeLocked(VerificationFailed):
    default_detail = _("Too many wrong codes. Start again to get a new code.")
    default_code = "locked"


class NoChallenge(VerificationFailed):
    default_detail = _("There is no code to verify. Request a new one.")
    default_code = "no_challenge"


class FactorLocked(VerificationFailed):
    """The user's SMS factor is locked after too many failures across challenges."""

    default_detail = _("Too many failed codes. Contact support to unlock your account.")
    default_code = "factor_locked"


class RateLimited(OtpError):
    """Too many requests; ``retry_after`` is in whole seconds."""

    status_code = 429
    default_detail = _("Too many requests. Try again later.")
    default_code = "rate_limited"

    def __init__(self, detail: Any = None, *, retry_after: int = 1, **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        self.retry_after = max(1, int(retry_after))


class ResendCooldown(RateLimited):
    default_detail = _("Please wait before requesting another code.")


class TooManySends(RateLimited):
    default_detail = _("Too many codes were sent. Start again later.")


class RateLimitUnavailable(OtpError):
    """The rate-limit cache failed; requests are refused, never let through unlimited."""

    status_code = 503
    default_detail = _("The service is busy. Try again in a moment.")
    default_code = "temporarily_unavailable"

    def __init__(self, detail: Any = None, *, retry_after: int = 30, **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        self.retry_after = retry_after


class SendBudgetExhausted(OtpError):
    """The project-wide hourly SMS budget is spent."""

    status_code = 503
    default_detail = _("Codes cannot be sent right now. Try again later.")
    default_code = "send_budget_exhausted"
    retry_after = 300


class PhoneNumberError(OtpError):
    """Base for refused phone numbers."""

    default_detail = _("Enter a valid mobile phone number.")
    default_code = "invalid_phone"


class InvalidPhoneNumber(PhoneNumberError):
    pass


class RegionNotAllowed(PhoneNumberError):
    default_detail = _("Numbers from this country are not accepted.")
    default_code = "region_not_allowed"


class NumberTypeNotAllowed(PhoneNumberError):
    default_detail = _("Enter a mobile phone number.")
    default_code = "number_type_not_allowed"


class InvalidCredentials(OtpError):
    """The API's password step failed; the same for an unknown user."""

    default_detail = _("The username or password is not correct.")
    default_code = "invalid_credentials"


class OtpRequired(OtpError):
    status_code = 401
    default_detail = _("Enter the code we sent you to continue.")
    default_code = "otp_required"


class NotAuthenticated(OtpRequired):
    """The request is anonymous where a signed-in user is needed."""

    default_detail = _("Sign in first.")
    default_code = "not_authenticated"


class LoginExpired(OtpRequired):
    """The pending login waited longer than ``INFOBIP_OTP_LOGIN_TIMEOUT``: sign in again."""

    default_detail = _("Your sign-in expired. Sign in again.")
    default_code = "login_expired"


# Provider errors. Users only ever see ProviderUnavailable's generic text; the
# provider's own message stays in ``provider_text`` for the (redacted) log.
class ProviderError(OtpError):
    """The SMS provider refused or failed a request."""

    status_code = 503
    default_detail = _("The code service is unavailable. Try again in a moment.")
    default_code = "provider_unavailable"

    def __init__(
        self,
        detail: Any = None,
        *,
        http_status: int | None = None,
        provider_code: str = "",
        provider_text: str = "",
        retry_after: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(detail, **kwargs)
        self.http_status = http_status
        self.provider_code = provider_code
        self.provider_text = provider_text
        self.retry_after = retry_after


class ProviderUnavailable(ProviderError):
    """Timeout, connection failure, 5xx, malformed answer or open circuit breaker."""


class ProviderRateLimited(ProviderError):
    """The provider answered 429."""

    status_code = 429
    default_code = "rate_limited"


class ProviderRequestError(ProviderError):
    """400: the provider rejected what we sent (``validation_errors`` says why)."""

    def __init__(self, *args: Any, validation_errors: dict | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.validation_errors = validation_errors or {}


class ProviderAuthError(ProviderError):
    """401/403: the API key is wrong or lacks a scope."""


class ProviderNotFound(ProviderError):
    """404: unknown application, template or PIN id."""
