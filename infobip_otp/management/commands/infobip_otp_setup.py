"""``manage.py infobip_otp_setup``: make the Infobip application and template match settings."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from infobip_otp.exceptions import (
    ConfigurationError,
    ProviderAuthError,
    ProviderError,
    ProviderRateLimited,
    ProviderRequestError,
    ProviderUnavailable,
)
from infobip_otp.provisioning import audit_configuration, ensure_application_and_template


class Command(BaseCommand):
    help = (
        "Create or update the Infobip 2FA application and SMS template from the "
        "INFOBIP_OTP_* settings, then print the ids to set."
    )
    # The system checks want INFOBIP_OTP_APPLICATION_ID and MESSAGE_ID, which
    # this command exists to produce.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Print what would be created or changed; change nothing.",
        )
        parser.add_argument(
            "--check",
            action="store_true",
            help=(
                "Read the Infobip application and SMS template and fail if they are weaker "
                "than the rules (a PIN verified twice, living over 10 minutes, shorter than "
                "6 digits or not numeric); change nothing. Run it before each deployment."
            ),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["check"]:
            self.check_provider()
            return
        try:
            result = ensure_application_and_template(stdout=self.stdout, dry_run=options["dry_run"])
        except ConfigurationError as exc:
            raise CommandError(str(exc)) from exc
        except ProviderError as exc:
            raise CommandError(describe_provider_error(exc)) from exc
        if result.application_id:
            self.stdout.write(f"INFOBIP_OTP_APPLICATION_ID={result.application_id}")
        if result.message_id:
            self.stdout.write(f"INFOBIP_OTP_MESSAGE_ID={result.message_id}")
        if options["dry_run"] and result.changed:
            self.stdout.write("Dry run: nothing was changed.")

    def check_provider(self) -> None:
        try:
            problems = audit_configuration()
        except ConfigurationError as exc:
            raise CommandError(str(exc)) from exc
        except ProviderError as exc:
            raise CommandError(describe_provider_error(exc)) from exc
        if problems:
            raise CommandError(
                "The Infobip configuration is unsafe:\n" + "\n".join(f"- {p}" for p in problems)
            )
        self.stdout.write("The Infobip application and SMS template are safe.")


def describe_provider_error(exc: ProviderError) -> str:
    """What an operator needs to know, from the status and the (already redacted) fields."""
    status = f"HTTP {exc.http_status}" if exc.http_status else "no answer"
    code = f", {exc.provider_code}" if exc.provider_code else ""
    if isinstance(exc, ProviderAuthError):
        return (
            f"Infobip refused the API key ({status}{code}). Check INFOBIP_OTP_API_KEY and that "
            "it has the 2fa:manage scope."
        )
    if isinstance(exc, ProviderRateLimited):
        wait = f" Retry in {exc.retry_after} s." if exc.retry_after else ""
        return f"Infobip is rate limiting these requests ({status}).{wait}"
    if isinstance(exc, ProviderRequestError) and exc.validation_errors:
        fields = "; ".join(
            f"{name}: {', '.join(messages)}" for name, messages in exc.validation_errors.items()
        )
        return f"Infobip rejected the settings ({status}{code}): {fields}"
    if isinstance(exc, ProviderUnavailable):
        return (
            f"Infobip could not be reached or answered badly ({status}{code}). "
            "Check INFOBIP_OTP_BASE_URL and try again."
        )
    return f"Infobip refused the request ({status}{code})."
