"""What the send and verify API calls cost beyond the provider call they make.

Run: ``.venv/bin/python -m benchmarks.endpoints [--rounds 120] [--latency-ms 20,50,100]
[--sessions cache|db] [--no-ratelimit]``

For each provider latency in turn (the simulator's answers are delayed by
that much), each round signs a user in (pending second factor) and times, in
rotating order:

- ``POST /otp/api/send/`` then ``POST /otp/api/verify/`` with the PIN the
  simulator sent (the whole app: DRF, session, rate limits, breaker, challenge
  rows, the Infobip client);
- a minimal view making the same single provider call with ``requests``
  (``POST /2fa/2/pin``, then ``POST /2fa/2/pin/{pinId}/verify``): the
  baseline of the target;
- the hand-written floor (``benchmarks._common._floor_views``): DRF views
  with session authentication that read the user's number, keep the pin id in
  the session and rotate the session key on a right code, and nothing else.
  It shows what any Django + DRF version of the two calls costs on this
  machine before doing anything of its own.

The target is judged at 100 ms, the provider latency of ``benchmarks.load``
(Infobip's own answers take longer still); the lower latencies show the same
fixed cost against a faster provider. Requests go through Django's test
client (the WSGI handler in process, no network between client and app).
PostgreSQL (database ``infobip_otp_bench_endpoints``, created and dropped)
and Redis (rate limits, circuit breaker and, by default, sessions: the
production set-up of docs/operations.md; ``--sessions db`` for Django's
default). Every rate limit stays on, raised so it never throttles
(``benchmarks/settings.py``). Statements are counted per call and split into
the session's and ``request.user``'s (what any login-required view costs)
and the rest (this app's).
"""

from __future__ import annotations

import argparse
import gc
import os
import time
from collections import defaultdict

from benchmarks._common import (
    REDIS_URL,
    Simulator,
    count_queries,
    drop_database,
    framework_queries,
    machine,
    median,
    migrate_with_users,
    phone_number,
    postgres_version,
    recreate_database,
)

DATABASE = "infobip_otp_bench_endpoints"
#: The provider latency the target is judged at (that of benchmarks.load).
TARGET_LATENCY_MS = 100.0
VARIANTS = ("ours", "floor", "base")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=120, help="rounds per latency")
    parser.add_argument(
        "--latency-ms",
        default="20,50,100",
        type=lambda text: [float(part) for part in text.split(",")],
        help="provider latencies to measure at, comma-separated",
    )
    parser.add_argument(
        "--sessions",
        choices=("cache", "db"),
        default="cache",
        help="SESSION_ENGINE: the cache (Redis) or the database (Django's default)",
    )
    parser.add_argument(
        "--no-ratelimit", action="store_true", help="turn the rate limits off (their cost)"
    )
    options = parser.parse_args()

    simulator = Simulator(latency_ms=0)
    database_url = recreate_database(DATABASE)
    try:
        run(simulator, database_url, options)
    finally:
        from django.db import connections

        connections.close_all()
        simulator.stop()
        drop_database(DATABASE)


def run(simulator: Simulator, database_url: str, options: argparse.Namespace) -> None:
    from benchmarks._common import setup_django

    setup_django(
        BENCH_SESSION_ENGINE=f"django.contrib.sessions.backends.{options.sessions}",
        BENCH_RATELIMIT="off" if options.no_ratelimit else "on",
        DATABASE_URL=database_url,
        CACHE_URL=REDIS_URL,
        BENCH_CACHE_PREFIX=f"infobip-otp-bench-endpoints-{os.getpid()}",
        **simulator.environment(),
    )
    from django.test import Client

    users = migrate_with_users(options.rounds + 1, password="irrelevant")

    # times[latency][(variant, call)]: seconds per call, in round order.
    times: dict[float, dict[tuple[str, str], list[float]]] = defaultdict(lambda: defaultdict(list))
    queries: dict[tuple[str, str], tuple[int, int]] = {}
    clients = {variant: Client() for variant in VARIANTS}
    paths = {"ours": "/otp/api", "floor": "/floor", "base": "/baseline"}
    # ((variant, call), seconds) of the round being run.
    samples: list[tuple[tuple[str, str], float]] = []

    def timed(variant: str, call: str, body: dict, expected: int) -> dict:
        with count_queries() as statements:
            started = time.perf_counter()
            response = clients[variant].post(
                f"{paths[variant]}/{call}/", body, content_type="application/json"
            )
            elapsed = time.perf_counter() - started
        assert response.status_code == expected, response.content
        samples.append(((variant, call), elapsed))
        queries[(variant, call)] = (len(statements), framework_queries(statements))
        return response.json()

    def flow(variant: str, number: str) -> None:
        if variant == "base":
            sent = timed("base", "send", {"to": number.lstrip("+")}, 200)
            pin = simulator.last_pin(number)["pin"]
            answer = timed("base", "verify", {"pinId": sent["pinId"], "pin": pin}, 200)
            assert answer["verified"] is True, answer
            return
        timed(variant, "send", {}, 202)
        pin = simulator.last_pin(number)["pin"]
        timed(variant, "verify", {"pin": pin}, 200)

    began = time.perf_counter()
    for latency in options.latency_ms:
        simulator.set_latency(latency)
        for round_no, user in enumerate(users):
            number = phone_number(round_no)
            for variant in ("ours", "floor"):
                clients[variant].cookies.clear()
                clients[variant].force_login(user)  # pending: the user has a confirmed phone
            gc.collect()
            samples.clear()
            shift = round_no % len(VARIANTS)  # each goes first, second and last in turn
            for variant in VARIANTS[shift:] + VARIANTS[:shift]:
                flow(variant, number)
            if round_no > 0:  # the first round warms imports, connections and caches
                for key, elapsed in samples:
                    times[latency][key].append(elapsed)
    elapsed = time.perf_counter() - began

    print(machine() + f" PostgreSQL {postgres_version()}")
    print(
        f"{options.rounds} rounds per latency, sessions in the {options.sessions}, rate limits "
        f"{'off' if options.no_ratelimit else 'on'}, {elapsed:.1f} s"
    )
    for variant, label in (("ours", "infobip_otp"), ("floor", "floor"), ("base", "baseline")):
        counts = []
        for call in ("send", "verify"):
            total, framework = queries.get((variant, call), (0, 0))
            counts.append(f"{call} {total} ({framework} session+user, {total - framework} own)")
        print(f"statements per call, {label:11}: {'; '.join(counts)}")

    def compare(latency: float, call: str, variant: str, against: str) -> tuple[float, float]:
        pairs = zip(times[latency][(variant, call)], times[latency][(against, call)], strict=True)
        ratios, extra = zip(*((x / y, x - y) for x, y in pairs), strict=True)
        return median(ratios), median(extra) * 1000

    print("latency  call    baseline  infobip_otp / baseline   floor / baseline   ours / floor")
    for latency in options.latency_ms:
        for call in ("send", "verify"):
            base = median(times[latency][("base", call)]) * 1000
            ours, ours_ms = compare(latency, call, "ours", "base")
            floor, floor_ms = compare(latency, call, "floor", "base")
            over, over_ms = compare(latency, call, "ours", "floor")
            print(
                f"{latency:4g} ms  {call:6} {base:7.2f} ms  {ours:6.3f} (+{ours_ms:5.2f} ms)"
                f"      {floor:6.3f} (+{floor_ms:5.2f} ms)   {over:6.3f} (+{over_ms:5.2f} ms)"
            )
    judged = (
        TARGET_LATENCY_MS if TARGET_LATENCY_MS in options.latency_ms else max(options.latency_ms)
    )
    for call in ("send", "verify"):
        ratio, overhead = compare(judged, call, "ours", "base")
        total, framework = queries[("ours", call)]
        print(
            f"{call}: ratio {ratio:.3f} at {judged:g} ms (target <= 1.15), +{overhead:.2f} ms, "
            f"{total} queries ({total - framework} infobip_otp) (target <= 6)"
        )


if __name__ == "__main__":
    main()
