"""CPU instructions per login flow, this app against the hand-written floor: a noise-free ratio.

Run: ``.venv/bin/python -m benchmarks.instructions [--flows 40]`` (needs ``valgrind``:
``apt-get install valgrind``).

The time ratios of the other benchmarks move by 0.1 to 0.3 from run to run on
a shared machine. Instructions do not: ``valgrind --tool=callgrind`` counts
them, the same for the same work whatever else the machine is doing. Each
variant runs in a child process under callgrind twice, once with 5 flows and
once with 5 + ``--flows``; the difference, divided by ``--flows``, is the
cost of one flow with every start-up cost taken out.

A flow is ``login`` -> ``send`` -> ``verify`` through Django's test client,
in process: this app's API (``/otp/api/``) or the hand-written floor
(``/floor/``, see ``benchmarks.endpoints``), on PostgreSQL (database
``infobip_otp_bench_instructions``, created and dropped) and Redis, sessions
in Redis, the simulator answering at once in its own process (not counted).
Only the Python process of the app is counted: PostgreSQL's and Redis's work
is not (``benchmarks.load`` prints their CPU).
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import subprocess
import sys
from typing import Any

from benchmarks._common import (
    PYTHON,
    REDIS_URL,
    ROOT,
    Simulator,
    drop_database,
    machine,
    migrate_with_users,
    phone_number,
    recreate_database,
    setup_django,
)

DATABASE = "infobip_otp_bench_instructions"
WARM_FLOWS = 5
PASSWORD = "bench-password"
PATHS = {"infobip_otp": "/otp/api", "floor": "/floor"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flows", type=int, default=40, help="flows counted per variant")
    parser.add_argument("--child", nargs=2, metavar=("VARIANT", "FLOWS"), help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        run_flows(options.child[0], int(options.child[1]))
        return
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (apt-get install valgrind)")

    per_flow = {}
    for variant in PATHS:
        low = count_instructions(variant, WARM_FLOWS)
        high = count_instructions(variant, WARM_FLOWS + options.flows)
        per_flow[variant] = (high - low) / options.flows
        print(f"{variant:11} {per_flow[variant] / 1e6:7.2f} million instructions per flow")
    setup_django()  # only for the version numbers in the machine line
    print(machine())
    print(
        f"{options.flows} flows (login, send, verify) per variant, sessions in Redis; "
        f"infobip_otp costs {(per_flow['infobip_otp'] - per_flow['floor']) / 1e6:.2f} "
        "million instructions per flow more than the floor"
    )
    print(f"ratio infobip_otp / floor = {per_flow['infobip_otp'] / per_flow['floor']:.3f}")


def count_instructions(variant: str, flows: int) -> int:
    """Instructions callgrind counts in a child running ``flows`` flows of ``variant``."""
    command = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        PYTHON,
        "-m",
        "benchmarks.instructions",
        "--child",
        variant,
        str(flows),
    ]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    found = re.search(r"Collected : (\d+)", result.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count from callgrind:\n{result.stderr[-2000:]}")
    return int(found.group(1))


def run_flows(variant: str, flows: int) -> None:
    simulator = Simulator(latency_ms=0)
    database_url = recreate_database(DATABASE)
    try:
        setup_django(
            BENCH_SESSION_ENGINE="django.contrib.sessions.backends.cache",
            DATABASE_URL=database_url,
            CACHE_URL=REDIS_URL,
            BENCH_CACHE_PREFIX=f"infobip-otp-bench-instructions-{os.getpid()}",
            **simulator.environment(),
        )
        from django.test import Client

        migrate_with_users(flows, password=PASSWORD)
        path = PATHS[variant]
        for index in range(flows):
            client = Client()
            client.cookies["csrftoken"] = secrets.token_hex(16)
            login = {"username": f"bench{index}", "password": PASSWORD}
            for call, body, expected in (("login", login, 200), ("send", {}, 202)):
                post(client, f"{path}/{call}/", body, expected)
            pin = simulator.last_pin(phone_number(index))["pin"]
            post(client, f"{path}/verify/", {"pin": pin}, 200)
    finally:
        from django.db import connections

        connections.close_all()
        simulator.stop()
        drop_database(DATABASE)


def post(client: Any, path: str, body: dict, expected: int) -> None:
    response = client.post(
        path,
        body,
        content_type="application/json",
        HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value,
    )
    assert response.status_code == expected, response.content


if __name__ == "__main__":
    main()
