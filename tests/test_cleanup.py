"""``purge_challenges`` and ``manage.py infobip_otp_cleanup``."""

import threading
from datetime import datetime, timedelta, timezone
from io import StringIO

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.db import connection

from infobip_otp.maintenance import (
    DURATION_FORMS,
    format_duration,
    parse_duration_arg,
    purge_challenges,
)
from infobip_otp.management.commands.infobip_otp_cleanup import Command
from infobip_otp.models import OtpChallenge, Purpose, Status

NOW = datetime(2026, 1, 10, 12, 0, tzinfo=timezone.utc)
RETENTION = timedelta(days=7)
CUTOFF = NOW - RETENTION
STALE = CUTOFF - timedelta(hours=1)

pytestmark = pytest.mark.django_db


def add_challenges(count, *, expires_at, status=Status.EXPIRED):
    OtpChallenge.objects.bulk_create(
        OtpChallenge(
            phone_number="+447911123456",
            purpose=Purpose.LOGIN,
            status=status,
            max_attempts=5,
            created_at=expires_at - timedelta(minutes=5),
            expires_at=expires_at,
        )
        for _ in range(count)
    )


def cleanup(*args):
    out = StringIO()
    with time_machine.travel(NOW, tick=False):
        call_command("infobip_otp_cleanup", *args, stdout=out)
    return out.getvalue().splitlines()


class _StopAfterOneBatch(Exception):
    pass


def purge_with_a_rival(*, batch_size, rival_batch_size, on_batch=None):
    """Purge while a second copy deletes one batch between each SELECT and DELETE.

    The rival starts from the oldest rows each time, so it always takes rows
    the first copy has selected but not deleted yet: the double-count hazard.
    Returns both copies' totals.
    """
    rival_total = 0
    in_rival = False

    def rival_batch(batch_no, deleted):
        nonlocal rival_total
        rival_total += deleted
        raise _StopAfterOneBatch

    def before_delete(execute, sql, params, many, context):
        nonlocal in_rival
        if not in_rival and sql.lstrip().upper().startswith("DELETE"):
            in_rival = True
            try:
                purge_challenges(
                    older_than=RETENTION,
                    batch_size=rival_batch_size,
                    now=NOW,
                    on_batch=rival_batch,
                )
            except _StopAfterOneBatch:
                pass
            finally:
                in_rival = False
        return execute(sql, params, many, context)

    with connection.execute_wrapper(before_delete):
        total = purge_challenges(
            older_than=RETENTION, batch_size=batch_size, now=NOW, on_batch=on_batch
        )
    return [total, rival_total]


def purge_in_threads(copies, *, batch_size):
    """Start ``copies`` purges at the same moment, each on its own connection."""
    start = threading.Barrier(copies)
    totals, errors = [], []

    def run():
        try:
            start.wait()
            totals.append(purge_challenges(older_than=RETENTION, batch_size=batch_size, now=NOW))
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(copies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    return totals


def test_purge_deletes_only_challenges_that_expired_before_the_cutoff():
    add_challenges(2, expires_at=CUTOFF - timedelta(seconds=1))
    add_challenges(1, expires_at=CUTOFF)
    add_challenges(1, expires_at=CUTOFF + timedelta(seconds=1), status=Status.VERIFIED)
    add_challenges(1, expires_at=NOW + timedelta(minutes=5), status=Status.PENDING)

    assert purge_challenges(older_than=RETENTION, now=NOW) == 2

    assert sorted(OtpChallenge.objects.values_list("expires_at", flat=True)) == [
        CUTOFF,
        CUTOFF + timedelta(seconds=1),
        NOW + timedelta(minutes=5),
    ]


def test_purge_defaults_to_the_cleanup_retention_setting(settings):
    settings.INFOBIP_OTP_CLEANUP_RETENTION = 3600
    add_challenges(1, expires_at=NOW - timedelta(hours=2))
    add_challenges(1, expires_at=NOW - timedelta(minutes=30))

    assert purge_challenges(now=NOW) == 1
    assert list(OtpChallenge.objects.values_list("expires_at", flat=True)) == [
        NOW - timedelta(minutes=30)
    ]


def test_purge_deletes_in_batches_of_at_most_batch_size():
    add_challenges(25, expires_at=STALE)
    batches = []

    total = purge_challenges(
        older_than=RETENTION,
        batch_size=10,
        now=NOW,
        on_batch=lambda batch_no, deleted: batches.append((batch_no, deleted)),
    )

    assert total == 25
    assert batches == [(1, 10), (2, 10), (3, 5)]
    assert not OtpChallenge.objects.exists()


def test_each_batch_is_one_select_of_a_key_and_one_delete(django_assert_num_queries):
    add_challenges(20, expires_at=STALE)

    with django_assert_num_queries(5) as captured:
        purge_challenges(older_than=RETENTION, batch_size=10, now=NOW)

    statements = [query["sql"] for query in captured.captured_queries]
    assert [sql.split()[0] for sql in statements] == [
        "SELECT",
        "DELETE",
        "SELECT",
        "DELETE",
        "SELECT",
    ]
    for select in statements[::2]:
        # One key, never the rows: nothing here grows with the batch size.
        assert select.rstrip().endswith("LIMIT 1")
        assert "phone_number" not in select
    for delete in statements[1::2]:
        assert '"id" >=' in delete
        assert '"id" <=' in delete


def test_live_rows_between_stale_ones_stay_and_cost_no_empty_batches():
    add_challenges(5, expires_at=STALE)
    add_challenges(30, expires_at=NOW)
    add_challenges(5, expires_at=STALE)
    live = set(OtpChallenge.objects.filter(expires_at=NOW).values_list("pk", flat=True))
    batches = []

    total = purge_challenges(
        older_than=RETENTION,
        batch_size=10,
        now=NOW,
        on_batch=lambda batch_no, deleted: batches.append(deleted),
    )

    assert total == 10
    # The key range of live rows is jumped over, not walked in empty batches.
    assert batches == [5, 5]
    assert set(OtpChallenge.objects.values_list("pk", flat=True)) == live


def test_dry_run_counts_with_one_query_and_deletes_nothing(django_assert_num_queries):
    add_challenges(7, expires_at=STALE)
    add_challenges(3, expires_at=NOW)

    with django_assert_num_queries(1) as captured:
        assert purge_challenges(older_than=RETENTION, now=NOW, dry_run=True) == 7

    assert "COUNT" in captured.captured_queries[0]["sql"].upper()
    assert OtpChallenge.objects.count() == 10


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"older_than": timedelta(seconds=-1)}, "negative"),
    ],
)
def test_purge_refuses_arguments_that_would_misbehave(kwargs, message):
    add_challenges(1, expires_at=NOW + timedelta(minutes=1), status=Status.PENDING)

    with pytest.raises(ValueError, match=message):
        purge_challenges(now=NOW, **kwargs)
    assert OtpChallenge.objects.count() == 1


def test_a_copy_whose_rows_were_deleted_meanwhile_counts_only_its_own():
    add_challenges(25, expires_at=STALE)
    batches = []

    totals = purge_with_a_rival(
        batch_size=10,
        rival_batch_size=7,
        on_batch=lambda batch_no, deleted: batches.append(deleted),
    )

    assert batches == [3, 3, 0]
    assert totals == [6, 19]
    assert not OtpChallenge.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_two_copies_at_once_neither_fail_nor_double_count():
    add_challenges(2000, expires_at=STALE)
    add_challenges(5, expires_at=NOW)

    if connection.vendor == "postgresql":
        totals = purge_in_threads(2, batch_size=50)
    else:
        # SQLite takes one writer at a time (a second thread on the shared
        # in-memory test database gets "table is locked"), so here the copies
        # take turns inside each other's batches instead.
        totals = purge_with_a_rival(batch_size=50, rival_batch_size=30)

    assert len(totals) == 2
    assert sum(totals) == 2000
    assert OtpChallenge.objects.count() == 5


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("12h", timedelta(hours=12)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(weeks=2)),
        ("3600", timedelta(hours=1)),
        ("0", timedelta(0)),
        (" 7d\n", timedelta(days=7)),
    ],
)
def test_parse_duration_arg_reads_the_accepted_forms(text, expected):
    assert parse_duration_arg(text) == expected


@pytest.mark.parametrize(
    "text", ["", "d", "7x", "7D", "-5", "1.5h", "7 d", "7days", "1e3", "99999999999w"]
)
def test_parse_duration_arg_refuses_anything_else_naming_the_accepted_forms(text):
    with pytest.raises(ValueError, match="90s, 15m, 12h, 7d, 2w"):
        parse_duration_arg(text)


@pytest.mark.parametrize(
    ("duration", "text"),
    [
        (timedelta(days=7), "7d"),
        (timedelta(weeks=2), "14d"),
        (timedelta(minutes=90), "90m"),
        (timedelta(seconds=3601), "3601s"),
        (timedelta(0), "0s"),
    ],
)
def test_format_duration_writes_what_parse_duration_arg_reads_back(duration, text):
    assert format_duration(duration) == text
    assert parse_duration_arg(text) == duration


def test_command_reports_each_batch_at_verbosity_2_and_a_summary():
    add_challenges(25, expires_at=STALE)
    add_challenges(2, expires_at=CUTOFF)

    lines = cleanup("--batch-size", "10", "-v", "2")

    assert lines == [
        "Batch 1: deleted 10.",
        "Batch 2: deleted 10.",
        "Batch 3: deleted 5.",
        "Deleted 25 challenges older than 7d (expired before 2026-01-03T12:00:00+00:00)"
        " in 3 batches.",
    ]
    assert OtpChallenge.objects.count() == 2


def test_command_prints_only_the_summary_by_default():
    add_challenges(1, expires_at=STALE)

    assert cleanup("--older-than", "12h") == [
        "Deleted 1 challenge older than 12h (expired before 2026-01-10T00:00:00+00:00) in 1 batch."
    ]


def test_command_prints_the_summary_even_with_nothing_to_delete():
    add_challenges(1, expires_at=NOW)

    assert cleanup("-v", "0") == [
        "Deleted 0 challenges older than 7d (expired before 2026-01-03T12:00:00+00:00)"
        " in 0 batches."
    ]
    assert OtpChallenge.objects.count() == 1


def test_command_uses_the_retention_setting_by_default(settings):
    settings.INFOBIP_OTP_CLEANUP_RETENTION = 2 * 86400
    add_challenges(3, expires_at=NOW - timedelta(days=3))
    add_challenges(1, expires_at=NOW - timedelta(days=1))

    assert cleanup() == [
        "Deleted 3 challenges older than 2d (expired before 2026-01-08T12:00:00+00:00) in 1 batch."
    ]
    assert OtpChallenge.objects.count() == 1


def test_command_dry_run_reports_the_count_and_deletes_nothing():
    add_challenges(4, expires_at=NOW - timedelta(days=2))

    assert cleanup("--dry-run", "--older-than", "1d", "-v", "2") == [
        "Would delete 4 challenges older than 1d (expired before 2026-01-09T12:00:00+00:00)."
    ]
    assert OtpChallenge.objects.count() == 4


@pytest.mark.parametrize("value", ["7y", "7days", "-1d", "soon", "99999999999w", "999999999d"])
def test_command_refuses_a_bad_older_than_naming_the_accepted_forms(value):
    add_challenges(1, expires_at=STALE)

    with pytest.raises(CommandError, match="90s, 15m, 12h, 7d, 2w") as excinfo:
        cleanup(f"--older-than={value}")

    assert "--older-than" in str(excinfo.value)
    assert OtpChallenge.objects.count() == 1


def test_a_plain_number_of_seconds_is_accepted():
    add_challenges(1, expires_at=NOW - timedelta(seconds=120))

    assert cleanup("--older-than", "60")[-1].startswith("Deleted 1 challenge older than 1m ")


@pytest.mark.parametrize("value", ["0", "-5", "50001"])
def test_command_refuses_a_batch_size_outside_1_to_50000(value):
    add_challenges(1, expires_at=STALE)

    with pytest.raises(CommandError, match="between 1 and 50000"):
        cleanup(f"--batch-size={value}")
    assert OtpChallenge.objects.count() == 1


def test_command_refuses_a_negative_retention_setting(settings):
    settings.INFOBIP_OTP_CLEANUP_RETENTION = -60
    add_challenges(1, expires_at=NOW + timedelta(minutes=5), status=Status.PENDING)

    with pytest.raises(CommandError, match="must not be negative"):
        cleanup()
    assert OtpChallenge.objects.count() == 1


def run_from_command_line(*args):
    # run_from_argv closes every connection when it ends, hence the
    # transactional tests below.
    with time_machine.travel(NOW, tick=False):
        Command().run_from_argv(["manage.py", "infobip_otp_cleanup", *args])


@pytest.mark.django_db(transaction=True)
def test_command_exits_0_from_the_command_line(capsys):
    add_challenges(3, expires_at=STALE)

    run_from_command_line("--batch-size", "2")

    assert capsys.readouterr().out.startswith("Deleted 3 challenges older than 7d ")
    assert not OtpChallenge.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_command_exits_1_with_the_accepted_forms_on_a_bad_duration(capsys):
    with pytest.raises(SystemExit) as excinfo:
        run_from_command_line("--older-than", "a week")

    assert excinfo.value.code == 1
    assert DURATION_FORMS in capsys.readouterr().err
