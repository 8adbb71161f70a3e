"""Make the Infobip 2FA application and SMS template match our settings.

Infobip's defaults are weaker than ours (15-minute PINs, 10 attempts, a PIN
that verifies again): our limits are enforced by the service layer, and these
provider limits are the backstop, so they are written from the same settings.
``manage.py infobip_otp_setup`` and the test fixtures both build on this.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

from .client import Application, InfobipClient, MessageTemplate
from .conf import app_settings
from .exceptions import ConfigurationError

PIN_PLACEHOLDER = "{{pin}}"
MAX_PIN_TTL = 600
MIN_PIN_LENGTH = 6

_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^(\d+)?(ms|s|m|h|d)$")
_LIMIT = re.compile(r"^(\d+)/(\d*(?:ms|s|m|h|d))$")


class Writer(Protocol):
    """Where progress goes: a text stream or a command's ``self.stdout``."""

    def write(self, text: str, /) -> Any: ...


class Provisioned(NamedTuple):
    """The ids to put in settings, and whether anything was (or would be) changed."""

    application_id: str
    message_id: str
    changed: bool


def check_settings() -> None:
    """Raise ``ConfigurationError`` for settings we refuse to write to Infobip."""
    _require_credentials()
    ttl = app_settings.PIN_TTL
    if not is_safe_pin_ttl(ttl):
        raise ConfigurationError(
            f"INFOBIP_OTP_PIN_TTL must be 1 to {MAX_PIN_TTL} seconds (a code lives at most "
            f"10 minutes); it is {ttl!r}."
        )
    length = app_settings.PIN_LENGTH
    if not is_safe_pin_length(length):
        raise ConfigurationError(
            f"INFOBIP_OTP_PIN_LENGTH must be at least {MIN_PIN_LENGTH} digits; it is {length!r}."
        )
    attempts = app_settings.MAX_ATTEMPTS
    if not isinstance(attempts, int) or attempts < 1:
        raise ConfigurationError(
            f"INFOBIP_OTP_MAX_ATTEMPTS must be at least 1; it is {attempts!r}."
        )
    if PIN_PLACEHOLDER not in app_settings.MESSAGE_TEXT:
        raise ConfigurationError(
            f"INFOBIP_OTP_MESSAGE_TEXT must contain {PIN_PLACEHOLDER}, where Infobip puts the code."
        )
    if _limit(app_settings.SEND_PER_NUMBER_LIMIT) is None:
        raise ConfigurationError(
            "INFOBIP_OTP_SEND_PER_NUMBER_LIMIT must look like 5/1d (count/time, unit ms s m h d)."
        )


def is_safe_pin_ttl(seconds: Any) -> bool:
    """A code lifetime we accept: whole seconds, more than 0, at most 10 minutes."""
    return _is_whole_number(seconds) and 0 < seconds <= MAX_PIN_TTL


def is_safe_pin_length(digits: Any) -> bool:
    """A code length we accept: a whole number of at least 6 digits."""
    return _is_whole_number(digits) and digits >= MIN_PIN_LENGTH


def audit_configuration(client: InfobipClient | None = None) -> list[str]:
    """What makes the live Infobip application or SMS template weaker than our rules.

    Reads the account, writes nothing; an empty list means it is safe. Our
    service layer enforces TTL, attempts and single use itself, so these are
    the backstop: a PIN Infobip verifies twice, keeps for longer than 10
    minutes or makes shorter than 6 digits (or not digits) is refused.
    """
    _require_credentials()
    client = client or InfobipClient(breaker=None)
    application = _find_application(client.list_applications(), app_settings.APPLICATION_NAME)
    if application is None:
        wanted = app_settings.APPLICATION_ID or app_settings.APPLICATION_NAME
        return [f"No Infobip application {wanted!r} was found; run manage.py infobip_otp_setup."]
    problems = []
    configuration = application.configuration
    multiple = configuration.get("allowMultiplePinVerifications")
    if multiple is not False:
        problems.append(
            f"allowMultiplePinVerifications is {multiple!r}: a verified PIN must not verify again."
        )
    ttl = configuration.get("pinTimeToLive")
    seconds = _duration(ttl)
    if seconds is None or seconds > MAX_PIN_TTL:
        problems.append(f"pinTimeToLive is {ttl!r}: a PIN may live at most 10 minutes.")
    template = _find_template(
        client.list_templates(application.application_id), app_settings.MESSAGE_TEXT
    )
    if template is None:
        problems.append("No SMS template was found; run manage.py infobip_otp_setup.")
        return problems
    if template.pin_type != "NUMERIC":
        problems.append(f"pinType is {template.pin_type!r}: PINs must be NUMERIC.")
    length = template.pin_length
    if length != app_settings.PIN_LENGTH or not is_safe_pin_length(length):
        problems.append(
            f"pinLength is {length!r}: it must be INFOBIP_OTP_PIN_LENGTH "
            f"({app_settings.PIN_LENGTH}), at least {MIN_PIN_LENGTH}."
        )
    return problems


def pin_time_to_live(seconds: int) -> str:
    """Infobip's ``pinTimeToLive`` for ``seconds``: ``5m`` when whole minutes, else ``300s``."""
    return f"{seconds // 60}m" if seconds % 60 == 0 else f"{seconds}s"


def desired_configuration() -> dict[str, Any]:
    """The application configuration our settings call for (Infobip's camelCase keys)."""
    return {
        "pinAttempts": app_settings.MAX_ATTEMPTS,
        "pinTimeToLive": pin_time_to_live(app_settings.PIN_TTL),
        "allowMultiplePinVerifications": False,
        "sendPinPerPhoneNumberLimit": app_settings.SEND_PER_NUMBER_LIMIT,
    }


def desired_template() -> dict[str, Any]:
    """The SMS template fields our settings call for; ``senderId`` only when set."""
    template: dict[str, Any] = {
        "messageText": app_settings.MESSAGE_TEXT,
        "pinType": "NUMERIC",
        "pinLength": app_settings.PIN_LENGTH,
    }
    if app_settings.SENDER_ID:
        template["senderId"] = app_settings.SENDER_ID
    return template


def ensure_application_and_template(
    client: InfobipClient | None = None, stdout: Writer | None = None, *, dry_run: bool = False
) -> Provisioned:
    """Create or update the application and template; write nothing that already matches.

    The application is the one with ``INFOBIP_OTP_APPLICATION_ID`` if it
    exists, else the one named ``INFOBIP_OTP_APPLICATION_NAME``. The template
    is the one with ``INFOBIP_OTP_MESSAGE_ID``, else one with our text, else
    the application's only SMS template. With ``dry_run`` nothing is written
    and the ids of what would be created are empty. Raises
    ``ConfigurationError`` for refused settings and ``ProviderError`` when
    Infobip fails.
    """
    check_settings()
    # An operator tool: it must see Infobip's real answer, never a fast "circuit open".
    client = client or InfobipClient(breaker=None)

    def say(message: str) -> None:
        if stdout is not None:
            stdout.write(message + "\n")

    application, app_changed = _ensure_application(client, say, dry_run)
    if application is None:  # a dry run, and no application yet
        say(f"Would create an SMS template: {_describe(desired_template())}")
        return Provisioned("", "", True)
    template, template_changed = _ensure_template(client, application.application_id, say, dry_run)
    return Provisioned(
        application.application_id,
        template.message_id if template else "",
        app_changed or template_changed,
    )


def _ensure_application(
    client: InfobipClient, say: Callable[[str], None], dry_run: bool
) -> tuple[Application | None, bool]:
    name = app_settings.APPLICATION_NAME
    desired = desired_configuration()
    application = _find_application(client.list_applications(), name)
    if application is None:
        if dry_run:
            say(f"Would create application {name!r}: {_describe(desired)}")
            return None, True
        created = client.create_application(name, desired)
        say(f"Created application {name!r} ({created.application_id}): {_describe(desired)}")
        return created, True
    changes = {
        key: (application.configuration.get(key), value)
        for key, value in desired.items()
        if not _same_setting(key, application.configuration.get(key), value)
    }
    if not application.enabled:
        changes["enabled"] = (False, True)
    if not changes:
        say(f"Application {application.name!r} ({application.application_id}) is up to date.")
        return application, False
    described = _describe_changes(changes)
    if dry_run:
        say(f"Would update application {application.application_id}: {described}")
        return application, True
    # PUT replaces the whole application: keep the fields we do not manage.
    updated = client.update_application(
        application.application_id,
        name=application.name,
        configuration={**application.configuration, **desired},
        enabled=True,
    )
    say(f"Updated application {application.application_id}: {described}")
    return updated, True


def _ensure_template(
    client: InfobipClient, app_id: str, say: Callable[[str], None], dry_run: bool
) -> tuple[MessageTemplate | None, bool]:
    desired = desired_template()
    template = _find_template(client.list_templates(app_id), desired["messageText"])
    if template is None:
        if dry_run:
            say(f"Would create an SMS template: {_describe(desired)}")
            return None, True
        created = client.create_template(
            app_id,
            message_text=desired["messageText"],
            pin_type=desired["pinType"],
            pin_length=desired["pinLength"],
            sender_id=desired.get("senderId"),
        )
        say(f"Created SMS template {created.message_id}: {_describe(desired)}")
        return created, True
    current = {
        "messageText": template.message_text,
        "pinType": template.pin_type,
        "pinLength": template.pin_length,
        "senderId": template.sender_id,
    }
    changes = {
        key: (current[key], value) for key, value in desired.items() if current[key] != value
    }
    if not changes:
        say(f"SMS template {template.message_id} is up to date.")
        return template, False
    described = _describe_changes(changes)
    if dry_run:
        say(f"Would update SMS template {template.message_id}: {described}")
        return template, True
    updated = client.update_template(
        app_id,
        template.message_id,
        message_text=desired["messageText"] if "messageText" in changes else None,
        pin_type=desired["pinType"] if "pinType" in changes else None,
        pin_length=desired["pinLength"] if "pinLength" in changes else None,
        sender_id=desired["senderId"] if "senderId" in changes else None,
    )
    say(f"Updated SMS template {template.message_id}: {described}")
    return updated, True


def _is_whole_number(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _require_credentials() -> None:
    if not app_settings.BASE_URL or not app_settings.API_KEY:
        raise ConfigurationError("Set INFOBIP_OTP_BASE_URL and INFOBIP_OTP_API_KEY first.")


def _find_application(applications: list[Application], name: str) -> Application | None:
    configured = app_settings.APPLICATION_ID
    for application in applications:
        if configured and application.application_id == configured:
            return application
    named = [application for application in applications if application.name == name]
    if len(named) > 1:
        raise ConfigurationError(
            f"{len(named)} Infobip applications are named {name!r}; set "
            "INFOBIP_OTP_APPLICATION_ID to the one to use."
        )
    return named[0] if named else None


def _find_template(templates: list[MessageTemplate], message_text: str) -> MessageTemplate | None:
    configured = app_settings.MESSAGE_ID
    sms = [template for template in templates if template.message_text is not None]
    for template in sms:
        if configured and template.message_id == configured:
            return template
    for template in sms:
        if template.message_text == message_text:
            return template
    return sms[0] if len(sms) == 1 else None


def _same_setting(key: str, current: Any, desired: Any) -> bool:
    """Equal, reading Infobip's durations by value (``5m`` is ``300s``)."""
    if key == "pinTimeToLive":
        return _duration(current) is not None and _duration(current) == _duration(desired)
    if key == "sendPinPerPhoneNumberLimit":
        return _limit(current) is not None and _limit(current) == _limit(desired)
    return current == desired and type(current) is type(desired)


def _duration(text: Any) -> float | None:
    match = _DURATION.match(text) if isinstance(text, str) else None
    if not match:
        return None
    return int(match.group(1) or 1) * _UNIT_SECONDS[match.group(2)]


def _limit(text: Any) -> tuple[int, float] | None:
    match = _LIMIT.match(text) if isinstance(text, str) else None
    if not match:
        return None
    window = _duration(match.group(2))
    return (int(match.group(1)), window) if window else None


def _describe(fields: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value!r}" for key, value in fields.items())


def _describe_changes(changes: dict[str, tuple[Any, Any]]) -> str:
    return ", ".join(f"{key} {old!r} -> {new!r}" for key, (old, new) in changes.items())
