"""T31: can an attacker tell verification failures apart by their response time?

Measures ``POST otp/api/verify/`` for three failures, interleaved in random
order round after round so that drift (CPU frequency, caches, other load)
hits all three alike:

- ``wrong_code``: a pending login whose challenge has attempts left, wrong code;
- ``unknown_challenge``: a pending login that never asked for a code;
- ``locked_challenge``: a pending login whose challenge is locked.

Each is a separate user and session, through Django's test client (the whole
middleware stack, DRF, the service layer and the database; no network).
Backend: ``locmem`` by default, or ``--simulator`` for the real
``InfobipBackend`` talking HTTP to the local Infobip simulator.

For each pair it prints the medians, the difference of the medians with a
bootstrap 95 % interval, the Mann-Whitney U test and Cliff's delta (standard
library only). A difference counts as *statistically usable* when it is both
significant (p < 0.001, interval excluding 0) and not negligible
(|delta| >= 0.147, Romano et al.'s bound for a "small" effect): an attacker
with that many samples could then classify a single response better than
chance. The last lines are the verdict.

Run: ``.venv/bin/python benchmarks/timing.py [--samples 400] [--simulator]``.
Uses ``tests.settings`` (SQLite in memory, or ``DATABASE_URL``/``REDIS_URL``)
and its own test database, created here and destroyed at the end.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import (  # noqa: E402
    CaptureQueriesContext,
    override_settings,
    setup_test_environment,
    teardown_test_environment,
)
from django.urls import reverse  # noqa: E402

from infobip_otp.backends import locmem  # noqa: E402
from infobip_otp.models import PhoneDevice  # noqa: E402
from infobip_otp.ratelimits import DEFAULT_RATES  # noqa: E402

PHONES = {
    "wrong_code": "+447400123451",
    "unknown_challenge": "+447400123452",
    "locked_challenge": "+447400123453",
}
EXPECTED_CODE = {
    "wrong_code": "invalid_pin",
    "unknown_challenge": "no_challenge",
    "locked_challenge": "locked",
}
PASSWORD = "timing-password-1"
# Every limit stays on (their cache work is part of each request) but far away.
HIGH_RATES = dict.fromkeys(DEFAULT_RATES, "1000000/h")
# Cliff's delta under this is "negligible" (Romano et al., 2006).
NEGLIGIBLE_DELTA = 0.147
ALPHA = 0.001
BOOTSTRAP_ROUNDS = 2000


# --- Statistics (standard library only) ---------------------------------------------------


def ranks(values: list[float]) -> list[float]:
    """Ranks from 1, ties sharing their average rank."""
    order = sorted(range(len(values)), key=values.__getitem__)
    result = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            result[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return result


def mann_whitney(a: list[float], b: list[float]) -> tuple[float, float, float]:
    """``(U of a, two-sided p (normal approximation, tie-corrected), Cliff's delta)``."""
    n1, n2 = len(a), len(b)
    pooled = a + b
    r = ranks(pooled)
    u1 = sum(r[:n1]) - n1 * (n1 + 1) / 2
    n = n1 + n2
    counts: dict[float, int] = {}
    for value in pooled:
        counts[value] = counts.get(value, 0) + 1
    ties = sum(t**3 - t for t in counts.values())
    variance = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1)))
    z = (u1 - n1 * n2 / 2) / math.sqrt(variance) if variance > 0 else 0.0
    p = math.erfc(abs(z) / math.sqrt(2))
    delta = 2 * u1 / (n1 * n2) - 1  # P(a > b) - P(a < b)
    return u1, p, delta


def bootstrap_median_difference(
    a: list[float], b: list[float], rng: random.Random
) -> tuple[float, float]:
    """95 % percentile interval of median(a) - median(b)."""
    differences = sorted(
        statistics.median(rng.choices(a, k=len(a))) - statistics.median(rng.choices(b, k=len(b)))
        for _ in range(BOOTSTRAP_ROUNDS)
    )
    low, high = int(0.025 * BOOTSTRAP_ROUNDS), int(0.975 * BOOTSTRAP_ROUNDS) - 1
    return differences[low], differences[high]


# --- The three failing clients ------------------------------------------------------------


def post(client: Client, name: str, body: dict | None = None):
    return client.post(
        reverse(f"infobip_otp:api-{name}"), json.dumps(body or {}), content_type="application/json"
    )


def wrong(pin: str) -> str:
    return "".join(str((int(digit) + 1) % 10) for digit in pin)


class Pins:
    """Where the PIN of the last code sent to a number can be read."""

    def __init__(self, simulator=None) -> None:
        self.simulator = simulator

    def last(self, phone: str) -> str:
        pin = self.simulator.last_pin(phone) if self.simulator else locmem.last_pin(phone)
        assert pin, f"no code was sent to {phone}"
        return pin


def pending_client(kind: str) -> Client:
    user = get_user_model().objects.create_user(kind, f"{kind}@example.com", PASSWORD)
    PhoneDevice.objects.create(user=user, phone_number=PHONES[kind])
    client = Client()
    answer = post(client, "login", {"username": kind, "password": PASSWORD})
    assert answer.status_code == 200 and answer.json()["state"] == "pending", answer.content
    return client


def prepare(pins: Pins) -> dict[str, tuple[Client, str]]:
    """The clients and the code each will send, every one failing in its own way."""
    clients = {}
    # Enough attempts that 'wrong_code' never locks during the run.
    with override_settings(INFOBIP_OTP_MAX_ATTEMPTS=30000):
        client = pending_client("wrong_code")
        assert post(client, "send").status_code == 202
        clients["wrong_code"] = (client, wrong(pins.last(PHONES["wrong_code"])))
    clients["unknown_challenge"] = (pending_client("unknown_challenge"), "123456")
    with override_settings(INFOBIP_OTP_MAX_ATTEMPTS=1):
        client = pending_client("locked_challenge")
        assert post(client, "send").status_code == 202
        pin = pins.last(PHONES["locked_challenge"])
        assert post(client, "verify", {"pin": wrong(pin)}).json()["code"] == "locked"
        # The right code, even: a locked challenge refuses it like any other.
        clients["locked_challenge"] = (client, pin)
    return clients


def work_profile(clients: dict[str, tuple[Client, str]], simulator=None) -> dict[str, dict]:
    """What one request of each failure does: queries, row-changing writes, provider calls.

    Writes that change a row matter apart: in autocommit mode each one is a
    commit, and on PostgreSQL a commit that wrote waits for the WAL flush.
    """
    profile = {}
    for kind, (client, pin) in clients.items():
        writes = []

        def record(execute, sql, params, many, context, writes=writes):
            result = execute(sql, params, many, context)
            verb = sql.lstrip().split(None, 1)[0].upper()
            if verb in ("INSERT", "UPDATE", "DELETE") and context["cursor"].rowcount > 0:
                writes.append(verb)
            return result

        calls_before = simulator.request_count("verify") if simulator else 0
        with CaptureQueriesContext(connection) as captured, connection.execute_wrapper(record):
            post(client, "verify", {"pin": pin})
        profile[kind] = {
            "queries": len(captured.captured_queries),
            "writes": len(writes),
            "provider calls": (simulator.request_count("verify") if simulator else 0)
            - calls_before,
        }
    return profile


def measure(clients: dict[str, tuple[Client, str]], samples: int, warmup: int, seed: int):
    rng = random.Random(seed)
    times: dict[str, list[float]] = {kind: [] for kind in clients}
    kinds = list(clients)
    gc.collect()
    gc.disable()
    try:
        for round_number in range(warmup + samples):
            rng.shuffle(kinds)
            for kind in kinds:
                client, pin = clients[kind]
                began = time.perf_counter_ns()
                response = post(client, "verify", {"pin": pin})
                elapsed = time.perf_counter_ns() - began
                if response.status_code != 400 or response.json()["code"] != EXPECTED_CODE[kind]:
                    raise SystemExit(
                        f"{kind}: unexpected {response.status_code} {response.content!r}"
                    )
                if round_number >= warmup:
                    times[kind].append(elapsed / 1000)  # microseconds
            if round_number % 50 == 49:
                gc.collect()
    finally:
        gc.enable()
    return times


# --- Main ---------------------------------------------------------------------------------


def simulator_settings(server) -> dict:
    from infobip_otp.testing.pytest_plugin import INFOBIP_BACKEND, reset_client_state

    application = server.create_application(
        "timing",
        pinAttempts=30000,
        pinTimeToLive="10m",
        allowMultiplePinVerifications=False,
        verifyPinLimit="1000000/1s",
        sendPinPerPhoneNumberLimit="1000/1d",
    )
    template = server.create_template(application["applicationId"], pin_length=6)
    reset_client_state()
    return {
        "INFOBIP_OTP_BACKEND": INFOBIP_BACKEND,
        "INFOBIP_OTP_BASE_URL": server.url,
        "INFOBIP_OTP_API_KEY": server.api_key,
        "INFOBIP_OTP_APPLICATION_ID": application["applicationId"],
        "INFOBIP_OTP_MESSAGE_ID": template["messageId"],
        "INFOBIP_OTP_TIMEOUT": (1.0, 2.0),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--samples", type=int, default=400, help="timed requests per failure (>= 200)"
    )
    parser.add_argument("--warmup", type=int, default=30, help="untimed rounds first")
    parser.add_argument("--seed", type=int, default=31)
    parser.add_argument(
        "--simulator", action="store_true", help="InfobipBackend against the local simulator"
    )
    options = parser.parse_args(argv)
    if options.samples < 200:
        parser.error("--samples must be at least 200")

    started = time.monotonic()
    setup_test_environment()
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    server = None
    try:
        overrides = {
            "INFOBIP_OTP_RATES": HIGH_RATES,
            "INFOBIP_OTP_LOCKOUT_THRESHOLD": 10**9,
            "INFOBIP_OTP_NOTIFY_AFTER_FAILURES": 0,
            "INFOBIP_OTP_SEND_BUDGET": 0,
        }
        if options.simulator:
            from infobip_otp.testing.simulator import SimulatorServer

            server = SimulatorServer().start()
            overrides.update(simulator_settings(server))
        with override_settings(**overrides):
            clients = prepare(Pins(server))
            profile = work_profile(clients, server)
            times = measure(clients, options.samples, options.warmup, options.seed)
    finally:
        if server is not None:
            server.stop()
        connection.creation.destroy_test_db(old_name, verbosity=0)
        teardown_test_environment()

    print(
        f"T31 verify timing: {connection.vendor}, backend {'simulator' if server else 'locmem'}, "
        f"{options.samples} interleaved samples per failure (+{options.warmup} warm-up rounds)"
    )
    print()
    header = ("failure", "queries", "writes", "median us", "p10 us", "p90 us")
    print("{:<18} {:>7} {:>6} {:>10} {:>9} {:>9}".format(*header))
    for kind, values in times.items():
        deciles = statistics.quantiles(values, n=10)
        print(
            f"{kind:<18} {profile[kind]['queries']:>7} {profile[kind]['writes']:>6} "
            f"{statistics.median(values):>10.1f} "
            f"{deciles[0]:>9.1f} {deciles[-1]:>9.1f}"
        )
    print()
    rng = random.Random(options.seed)
    usable = []
    kinds = list(times)
    for i, first in enumerate(kinds):
        for second in kinds[i + 1 :]:
            a, b = times[first], times[second]
            _, p, delta = mann_whitney(a, b)
            low, high = bootstrap_median_difference(a, b, rng)
            difference = statistics.median(a) - statistics.median(b)
            significant = p < ALPHA and (low > 0 or high < 0)
            is_usable = significant and abs(delta) >= NEGLIGIBLE_DELTA
            if is_usable:
                usable.append(f"{first} vs {second}")
            print(
                f"{first} vs {second}: median difference {difference:+.1f} us "
                f"(95% CI {low:+.1f} .. {high:+.1f}), Mann-Whitney p={p:.2g}, "
                f"Cliff's delta={delta:+.3f} -> {'USABLE' if is_usable else 'not usable'}"
            )
    print()
    print(f"run time {time.monotonic() - started:.1f} s")
    if usable:
        print("VERDICT: statistically usable timing difference: " + "; ".join(usable))
        causes = []
        for factor in ("queries", "writes", "provider calls"):
            counts = {kind: work[factor] for kind, work in profile.items()}
            if len(set(counts.values())) > 1:
                causes.append(
                    f"{factor} differ ({', '.join(f'{k}={n}' for k, n in counts.items())})"
                )
        if causes:
            print("CAUSE: " + "; ".join(causes))
            print("(writes: row-changing statements, each a commit; on PostgreSQL a WAL flush)")
        else:
            print(
                "CAUSE: the same queries, writes and provider calls on every path: look elsewhere"
            )
        return 1
    print(
        "VERDICT: no statistically usable timing difference between the failure paths "
        f"(every pair p >= {ALPHA} or |Cliff's delta| < {NEGLIGIBLE_DELTA})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
