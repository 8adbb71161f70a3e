"""``manage.py infobip_otp_simulator``: a local Infobip 2FA API for demos and manual testing."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from infobip_otp.testing.simulator import (
    DEMO_APPLICATION_ID,
    DEMO_MESSAGE_ID,
    add_arguments,
    build_server,
)


class Command(BaseCommand):
    help = (
        "Serve a local Infobip 2FA simulator with one application and a 6-digit SMS "
        "template, print the INFOBIP_OTP_* settings that point at it, and run until Ctrl-C."
    )
    # The simulator needs neither models nor valid INFOBIP_OTP_* settings: it is how you get
    # them, so a project whose settings do not pass the checks yet can still start it.
    requires_system_checks = []

    def add_arguments(self, parser: CommandParser) -> None:
        add_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            server = build_server(
                options["host"],
                options["port"],
                options["api_key"],
                options["latency_ms"],
                options["fault"],
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        try:
            server.start()
        except OSError as exc:
            raise CommandError(
                f"cannot listen on {options['host']}:{options['port']}: {exc}"
            ) from exc
        application = server.create_application("infobip_otp", application_id=DEMO_APPLICATION_ID)
        template = server.create_template(
            application["applicationId"],
            message_text="Your verification code is {{pin}}",
            pin_type="NUMERIC",
            pin_length=6,
            message_id=DEMO_MESSAGE_ID,
        )
        self.stdout.write(f"INFOBIP_OTP_BASE_URL={server.url}")
        self.stdout.write(f"INFOBIP_OTP_API_KEY={server.api_key}")
        self.stdout.write(f"INFOBIP_OTP_APPLICATION_ID={application['applicationId']}")
        self.stdout.write(f"INFOBIP_OTP_MESSAGE_ID={template['messageId']}")
        self.stdout.flush()
        server.serve_forever()
