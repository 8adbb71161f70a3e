"""Challenges (one code sent to one number for one purpose) and confirmed phones."""

from __future__ import annotations

import uuid
from datetime import datetime

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .phones import mask_phone_number


class Purpose(models.TextChoices):
    LOGIN = "login", _("Login")
    ENROLL = "enroll", _("Enrol a phone")
    VERIFY_PHONE = "verify_phone", _("Verify a phone")


class Status(models.TextChoices):
    PENDING = "pending", _("Pending")
    VERIFIED = "verified", _("Verified")
    EXPIRED = "expired", _("Expired")
    LOCKED = "locked", _("Locked")
    FAILED = "failed", _("Send failed")
    CANCELLED = "cancelled", _("Cancelled")


class OtpChallengeQuerySet(models.QuerySet):
    def active(self, now: datetime | None = None) -> OtpChallengeQuerySet:
        """Pending challenges that have not expired yet."""
        return self.filter(status=Status.PENDING, expires_at__gt=now or timezone.now())

    def expired(self, now: datetime | None = None) -> OtpChallengeQuerySet:
        """Challenges whose code can no longer be used, whatever their status says."""
        return self.filter(expires_at__lte=now or timezone.now())

    def for_owner(
        self, *, purpose: str, user_id: int | None = None, session_hash: str = ""
    ) -> OtpChallengeQuerySet:
        """Challenges bound to this (user or session, purpose)."""
        owner = Q(user_id=user_id) if user_id is not None else Q(user__isnull=True)
        return self.filter(owner, purpose=purpose, session_hash=session_hash)


class OtpChallenge(models.Model):
    """One code sent to one number for one purpose, bound to a user and/or a session."""

    public_id = models.UUIDField(
        default=uuid.uuid4,
        unique=True,
        editable=False,
        help_text=_("Random identifier; the primary key never leaves the server."),
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="otp_challenges",
        help_text=_("The user the code is for; empty for anonymous phone verification."),
    )
    session_hash = models.CharField(
        max_length=64,
        blank=True,
        help_text=_("SHA-256 of the session key the challenge is bound to; empty for tokens."),
    )
    phone_number = models.CharField(max_length=20, help_text=_("Destination, E.164."))
    purpose = models.CharField(max_length=16, choices=Purpose.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(
        default=0, help_text=_("Verification attempts counted so far.")
    )
    max_attempts = models.PositiveSmallIntegerField(
        help_text=_("Attempts allowed for this challenge, fixed when it starts.")
    )
    sends = models.PositiveSmallIntegerField(default=0, help_text=_("Codes sent so far."))
    created_at = models.DateTimeField(default=timezone.now)
    last_sent_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(help_text=_("The current code is refused from then on."))
    verified_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(
        null=True, blank=True, help_text=_("When the challenge left the pending state.")
    )
    provider_pin_id = models.CharField(
        max_length=64, blank=True, help_text=_("Infobip pinId; never shown to clients.")
    )
    pin_digest = models.CharField(
        max_length=128,
        blank=True,
        help_text=_("Keyed HMAC of the PIN (local backends only); never the PIN."),
    )

    objects = OtpChallengeQuerySet.as_manager()

    class Meta:
        verbose_name = _("OTP challenge")
        verbose_name_plural = _("OTP challenges")
        ordering = ("-created_at",)
        indexes = [
            models.Index(fields=["expires_at"], name="infobip_otp_expires_idx"),
            models.Index(fields=["user", "purpose", "status"], name="infobip_otp_user_lookup_idx"),
            models.Index(
                fields=["session_hash", "purpose", "status"], name="infobip_otp_sess_lookup_idx"
            ),
            models.Index(fields=["phone_number", "created_at"], name="infobip_otp_phone_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_purpose_display()} code to {self.masked_phone} ({self.status})"

    def __repr__(self) -> str:
        return (
            f"<OtpChallenge {self.public_id} purpose={self.purpose} "
            f"status={self.status} phone={self.masked_phone}>"
        )

    @property
    def masked_phone(self) -> str:
        return mask_phone_number(self.phone_number)

    @property
    def attempts_left(self) -> int:
        return max(0, self.max_attempts - self.attempts)

    def is_active(self, now: datetime | None = None) -> bool:
        return self.status == Status.PENDING and self.expires_at > (now or timezone.now())


class PhoneDevice(models.Model):
    """A user's confirmed phone number and the account-level failure count."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="otp_phone"
    )
    phone_number = models.CharField(max_length=20, help_text=_("Confirmed number, E.164."))
    confirmed_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    failure_count = models.PositiveIntegerField(
        default=0,
        help_text=_("Consecutive failed codes across challenges; reset by a success."),
    )
    locked_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text=_("Set when too many consecutive failures locked the SMS factor."),
    )

    class Meta:
        verbose_name = _("OTP phone")
        verbose_name_plural = _("OTP phones")

    def __str__(self) -> str:
        return f"{self.masked_phone} for user {self.user_id}"

    def __repr__(self) -> str:
        return f"<PhoneDevice user={self.user_id} phone={self.masked_phone}>"

    @property
    def masked_phone(self) -> str:
        return mask_phone_number(self.phone_number)

    @property
    def is_locked(self) -> bool:
        return self.locked_at is not None
