"""Housekeeping: purging old challenges in bounded batches (``infobip_otp_cleanup``)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from .conf import app_settings
from .models import OtpChallenge

#: Rows per ``DELETE`` unless told otherwise. Each batch costs a round trip
#: and a commit (a WAL flush), so 1,000-row batches took 3 to 5 times as long
#: as one ``DELETE`` of a million rows; at 50,000 a batch is still a statement
#: of well under a second (benchmarks/cleanup.py, docs/performance.md).
DEFAULT_BATCH_SIZE = 50_000

#: The forms ``parse_duration_arg`` accepts, for help texts and error messages.
DURATION_FORMS = "90s, 15m, 12h, 7d, 2w, or a plain number of seconds"

_DURATION_UNITS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION_RE = re.compile(r"(\d+)([smhdw]?)")


def parse_duration_arg(text: str) -> timedelta:
    """``"90s"``, ``"15m"``, ``"12h"``, ``"7d"``, ``"2w"`` or ``"3600"`` -> ``timedelta``.

    Raises ``ValueError`` naming the accepted forms for anything else.
    """
    match = _DURATION_RE.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"Invalid duration {text!r}; use {DURATION_FORMS}.")
    amount, unit = match.groups()
    try:
        return timedelta(seconds=int(amount) * _DURATION_UNITS[unit or "s"])
    except OverflowError:
        raise ValueError(f"Duration {text!r} is too long; use {DURATION_FORMS}.") from None


def format_duration(duration: timedelta) -> str:
    """A form ``parse_duration_arg`` reads back, in the largest whole unit up to days.

    7 days -> ``"7d"``, 90 minutes -> ``"90m"``; weeks are left out because
    retention is thought of in days.
    """
    seconds = int(duration.total_seconds())
    for unit in "dhm":
        if seconds and seconds % _DURATION_UNITS[unit] == 0:
            return f"{seconds // _DURATION_UNITS[unit]}{unit}"
    return f"{seconds}s"


def purge_challenges(
    *,
    older_than: timedelta | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    dry_run: bool = False,
    now: datetime | None = None,
    on_batch: Callable[[int, int], Any] | None = None,
) -> int:
    """Delete challenges that expired more than ``older_than`` ago; return how many.

    ``older_than`` defaults to ``INFOBIP_OTP_CLEANUP_RETENTION``. Only
    ``expires_at`` is compared: a challenge that ended early (verified,
    locked, cancelled, failed) never has an ``expires_at`` later than one TTL
    after its last send, so ``expires_at < now - older_than`` covers "ended or
    expired longer ago than the retention", and uses the ``expires_at`` index.

    Rows go in batches: one ``SELECT`` of the next stale primary key (a
    single-row index lookup) and one ``DELETE`` of the stale rows among the
    next ``batch_size`` keys from it, which never loads the rows. A batch
    deletes at most ``batch_size`` rows, so memory and lock time stay flat
    however large the table is. ``on_batch(batch_no, deleted)`` is called
    after each ``DELETE``.

    The total is the sum of the row counts the ``DELETE`` statements
    reported, so two copies running at once never count a row twice: the
    one that finds its batch already gone reports 0 for it.

    With ``dry_run`` only the matching rows are counted (one ``COUNT``).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1.")
    if older_than is None:
        older_than = timedelta(seconds=app_settings.CLEANUP_RETENTION)
    if older_than < timedelta(0):
        raise ValueError("older_than must not be negative; it would delete live challenges.")
    stale = OtpChallenge.objects.filter(expires_at__lt=(now or timezone.now()) - older_than)
    if dry_run:
        return stale.count()

    total = 0
    batch_no = 0
    last_pk = None
    while True:
        # Keyset pagination: each lookup starts after the previous batch, so
        # it never walks the dead index entries a long purge leaves behind,
        # and it skips any run of keys that holds no stale row.
        pending = stale if last_pk is None else stale.filter(pk__gt=last_pk)
        first = pending.order_by("pk").values_list("pk", flat=True).first()
        if first is None:
            return total
        # A key range rather than ``pk__in``: the statement keeps three
        # parameters whatever the batch size (SQLite's variable limit), and
        # restating ``expires_at`` never deletes a row resent meanwhile. Two
        # copies walk the same keys in the same order, so the later one waits
        # for the earlier one's rows and then finds them gone.
        last_pk = first + batch_size - 1
        deleted, _ = pending.filter(pk__gte=first, pk__lte=last_pk).delete()
        total += deleted
        batch_no += 1
        if on_batch is not None:
            on_batch(batch_no, deleted)
