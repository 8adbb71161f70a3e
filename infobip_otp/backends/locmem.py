"""Test backend: each SMS is appended to ``infobip_otp.backends.locmem.outbox``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .base import LocalPinBackend, render_message

if TYPE_CHECKING:
    from ..models import OtpChallenge


@dataclass(frozen=True)
class OutboxMessage:
    to: str
    pin: str
    text: str
    challenge_id: str
    purpose: str


#: Like ``django.core.mail.outbox``; tests clear it between runs.
outbox: list[OutboxMessage] = []


class LocMemBackend(LocalPinBackend):
    """Keeps every message in memory so tests can read the PIN."""

    def deliver(self, challenge: OtpChallenge, pin: str) -> None:
        outbox.append(
            OutboxMessage(
                to=challenge.phone_number,
                pin=pin,
                text=render_message(pin),
                challenge_id=str(challenge.public_id),
                purpose=challenge.purpose,
            )
        )


def last_pin(to: str | None = None) -> str | None:
    """The newest PIN in the outbox, optionally for one E.164 number."""
    for message in reversed(outbox):
        if to is None or message.to == to:
            return message.pin
    return None
