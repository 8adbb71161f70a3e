"""Request and response serializers; the field names are part of the public contract."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from .. import flow, state
from ..conf import app_settings
from ..models import Purpose

LOGIN_STATES = (flow.ANONYMOUS, state.PENDING, state.ENROLL, state.VERIFIED, state.NOT_REQUIRED)
LOGIN_STATES_HELP = _(
    "`anonymous`: not signed in; `pending`: a code must be verified; `enroll`: a phone "
    "must be added first; `verified`: both factors passed; `not_required`: no code is "
    "asked of this user."
)


class PinSerializer(serializers.Serializer):
    # The field is built per instance, so its pattern (and the schema's)
    # follows the current INFOBIP_OTP_PIN_LENGTH.
    def get_fields(self) -> dict[str, serializers.Field]:
        length = app_settings.PIN_LENGTH
        message = _("Enter the %(length)d-digit code.") % {"length": length}
        # [0-9], not \d: other scripts' digits are not a code.
        pin = serializers.RegexField(
            rf"^\s*(?:[0-9]\s*){{{length}}}$",
            max_length=32,
            trim_whitespace=True,
            error_messages={"invalid": message},
            help_text=_(
                "The code from the SMS: `INFOBIP_OTP_PIN_LENGTH` digits; spaces are ignored."
            ),
        )
        return {"pin": pin}

    def validate_pin(self, value: str) -> str:
        return "".join(value.split())


PHONE_NUMBER_HELP = _(
    "International (`+447700900123`) or national for `INFOBIP_OTP_DEFAULT_REGION`; "
    "must be a mobile number of an allowed country."
)


class PhoneNumberSerializer(serializers.Serializer):
    phone_number = serializers.CharField(
        max_length=32, trim_whitespace=True, help_text=PHONE_NUMBER_HELP
    )


class SendSerializer(serializers.Serializer):
    phone_number = serializers.CharField(
        max_length=32,
        trim_whitespace=True,
        required=False,
        help_text=_("Optional: send to this new number instead, as `phone/` does."),
    )


class LoginSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=254, trim_whitespace=False)
    password = serializers.CharField(
        max_length=4096, trim_whitespace=False, style={"input_type": "password"}
    )


# Time and attempts left of the current code, shared by status and send (a
# comment, not a docstring: drf-spectacular would copy it into both schemas).
class CodeTimingSerializer(serializers.Serializer):
    expires_in = serializers.IntegerField(
        min_value=0, help_text=_("Seconds until the code expires.")
    )
    attempts_left = serializers.IntegerField(
        min_value=0, help_text=_("Wrong codes still accepted before the challenge locks.")
    )
    resend_in = serializers.IntegerField(
        min_value=0, help_text=_("Seconds until a new code may be requested (0: now).")
    )


class ChallengeSerializer(CodeTimingSerializer):
    purpose = serializers.ChoiceField(
        choices=Purpose.choices,
        help_text=_(
            "What the code is for: `login`, `enroll` (a first phone) or `verify_phone` "
            "(a new number)."
        ),
    )


class StatusSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=LOGIN_STATES, help_text=LOGIN_STATES_HELP)
    phone = serializers.CharField(
        allow_null=True,
        help_text=_("The user's number, masked (`+44*******123`), or null if none."),
    )
    challenge = ChallengeSerializer(
        allow_null=True, help_text=_("The challenge a code is expected for, or null.")
    )


class SentSerializer(CodeTimingSerializer):
    phone = serializers.CharField(help_text=_("Masked number the code went to."))


class StateSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=LOGIN_STATES, help_text=LOGIN_STATES_HELP)
    phone = serializers.CharField(
        allow_null=True,
        required=False,
        help_text=_("Masked number: the user's (login) or the one just confirmed (`verify/`)."),
    )


class ErrorSerializer(serializers.Serializer):
    """The body of every failure."""

    detail = serializers.CharField(help_text=_("A message for the user."))
    code = serializers.CharField(
        help_text=_("Stable error code (see each operation's examples); branch on this.")
    )
    attempts_left = serializers.IntegerField(
        required=False,
        min_value=0,
        help_text=_("Failed verifications: wrong codes still accepted."),
    )
    # The serializer metaclass moves declared fields out of the class, so this
    # does not shadow ``Serializer.fields``.
    fields = serializers.DictField(  # type: ignore[assignment]
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text=_("Malformed input: messages per request field."),
    )
