"""Forms of the HTML pages; the field names match the API (``pin``, ``phone_number``)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from .conf import app_settings
from .exceptions import PhoneNumberError
from .phones import normalize_phone_number


class PinForm(forms.Form):
    pin = forms.CharField(
        label=_("Code"),
        strip=True,
        widget=forms.TextInput(
            attrs={
                "autocomplete": "one-time-code",
                "inputmode": "numeric",
                "pattern": "[0-9]*",
                "autofocus": True,
            }
        ),
    )
    remember = forms.BooleanField(label=_("Trust this browser"), required=False)

    def __init__(self, *args: Any, allow_remember: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        length = app_settings.PIN_LENGTH
        self.fields["pin"].widget.attrs.update({"minlength": length, "maxlength": length})
        if not allow_remember or app_settings.REMEMBER_DEVICE_DAYS <= 0:
            del self.fields["remember"]

    def refuse(self, message: str) -> None:
        """Show why the code was refused, with the field emptied for the next try."""
        self.add_error("pin", message)
        self.data = {**self.data, "pin": ""}

    def clean_pin(self) -> str:
        pin = "".join(self.cleaned_data["pin"].split())
        length = app_settings.PIN_LENGTH
        if len(pin) != length or not pin.isdigit():
            raise forms.ValidationError(
                _("Enter the %(length)d-digit code."), code="invalid_pin", params={"length": length}
            )
        return pin


class PhoneForm(forms.Form):
    phone_number = forms.CharField(
        label=_("Mobile number"),
        max_length=32,
        widget=forms.TextInput(attrs={"autocomplete": "tel", "inputmode": "tel"}),
    )

    def clean_phone_number(self) -> str:
        try:
            return normalize_phone_number(self.cleaned_data["phone_number"])
        except PhoneNumberError as exc:
            raise forms.ValidationError(str(exc.detail), code=exc.code) from exc
