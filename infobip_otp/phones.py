"""Phone number parsing, policy and masking, on top of ``phonenumbers``."""

from __future__ import annotations

import phonenumbers
from phonenumbers import PhoneNumberType

from .conf import app_settings
from .exceptions import InvalidPhoneNumber, NumberTypeNotAllowed, RegionNotAllowed


def parse_phone_number(raw: str, region: str | None = None) -> phonenumbers.PhoneNumber:
    """Parse ``raw`` (international, or national for ``INFOBIP_OTP_DEFAULT_REGION``)."""
    if not isinstance(raw, str) or not raw.strip() or len(raw) > 64:
        raise InvalidPhoneNumber()
    try:
        number = phonenumbers.parse(raw, region or app_settings.DEFAULT_REGION)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneNumber() from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhoneNumber()
    return number


def normalize_phone_number(raw: str, region: str | None = None) -> str:
    """Return ``raw`` as E.164 after every policy check, or raise a ``PhoneNumberError``.

    The checks run before any provider call, so a refused number never costs
    an SMS (SMS-pumping defence).
    """
    number = parse_phone_number(raw, region)
    allowed_regions = app_settings.ALLOWED_REGIONS
    region = phonenumbers.region_code_for_number(number)
    if allowed_regions is not None and region not in {r.upper() for r in allowed_regions}:
        raise RegionNotAllowed()
    allowed_types = {_number_type(name) for name in app_settings.ALLOWED_NUMBER_TYPES}
    if phonenumbers.number_type(number) not in allowed_types:
        raise NumberTypeNotAllowed()
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _number_type(name: str | int) -> int:
    if isinstance(name, int):
        return name
    try:
        return getattr(PhoneNumberType, name.upper())
    except AttributeError:
        raise ValueError(f"Unknown phone number type {name!r}") from None


def mask_phone_number(e164: str) -> str:
    """``+447700900123`` -> ``+44*******123``: country code and last three digits."""
    if not e164:
        return ""
    digits = e164.lstrip("+")
    try:
        country = str(phonenumbers.parse(e164).country_code)
    except phonenumbers.NumberParseException:
        country = digits[:1]
    if len(digits) <= len(country) + 3:
        return "+" + "*" * len(digits)
    hidden = len(digits) - len(country) - 3
    return f"+{country}{'*' * hidden}{digits[-3:]}"


def to_provider_format(e164: str) -> str:
    """International digits without ``+``, the form Infobip documents for ``to``."""
    return e164.lstrip("+")
