"""What the send and verify API calls cost beyond the provider call they make.

Run: ``.venv/bin/python -m benchmarks.endpoints [--rounds 150] [--latency-ms 20]
[--sessions db|cache] [--no-ratelimit]``

The simulator answers after ``--latency-ms``. Each round signs a user in
(pending second factor) and times, in alternating order:

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

Requests go through Django's test client (the WSGI handler in process, no
network between client and app). PostgreSQL (database
``infobip_otp_bench_endpoints``, created and dropped) and Redis (rate limits,
circuit breaker); sessions in the database (Django's default) or, with
``--sessions cache``, in Redis. Every rate limit stays on, raised so it never
throttles (``benchmarks/settings.py``). Statements are counted per call and
split into the session's and ``request.user``'s (what any login-required view
costs) and the rest (this app's).
"""

from __future__ import annotations

import argparse
import gc
import os
import time

from benchmarks._common import (
    REDIS_URL,
    Simulator,
    count_queries,
    drop_database,
    framework_queries,
    machine,
    median,
    phone_number,
    postgres_version,
    recreate_database,
)

DATABASE = "infobip_otp_bench_endpoints"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=150)
    parser.add_argument("--latency-ms", type=float, default=20)
    parser.add_argument(
        "--sessions",
        choices=("db", "cache"),
        default="db",
        help="SESSION_ENGINE: the database (Django's default) or the cache (Redis)",
    )
    parser.add_argument(
        "--no-ratelimit", action="store_true", help="turn the rate limits off (their cost)"
    )
    options = parser.parse_args()

    simulator = Simulator(latency_ms=options.latency_ms)
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
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.test import Client

    from infobip_otp.models import PhoneDevice

    call_command("migrate", verbosity=0)
    users = []
    for index in range(options.rounds + 1):
        user = User.objects.create_user(f"bench{index}", password="irrelevant")
        PhoneDevice.objects.create(user=user, phone_number=phone_number(index))
        users.append(user)

    times: dict[str, list[float]] = {
        "send": [],
        "verify": [],
        "floor_send": [],
        "floor_verify": [],
        "base_send": [],
        "base_verify": [],
    }
    queries: dict[str, tuple[int, int]] = {}

    def ours(client: Client, number: str, record: bool) -> None:
        with count_queries() as statements:
            started = time.perf_counter()
            response = client.post("/otp/api/send/", {}, content_type="application/json")
            elapsed = time.perf_counter() - started
        assert response.status_code == 202, response.content
        if record:
            times["send"].append(elapsed)
        queries["send"] = (len(statements), framework_queries(statements))
        pin = simulator.last_pin(number)["pin"]
        with count_queries() as statements:
            started = time.perf_counter()
            response = client.post(
                "/otp/api/verify/", {"pin": pin}, content_type="application/json"
            )
            elapsed = time.perf_counter() - started
        assert response.status_code == 200, response.content
        if record:
            times["verify"].append(elapsed)
        queries["verify"] = (len(statements), framework_queries(statements))

    def baseline(client: Client, number: str, record: bool) -> None:
        with count_queries() as statements:
            started = time.perf_counter()
            response = client.post(
                "/baseline/send/", {"to": number.lstrip("+")}, content_type="application/json"
            )
            elapsed = time.perf_counter() - started
        assert response.status_code == 200, response.content
        if record:
            times["base_send"].append(elapsed)
        queries["base_send"] = (len(statements), 0)
        queries["base_verify"] = (0, 0)
        pin_id = response.json()["pinId"]
        pin = simulator.last_pin(number)["pin"]
        started = time.perf_counter()
        response = client.post(
            "/baseline/verify/", {"pinId": pin_id, "pin": pin}, content_type="application/json"
        )
        elapsed = time.perf_counter() - started
        assert response.json()["verified"] is True, response.content
        if record:
            times["base_verify"].append(elapsed)

    def floor(client: Client, number: str, record: bool) -> None:
        for call, body, expected in (("send", {}, 202), ("verify", None, 200)):
            if body is None:
                body = {"pin": simulator.last_pin(number)["pin"]}
            with count_queries() as statements:
                started = time.perf_counter()
                response = client.post(f"/floor/{call}/", body, content_type="application/json")
                elapsed = time.perf_counter() - started
            assert response.status_code == expected, response.content
            if record:
                times[f"floor_{call}"].append(elapsed)
            queries[f"floor_{call}"] = (len(statements), framework_queries(statements))

    client, baseline_client, floor_client = Client(), Client(), Client()
    began = time.perf_counter()
    for round_no, user in enumerate(users):
        record = round_no > 0  # the first round warms imports, connections and caches
        client.cookies.clear()
        client.force_login(user)  # pending: the user has a confirmed phone
        floor_client.cookies.clear()
        floor_client.force_login(user)
        number = phone_number(round_no)
        gc.collect()
        variants = [(ours, client), (floor, floor_client), (baseline, baseline_client)]
        shift = round_no % len(variants)  # each goes first, second and last in turn
        for variant, its_client in variants[shift:] + variants[:shift]:
            variant(its_client, number, record)
    elapsed = time.perf_counter() - began

    print(machine() + f" PostgreSQL {postgres_version()}")
    print(
        f"{options.rounds} rounds, simulator latency {options.latency_ms:g} ms, "
        f"sessions in the {options.sessions}, rate limits "
        f"{'off' if options.no_ratelimit else 'on'}, {elapsed:.1f} s; medians per call:"
    )
    for key in times:
        q_all, q_framework = queries[key]
        print(
            f"  {key:12} {median(times[key]) * 1000:7.2f} ms   {q_all:2} queries"
            f" ({q_framework} session+user, {q_all - q_framework} infobip_otp)"
        )

    def compare(call: str, against: str) -> tuple[float, float]:
        pairs = list(zip(times[call], times[against], strict=True))
        return median(x / y for x, y in pairs), median(x - y for x, y in pairs) * 1000

    for call in ("send", "verify"):
        floor_ratio, floor_extra = compare(f"floor_{call}", f"base_{call}")
        over_floor, over_floor_ms = compare(call, f"floor_{call}")
        print(
            f"{call}: floor/baseline {floor_ratio:.3f} (+{floor_extra:.2f} ms), "
            f"ours/floor {over_floor:.3f} (+{over_floor_ms:.2f} ms)"
        )
    for call in ("send", "verify"):
        ratio, overhead = compare(call, f"base_{call}")
        q_all, q_framework = queries[call]
        print(
            f"{call}: ratio {ratio:.3f} (target <= 1.15), +{overhead:.2f} ms, "
            f"{q_all} queries ({q_all - q_framework} infobip_otp) (target <= 6)"
        )


if __name__ == "__main__":
    main()
