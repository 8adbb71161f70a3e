"""``manage.py infobip_otp_cleanup``: delete old challenges, in batches (run it from cron)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from infobip_otp.conf import app_settings
from infobip_otp.maintenance import (
    DEFAULT_BATCH_SIZE,
    DURATION_FORMS,
    format_duration,
    parse_duration_arg,
    purge_challenges,
)

MAX_BATCH_SIZE = 50_000


class Command(BaseCommand):
    help = "Delete OTP challenges that ended or expired longer ago than the retention."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Count the challenges that would be deleted; delete nothing.",
        )
        parser.add_argument(
            "--older-than",
            metavar="DURATION",
            help=f"Retention: {DURATION_FORMS}. Default: INFOBIP_OTP_CLEANUP_RETENTION.",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=DEFAULT_BATCH_SIZE,
            metavar="N",
            help=f"Rows per DELETE, 1 to {MAX_BATCH_SIZE} (default {DEFAULT_BATCH_SIZE}).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        older_than = self._retention(options["older_than"])
        batch_size = options["batch_size"]
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise CommandError(f"--batch-size must be between 1 and {MAX_BATCH_SIZE}.")
        now = timezone.now()
        try:
            cutoff = now - older_than
        except OverflowError:
            raise CommandError(f"--older-than is too long; use {DURATION_FORMS}.") from None
        scope = (
            f"older than {format_duration(older_than)} "
            f"(expired before {cutoff.isoformat(timespec='seconds')})"
        )

        if options["dry_run"]:
            count = purge_challenges(older_than=older_than, dry_run=True, now=now)
            would = _count(count, "challenge", "challenges")
            self.stdout.write(f"Would delete {would} {scope}.")
            return

        batches = 0

        def report(batch_no: int, deleted: int) -> None:
            nonlocal batches
            batches = batch_no
            if options["verbosity"] >= 2:
                self.stdout.write(f"Batch {batch_no}: deleted {deleted}.")

        total = purge_challenges(
            older_than=older_than, batch_size=batch_size, now=now, on_batch=report
        )
        deleted = _count(total, "challenge", "challenges")
        self.stdout.write(f"Deleted {deleted} {scope} in {_count(batches, 'batch', 'batches')}.")

    def _retention(self, text: str | None) -> timedelta:
        if text is None:
            retention = timedelta(seconds=app_settings.CLEANUP_RETENTION)
            if retention < timedelta(0):
                raise CommandError("INFOBIP_OTP_CLEANUP_RETENTION must not be negative.")
            return retention
        try:
            return parse_duration_arg(text)
        except ValueError as exc:
            raise CommandError(f"--older-than: {exc}") from None


def _count(n: int, singular: str, plural: str) -> str:
    return f"{n} {singular if n == 1 else plural}"
