"""E-mail the user through a channel independent of the phone (SECURITY T40, T49).

Wrong codes after a correct password mean the password is known to someone:
the user hears about it by e-mail, with the time, IP address and browser, after
``INFOBIP_OTP_NOTIFY_AFTER_FAILURES`` consecutive failures and when the factor
locks. A changed phone number is announced the same way.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.mail import send_mail
from django.dispatch import receiver
from django.template.loader import render_to_string
from django.utils import timezone

from .conf import app_settings
from .models import PhoneDevice
from .ratelimits import client_ip
from .signals import otp_failed, otp_locked, otp_phone_changed

logger = logging.getLogger("infobip_otp")

# Failures that count against the account (see services._count_user_failure).
_COUNTED = frozenset({"invalid_pin", "locked"})


def _send(user: Any, template: str, request: Any, **context: Any) -> None:
    if not getattr(user, "email", ""):
        return
    context.update(
        user=user,
        when=timezone.now(),
        ip=client_ip(request) if request is not None else None,
        browser=(request.headers.get("user-agent", "")[:200] if request is not None else None),
    )
    subject = " ".join(render_to_string(f"{template}_subject.txt", context).split())
    body = render_to_string(f"{template}_body.txt", context)
    try:
        send_mail(subject, body, app_settings.NOTIFY_FROM_EMAIL, [user.email])
    except Exception:
        # A mail outage must not turn a wrong code into a server error.
        logger.exception("otp notification failed", extra={"event": "otp.notify_failed"})


@receiver(otp_failed, dispatch_uid="infobip_otp.notify_failures")
def notify_repeated_failures(
    sender: Any, user: Any, reason: str, request: Any = None, **kwargs: Any
) -> None:
    """After N consecutive wrong codes (once per streak), tell the user."""
    threshold = app_settings.NOTIFY_AFTER_FAILURES
    if not threshold or user is None or reason not in _COUNTED:
        return
    if "device" in kwargs:  # read by the service for every failure (SECURITY T31)
        device = kwargs["device"]
    else:
        device = PhoneDevice.objects.filter(user=user).first()
    if device is not None and not device.is_locked and device.failure_count == threshold:
        _send_failures(user, device, request)


@receiver(otp_locked, dispatch_uid="infobip_otp.notify_locked")
def notify_locked(sender: Any, user: Any, device: Any, request: Any = None, **kwargs: Any) -> None:
    """The SMS factor locked: tell the user what happened and what to do."""
    _send_failures(user, device, request)


def _send_failures(user: Any, device: PhoneDevice, request: Any) -> None:
    _send(
        user,
        "infobip_otp/email/failures",
        request,
        failures=device.failure_count,
        phone=device.masked_phone,
        locked=device.is_locked,
    )


@receiver(otp_phone_changed, dispatch_uid="infobip_otp.notify_phone_changed")
def notify_phone_changed(
    sender: Any,
    user: Any,
    old_phone: str | None,
    new_phone: str,
    request: Any = None,
    **kwargs: Any,
) -> None:
    """A new number was confirmed: announce it by e-mail (masked numbers only)."""
    _send(
        user,
        "infobip_otp/email/phone_changed",
        request,
        old_phone=old_phone,
        new_phone=new_phone,
    )
