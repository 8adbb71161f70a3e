"""Signal receivers connected in ``apps.py``: every ``login()`` starts the OTP step."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.dispatch import receiver

from . import services, state, trusted_devices
from .models import Purpose


@receiver(user_logged_in, dispatch_uid="infobip_otp.start_otp_step")
def start_otp_step(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    """Mark the session pending (or enrolling) when the policy asks for a code.

    Connected to ``user_logged_in``, so the login view, the admin login, the
    password-reset auto-login and any third-party ``login()`` call all end
    here, not only the views this app ships (SECURITY rule 5).
    """
    if request is None or getattr(request, "session", None) is None:
        return
    kind = state.required_kind(user, request) or state.NOT_REQUIRED
    if kind == state.PENDING and trusted_devices.is_trusted(request, user):
        kind = state.VERIFIED
    state.begin(request, user, kind)


@receiver(user_logged_out, dispatch_uid="infobip_otp.end_otp_step")
def end_otp_step(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    """Logout while pending ends the login challenge too (SECURITY T19)."""
    current = state.get_state(request) if request is not None else None
    if not current or not current.get("challenge") or user is None:
        return
    challenge = services.get_bound_challenge(
        current["challenge"],
        purpose=Purpose.LOGIN,
        user=user,
        session_key=request.session.session_key,
    )
    if challenge is not None:
        services.cancel_challenge(challenge)
