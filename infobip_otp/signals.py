"""Signals sent by the service layer.

Receivers get keyword arguments only; none of them ever carries a PIN or a
full phone number (use ``challenge.masked_phone``).

Each also carries ``request`` (None outside a request).

- ``otp_sent(sender, challenge, resend)``: a code went out (first or resend).
- ``otp_verified(sender, challenge, user)``: a code was accepted.
- ``otp_failed(sender, challenge, user, reason, device)``: a code was refused;
  ``reason`` is the error code (``invalid_pin``, ``expired``, ``locked``,
  ``no_challenge``, ``factor_locked``); ``device`` is the user's ``PhoneDevice``
  as it is after this failure (None without one). Not sent when there was no
  challenge at all.
- ``otp_locked(sender, user, device)``: the user's SMS factor was locked after
  too many consecutive failures across challenges.
- ``otp_budget_exhausted(sender, budget, request)``: the hourly SMS budget
  (``INFOBIP_OTP_SEND_BUDGET``) is spent; further sends answer 503.
- ``otp_phone_changed(sender, user, old_phone, new_phone)``: a user confirmed a
  new number; both are masked (``old_phone`` is None for a first enrolment).
"""

from django.dispatch import Signal

otp_sent = Signal()
otp_verified = Signal()
otp_failed = Signal()
otp_locked = Signal()
otp_budget_exhausted = Signal()
otp_phone_changed = Signal()
