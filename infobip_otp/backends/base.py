"""The interface every backend implements, and the local PIN helpers."""

from __future__ import annotations

import enum
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.utils.crypto import constant_time_compare, salted_hmac

from ..conf import app_settings

if TYPE_CHECKING:
    from ..models import OtpChallenge


@dataclass(frozen=True)
class SentCode:
    """What a backend reports after a send; exactly one field is set."""

    provider_pin_id: str = ""
    pin_digest: str = ""


class VerifyOutcome(enum.Enum):
    VERIFIED = "verified"
    WRONG = "wrong"
    EXPIRED = "expired"
    EXHAUSTED = "exhausted"


class BaseBackend:
    """Send a code for a challenge, and check a code against it.

    The service layer has already enforced TTL, attempts and cooldowns before
    calling either method; a backend only delivers and compares.
    """

    def send(self, challenge: OtpChallenge) -> SentCode:
        raise NotImplementedError

    def verify(self, challenge: OtpChallenge, pin: str) -> VerifyOutcome:
        raise NotImplementedError


def make_pin(length: int | None = None) -> str:
    """A numeric PIN from the OS CSPRNG."""
    length = length or app_settings.PIN_LENGTH
    return "".join(secrets.choice("0123456789") for _ in range(length))


def pin_digest(challenge: OtpChallenge, pin: str) -> str:
    """Keyed HMAC (from ``SECRET_KEY``) of the PIN, bound to one challenge.

    Binding to ``public_id`` means a digest copied to another row, or a PIN
    sent for another challenge, never matches.
    """
    return salted_hmac(
        "infobip_otp.pin", f"{challenge.public_id}:{pin}", algorithm="sha256"
    ).hexdigest()


def render_message(pin: str) -> str:
    return app_settings.MESSAGE_TEXT.replace("{{pin}}", pin)


class LocalPinBackend(BaseBackend):
    """Makes the PIN here and keeps only its digest; subclasses deliver the text."""

    def send(self, challenge: OtpChallenge) -> SentCode:
        pin = make_pin()
        self.deliver(challenge, pin)
        return SentCode(pin_digest=pin_digest(challenge, pin))

    def verify(self, challenge: OtpChallenge, pin: str) -> VerifyOutcome:
        if challenge.pin_digest and constant_time_compare(
            challenge.pin_digest, pin_digest(challenge, pin)
        ):
            return VerifyOutcome.VERIFIED
        return VerifyOutcome.WRONG

    def deliver(self, challenge: OtpChallenge, pin: str) -> None:
        raise NotImplementedError
