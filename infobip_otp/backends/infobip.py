"""The real backend: Infobip makes, sends and checks the PIN; we keep only its ``pinId``."""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

from ..client import InfobipClient, PinVerification
from ..conf import app_settings
from ..exceptions import ProviderNotFound, ProviderUnavailable
from ..phones import to_provider_format
from .base import BaseBackend, SentCode, VerifyOutcome

if TYPE_CHECKING:
    from ..models import OtpChallenge

logger = logging.getLogger("infobip_otp.client")

_PIN_ERRORS = {
    "WRONG_PIN": VerifyOutcome.WRONG,
    "TTL_EXPIRED": VerifyOutcome.EXPIRED,
    "NO_MORE_PIN_ATTEMPTS": VerifyOutcome.EXHAUSTED,
}
# Must fit OtpChallenge.provider_pin_id.
_MAX_PIN_ID_LENGTH = 64


class InfobipBackend(BaseBackend):
    """Sends through ``POST /2fa/2/pin`` and verifies through ``/2fa/2/pin/{pinId}/verify``.

    A resend is a new send (the service calls :meth:`send` again), so the
    previous code stops working; Infobip's own resend would repeat it.
    """

    def send(self, challenge: OtpChallenge) -> SentCode:
        """Ask Infobip to send a PIN; raise ``ProviderError`` unless an SMS went out.

        An answer without a usable ``pinId``, or with ``smsStatus``
        ``MESSAGE_NOT_SENT`` (Infobip's number lookup found the number
        unreachable), is ``ProviderUnavailable``: no code reached the user, so
        the challenge must end as ``failed``. It is raised here, after the
        client recorded a healthy answer, because it concerns one number and
        must not open the circuit breaker for everyone.
        """
        sent = InfobipClient().send_pin(
            to_provider_format(challenge.phone_number),
            application_id=app_settings.APPLICATION_ID,
            message_id=app_settings.MESSAGE_ID,
        )
        if not sent.pin_id or len(sent.pin_id) > _MAX_PIN_ID_LENGTH:
            raise self._refused("send answer without a usable pinId", "NO_PIN_ID")
        if sent.sms_status == "MESSAGE_NOT_SENT":
            raise self._refused(
                f"SMS not sent (ncStatus={sent.nc_status or '-'})", "MESSAGE_NOT_SENT"
            )
        return SentCode(provider_pin_id=sent.pin_id)

    def verify(self, challenge: OtpChallenge, pin: str) -> VerifyOutcome:
        """Map Infobip's verdict on ``pin``; anything doubtful raises, never verifies.

        A challenge without a ``pinId`` or a PIN that cannot be one of ours
        (not exactly ``PIN_LENGTH`` digits) is ``WRONG`` without a network call.
        An unknown ``pinId`` (404) is ``EXPIRED``: Infobip has forgotten the
        PIN, so no code can ever match it again and a new one is needed.
        """
        length = app_settings.PIN_LENGTH
        if not challenge.provider_pin_id or not re.fullmatch(f"[0-9]{{{length}}}", pin):
            return VerifyOutcome.WRONG
        try:
            answer = InfobipClient().verify_pin(challenge.provider_pin_id, pin)
        except ProviderNotFound:
            logger.info("infobip verify: pinId unknown to the provider, treated as expired")
            return VerifyOutcome.EXPIRED
        return self._outcome(challenge, answer)

    def _outcome(self, challenge: OtpChallenge, answer: PinVerification) -> VerifyOutcome:
        if answer.pin_id is not None and answer.pin_id != challenge.provider_pin_id:
            raise self._refused("verify answer for another pinId", "CONTRADICTORY")
        if answer.verified is True:
            if answer.pin_error is not None:
                raise self._refused("verify answer both verified and failed", "CONTRADICTORY")
            return VerifyOutcome.VERIFIED
        if answer.verified is not False:
            raise self._refused("verify answer without a verdict", "CONTRADICTORY")
        outcome = _PIN_ERRORS.get(answer.pin_error or "")
        if outcome is None:
            # A refusal we cannot classify still costs the user the attempt:
            # refunding it (as a provider error would) could turn an unknown
            # error into unlimited guesses.
            logger.warning("infobip verify: unexpected pinError, counted as a wrong PIN")
            return VerifyOutcome.WRONG
        if outcome is VerifyOutcome.WRONG and answer.attempts_remaining == 0:
            # Infobip has no tries left for this PIN even if we do (its limit
            # is lower than ours): the right code can no longer succeed.
            return VerifyOutcome.EXHAUSTED
        return outcome

    @staticmethod
    def _refused(reason: str, code: str) -> ProviderUnavailable:
        logger.warning("infobip answer refused: %s", reason, extra={"provider_code": code})
        return ProviderUnavailable(provider_code=code, provider_text=reason)
