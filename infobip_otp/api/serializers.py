"""Request and response serializers; the field names are part of the public contract."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from ..conf import app_settings


class PinSerializer(serializers.Serializer):
    pin = serializers.CharField(max_length=32, trim_whitespace=True)

    def validate_pin(self, value: str) -> str:
        pin = "".join(value.split())
        length = app_settings.PIN_LENGTH
        if len(pin) != length or not pin.isdigit():
            raise serializers.ValidationError(
                _("Enter the %(length)d-digit code.") % {"length": length}
            )
        return pin


class PhoneNumberSerializer(serializers.Serializer):
    phone_number = serializers.CharField(max_length=32, trim_whitespace=True)


class SendSerializer(serializers.Serializer):
    phone_number = serializers.CharField(max_length=32, trim_whitespace=True, required=False)


class LoginSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=254, trim_whitespace=False)
    password = serializers.CharField(max_length=4096, trim_whitespace=False)


class ChallengeSerializer(serializers.Serializer):
    purpose = serializers.CharField()
    expires_in = serializers.IntegerField(help_text=_("Seconds until the code expires."))
    attempts_left = serializers.IntegerField()
    resend_in = serializers.IntegerField(
        help_text=_("Seconds until a new code may be requested (0: now).")
    )


class StatusSerializer(serializers.Serializer):
    state = serializers.ChoiceField(
        choices=["anonymous", "pending", "enroll", "verified", "not_required"]
    )
    phone = serializers.CharField(allow_null=True, help_text=_("Masked number."))
    challenge = ChallengeSerializer(allow_null=True)


class SentSerializer(serializers.Serializer):
    phone = serializers.CharField(help_text=_("Masked number the code went to."))
    expires_in = serializers.IntegerField()
    resend_in = serializers.IntegerField()
    attempts_left = serializers.IntegerField()


class StateSerializer(serializers.Serializer):
    state = serializers.ChoiceField(
        choices=["anonymous", "pending", "enroll", "verified", "not_required"]
    )
    phone = serializers.CharField(allow_null=True, required=False)


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    code = serializers.CharField()
    attempts_left = serializers.IntegerField(required=False)
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()), required=False
    )
