"""Development backend: the SMS text goes to standard output."""

from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING, TextIO

from .base import LocalPinBackend, render_message

if TYPE_CHECKING:
    from ..models import OtpChallenge


class ConsoleBackend(LocalPinBackend):
    """Writes each SMS to ``stream`` (stdout by default). Refused with ``DEBUG = False``."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self._lock = threading.Lock()

    def deliver(self, challenge: OtpChallenge, pin: str) -> None:
        stream = self.stream or sys.stdout
        with self._lock:
            stream.write(f"[infobip_otp] SMS to {challenge.masked_phone}: {render_message(pin)}\n")
            stream.flush()
