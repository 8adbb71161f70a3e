"""``infobip_otp_cleanup`` on a million expired challenges, against one plain ``DELETE``.

Run: ``.venv/bin/python -m benchmarks.cleanup [--rows 1000000] [--rounds 3]``

In PostgreSQL, a template database (``infobip_otp_bench_cleanup_data``) is
loaded once with ``--rows`` challenges that expired 8 to 60 days ago plus
10,000 still within the retention (``INSERT ... SELECT generate_series``, then
``VACUUM ANALYZE``). Each round then deletes the expired ones twice, each time
from a fresh copy of it (``CREATE DATABASE ... TEMPLATE``, so both start from
the same pages):

- with ``infobip_otp_cleanup`` (default options: 7 days' retention) in a child
  process, whose peak memory is its ``ru_maxrss`` and which times every SQL
  statement it runs (``connection.execute_wrapper``);
- with one ``DELETE FROM infobip_otp_otpchallenge WHERE expires_at < %s``.

The order of the two alternates between rounds and the ratio is the median of
the per-round ratios. The command's time is taken inside it (``call_command``),
as the DELETE's is: starting Python and Django (printed apart) is the same
whatever the table holds. During each deletion a writer inserts a live
challenge every 10 ms on its own connection, as a busy site would, and the
latency of each insert is recorded. Every database is dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone

from benchmarks._common import (
    PYTHON,
    ROOT,
    database_url,
    drop_database,
    machine,
    median,
    percentile,
    postgres_version,
    recreate_database,
    setup_django,
)

TEMPLATE = "infobip_otp_bench_cleanup_data"
DATABASE = "infobip_otp_bench_cleanup"
TABLE = "infobip_otp_otpchallenge"
LIVE_ROWS = 10_000
RETENTION = timedelta(days=7)
MIGRATE = (
    "from benchmarks._common import setup_django; setup_django(); "
    "from django.core.management import call_command; call_command('migrate', verbosity=0)"
)
COLUMNS = (
    "public_id, user_id, session_hash, phone_number, purpose, status, attempts, max_attempts,"
    " sends, created_at, last_sent_at, expires_at, verified_at, ended_at, provider_pin_id,"
    " pin_digest"
)


def load(connection: object, rows: int, now: datetime) -> None:
    """Empty the table and fill it: ``rows`` expired long ago, ``LIVE_ROWS`` recent."""
    oldest = now - timedelta(days=60)
    span = timedelta(days=52) / rows  # the expired rows end 8 days ago
    fill = f"""
        INSERT INTO {TABLE} ({COLUMNS})
        SELECT gen_random_uuid(), NULL, md5(i::text),
               '+4479111' || lpad((i %% 100000)::text, 5, '0'), 'login', %(status)s, 1, 5, 1,
               %(start)s + i * %(span)s - interval '5 minutes',
               %(start)s + i * %(span)s - interval '5 minutes',
               %(start)s + i * %(span)s, NULL, %(start)s + i * %(span)s,
               md5(i::text), ''
        FROM generate_series(1, %(rows)s) AS i
    """
    connection.execute(f"TRUNCATE {TABLE} RESTART IDENTITY")  # type: ignore[attr-defined]
    connection.execute(fill, {"status": "expired", "start": oldest, "span": span, "rows": rows})  # type: ignore[attr-defined]
    recent = now - timedelta(days=1)
    connection.execute(  # type: ignore[attr-defined]
        fill,
        {"status": "verified", "start": recent, "span": timedelta(seconds=1), "rows": LIVE_ROWS},
    )
    connection.execute(f"VACUUM ANALYZE {TABLE}")  # type: ignore[attr-defined]


class Writer(threading.Thread):
    """Inserts a live challenge every ``interval`` seconds; records each insert's latency."""

    def __init__(self, url: str, interval: float = 0.01) -> None:
        super().__init__(daemon=True)
        import psycopg

        self.connection = psycopg.connect(url, autocommit=True)
        self.interval = interval
        self.latencies: list[float] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        insert = f"""
            INSERT INTO {TABLE} ({COLUMNS})
            VALUES (gen_random_uuid(), NULL, 'writer', '+447911100000', 'login', 'pending', 0, 5,
                    1, now(), now(), now() + interval '5 minutes', NULL, NULL, 'pin', '')
        """
        while not self.stopping.wait(self.interval):
            started = time.perf_counter()
            self.connection.execute(insert)  # type: ignore[arg-type]
            self.latencies.append(time.perf_counter() - started)

    def stop(self) -> list[float]:
        self.stopping.set()
        self.join()
        self.connection.close()
        return self.latencies


def run_command(url: str, batch_size: int | None) -> dict[str, float]:
    """``infobip_otp_cleanup`` in a child process: wall time, peak memory, statements."""
    environment = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
    arguments = [PYTHON, "-m", "benchmarks.cleanup", "--child"]
    if batch_size:
        arguments += ["--batch-size", str(batch_size)]
    started = time.perf_counter()
    child = subprocess.Popen(
        arguments, cwd=ROOT, env=environment, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise RuntimeError(f"the cleanup command failed:\n{output}")
    stats = json.loads(output.strip().splitlines()[-1])
    return {
        **stats,
        "work_seconds": stats["command_seconds"],
        "process_seconds": seconds,
        "peak_mb": usage.ru_maxrss / 1024,
    }


def child(batch_size: int | None) -> None:
    """In the child: run the command, timing every statement it sends."""
    from io import StringIO

    setup_django()
    from django.core.management import call_command
    from django.db import connection

    durations: list[float] = []
    by_kind: dict[str, float] = {}

    def timed(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            durations.append(time.perf_counter() - started)
            kind = sql.split(None, 1)[0].upper()
            by_kind[kind] = by_kind.get(kind, 0.0) + durations[-1]

    out = StringIO()
    options = {"batch_size": batch_size} if batch_size else {}
    started = time.perf_counter()
    with connection.execute_wrapper(timed):
        call_command("infobip_otp_cleanup", stdout=out, **options)
    print(out.getvalue().strip())
    print(
        json.dumps(
            {
                "command_seconds": time.perf_counter() - started,
                "statements": len(durations),
                "longest": max(durations, default=0.0),
                "by_kind": by_kind,
                "message": out.getvalue().strip(),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=None, help="passed to the command")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        child(options.batch_size)
        return

    import psycopg

    template_url = recreate_database(TEMPLATE)
    try:
        subprocess.run(
            [PYTHON, "-c", MIGRATE],
            cwd=ROOT,
            env={**os.environ, "DATABASE_URL": template_url, "PYTHONPATH": str(ROOT)},
            check=True,
        )
        started = time.perf_counter()
        with psycopg.connect(template_url, autocommit=True) as connection:
            load(connection, options.rows, datetime.now(timezone.utc))
        load_seconds = time.perf_counter() - started
        results = rounds(options)
    finally:
        drop_database(DATABASE)
        drop_database(TEMPLATE)
    report(results, options, load_seconds)


def rounds(options: argparse.Namespace) -> dict[str, list]:
    import psycopg

    results: dict[str, list] = {"command": [], "delete": []}
    for round_no in range(options.rounds):
        order = ("command", "delete") if round_no % 2 == 0 else ("delete", "command")
        for method in order:
            url = copy_database(TEMPLATE, DATABASE)
            with psycopg.connect(url, autocommit=True) as connection:
                connection.execute("CHECKPOINT")
                writer = Writer(url)
                writer.start()
                if method == "command":
                    outcome = run_command(url, options.batch_size)
                else:
                    outcome = single_delete(connection)
                outcome["writer"] = writer.stop()
                left = connection.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0]  # type: ignore[index]
            outcome["left"] = left - len(outcome["writer"])
            results[method].append(outcome)
            print(
                f"round {round_no + 1} {method:7}: {outcome['work_seconds']:6.2f} s, "
                f"{outcome['message']}, {outcome['left']} rows left",
                flush=True,
            )
    return results


def copy_database(template: str, name: str) -> str:
    """A fresh copy of ``template`` called ``name``, made by copying its files."""
    from benchmarks._common import _admin

    drop_database(name)
    _admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY')
    return database_url(name)


def single_delete(connection: object) -> dict[str, object]:
    cutoff = datetime.now(timezone.utc) - RETENTION
    started = time.perf_counter()
    cursor = connection.execute(f"DELETE FROM {TABLE} WHERE expires_at < %s", (cutoff,))  # type: ignore[attr-defined]
    seconds = time.perf_counter() - started
    return {"work_seconds": seconds, "longest": seconds, "message": f"{cursor.rowcount} rows"}


def report(results: dict[str, list], options: argparse.Namespace, load_seconds: float) -> None:
    command, delete = results["command"], results["delete"]
    setup_django()
    print(machine() + f" PostgreSQL {postgres_version()}")
    print(
        f"{options.rows} expired + {LIVE_ROWS} live rows (loaded once in {load_seconds:.0f} s), "
        f"{options.rounds} round(s), batch size {options.batch_size or 'default'}"
    )
    by_kind: dict[str, float] = {}
    for run in command:
        for kind, seconds in run["by_kind"].items():
            by_kind[kind] = by_kind.get(kind, 0.0) + seconds / len(command)
    print(
        f"infobip_otp_cleanup: median {median(r['work_seconds'] for r in command):.2f} s in the "
        f"command ({median(r['process_seconds'] for r in command):.2f} s with Python and Django "
        f"start-up), {command[0]['statements']} statements "
        f"({', '.join(f'{k} {v:.2f} s' for k, v in by_kind.items())})"
    )
    print(f"single DELETE:       median {median(r['work_seconds'] for r in delete):.2f} s")
    for name, runs in (("cleanup", command), ("single DELETE", delete)):
        latencies = [latency for r in runs for latency in r["writer"]]
        print(
            f"writer during {name}: {len(latencies)} inserts, "
            f"p50 {percentile(latencies, 0.5) * 1000:.1f} ms, "
            f"p99 {percentile(latencies, 0.99) * 1000:.1f} ms, "
            f"max {max(latencies) * 1000:.1f} ms"
        )
    pairs = list(zip(command, delete, strict=True))
    ratio = median(c["work_seconds"] / d["work_seconds"] for c, d in pairs)
    with_startup = median(c["process_seconds"] / d["work_seconds"] for c, d in pairs)
    writer_p99 = percentile([x for r in command for x in r["writer"]], 0.99)
    print(f"ratio cleanup/DELETE = {ratio:.2f} (target <= 1.5; {with_startup:.2f} with start-up)")
    print(f"cleanup peak memory = {max(r['peak_mb'] for r in command):.0f} MB (target <= 100)")
    print(
        f"cleanup longest statement = {max(r['longest'] for r in command) * 1000:.0f} ms "
        f"(target <= 1000)"
    )
    print(f"writer p99 during cleanup = {writer_p99 * 1000:.1f} ms (target <= 100)")


if __name__ == "__main__":
    sys.exit(main())
