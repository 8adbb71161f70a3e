"""Throughput of whole logins under load, against the provider's latency limit.

Run: ``.venv/bin/python -m benchmarks.load [--clients 16] [--seconds 30] [--latency-ms 100]
[--sessions cache|db]``

Starts the simulator (answering after ``--latency-ms``), gunicorn with
threaded workers (``pip install gunicorn``) on PostgreSQL (database
``infobip_otp_bench_load``, created and dropped) and Redis (rate limits, breaker
and, by default, sessions: the production set-up of docs/operations.md;
``--sessions db`` for Django's default), then ``--clients``
concurrent clients each doing, as fast as they can: ``POST /otp/api/login/``
-> ``POST /otp/api/send/`` -> read the PIN from the simulator's
``/_simulator/pins/`` -> ``POST /otp/api/verify/``.

Then the same clients run the same flow against the hand-written floor
(``/floor/login/``, ``/floor/send/``, ``/floor/verify/`` of
``benchmarks._common``: DRF views doing the least a correct session-bound SMS
step can do, see ``benchmarks.endpoints``) on the same gunicorn, so the
figures show how much of the gap to the limit is this app's and how much any
Django + DRF version of the flow would leave on this machine.

Every flow waits for two provider calls, so C clients can complete at most
C / (2 x latency) flows per second: the ratio printed is achieved / that
limit. The CPU every process spent per flow is printed too, with the rate
at which the machine's cores would run out. Meanwhile the connections the app
opens to the simulator are counted: every socket to the simulator's port seen
in ``/proc/net/tcp``, sampled every 0.5 s, less the clients' own PIN
look-ups. No connection escapes the count: each one closed stays 60 s in
``TIME_WAIT`` at one end or the other. (Reading ``/proc/net/tcp`` costs the
kernel about 5 ms each time: sampled more often, the count would take CPU
from the server it measures.) With a pool they stay few, far below one per
provider call.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import socket
import subprocess
import threading
import time
from http.cookies import SimpleCookie
from typing import Any

import psutil

from benchmarks._common import (
    PYTHON,
    REDIS_URL,
    ROOT,
    Simulator,
    drop_database,
    machine,
    percentile,
    phone_number,
    postgres_version,
    recreate_database,
    setup_django,
)

DATABASE = "infobip_otp_bench_load"
PASSWORD = "bench-password"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def prepare_database(environment: dict[str, str], users: int) -> None:
    """Migrate and create the users, each with a confirmed phone, in a child process."""
    script = (
        "from benchmarks._common import setup_django, migrate_with_users\n"
        "setup_django()\n"
        f"migrate_with_users({users}, {PASSWORD!r})\n"
    )
    subprocess.run([PYTHON, "-c", script], cwd=ROOT, env=environment, check=True)


class Gunicorn:
    """gunicorn serving ``benchmarks.settings`` with threaded workers."""

    def __init__(self, environment: dict[str, str], workers: int, threads: int) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [
                PYTHON,
                "-m",
                "gunicorn",
                "benchmarks._common:wsgi_application()",
                "--worker-class",
                "gthread",
                "--workers",
                str(workers),
                "--threads",
                str(threads),
                "--bind",
                f"127.0.0.1:{self.port}",
                "--keep-alive",
                "30",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=environment,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                connection.request("GET", "/otp/api/status/")
                if connection.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                raise RuntimeError("gunicorn did not start")
            time.sleep(0.2)

    def pids(self) -> list[int]:
        master = psutil.Process(self.process.pid)
        return [master.pid, *(child.pid for child in master.children())]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class ConnectionWatcher(threading.Thread):
    """Counts the distinct sockets connected to ``port``, from ``/proc/net/tcp``."""

    def __init__(self, port: int, interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.hex_port = f"{port:04X}"
        self.interval = interval
        self.seen: set[int] = set()
        self.max_open = 0
        self.excluded: set[int] = set()
        self.stopping = threading.Event()

    def sample(self) -> set[int]:
        """The client ports of the connections to ``port``, seen from either end."""
        ports = set()
        suffix = ":" + self.hex_port
        with open("/proc/net/tcp") as table:
            next(table)
            for line in table:
                fields = line.split()
                local, remote, state = fields[1], fields[2], fields[3]
                # State 0A is LISTEN; every other one is a connection (or its TIME_WAIT).
                if state == "0A":
                    continue
                if remote.endswith(suffix):
                    ports.add(int(local.rsplit(":", 1)[1], 16))
                elif local.endswith(suffix):
                    ports.add(int(remote.rsplit(":", 1)[1], 16))
        return ports

    def run(self) -> None:
        while not self.stopping.wait(self.interval):
            ports = self.sample() - self.excluded
            self.seen |= ports
            self.max_open = max(self.max_open, len(ports))

    def app_connections(self) -> int:
        return len(self.seen - self.excluded)


class Client(threading.Thread):
    """One user signing in again and again: login -> send -> PIN -> verify."""

    def __init__(
        self, index: int, app_port: int, simulator_port: int, run: Any, flow: str = "ours"
    ) -> None:
        super().__init__(daemon=True)
        self.index = index
        self.flow = self.floor_flow if flow == "floor" else self.our_flow
        self.username = f"bench{index}"
        self.digits = phone_number(index).lstrip("+")
        self.app_port = app_port
        self.simulator_port = simulator_port
        self.run_state = run
        self.app: http.client.HTTPConnection | None = None
        self.simulator: http.client.HTTPConnection | None = None
        self.results: list[tuple[float, float, str | None]] = []  # (end, seconds, error)

    def connect(self, port: int) -> http.client.HTTPConnection:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.connect()
        if port == self.simulator_port:
            self.run_state.watcher.excluded.add(connection.sock.getsockname()[1])
        return connection

    def call(
        self, method: str, path: str, body: Any, cookies: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
            headers["X-CSRFToken"] = cookies["csrftoken"]
        if self.app is None:
            self.app = self.connect(self.app_port)
        try:
            self.app.request(method, path, json.dumps(body), headers)
            response = self.app.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            self.app.close()
            self.app = None
            raise
        for header in response.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(header).items():
                cookies[name] = morsel.value
        return response.status, json.loads(data) if data else {}

    def pin(self) -> str:
        if self.simulator is None:
            self.simulator = self.connect(self.simulator_port)
        self.simulator.request("GET", f"/_simulator/pins/{self.digits}")
        return str(json.loads(self.simulator.getresponse().read())["pin"])

    def our_flow(self) -> str | None:
        # A client-made CSRF token, as the cookie an earlier page view would have set.
        cookies = {"csrftoken": secrets.token_hex(16)}
        login = {"username": self.username, "password": PASSWORD}
        status, body = self.call("POST", "/otp/api/login/", login, cookies)
        if status != 200 or body.get("state") != "pending":
            return f"login {status} {body.get('code')}"
        status, body = self.call("POST", "/otp/api/send/", {}, cookies)
        if status != 202:
            return f"send {status} {body.get('code')}"
        status, body = self.call("POST", "/otp/api/verify/", {"pin": self.pin()}, cookies)
        if status != 200 or body.get("state") != "verified":
            return f"verify {status} {body.get('code')}"
        return None

    def floor_flow(self) -> str | None:
        cookies = {"csrftoken": secrets.token_hex(16)}
        login = {"username": self.username, "password": PASSWORD}
        status, body = self.call("POST", "/floor/login/", login, cookies)
        if status != 200:
            return f"floor login {status}"
        status, body = self.call("POST", "/floor/send/", {}, cookies)
        if status != 202:
            return f"floor send {status}"
        status, body = self.call("POST", "/floor/verify/", {"pin": self.pin()}, cookies)
        if status != 200 or body.get("verified") is not True:
            return f"floor verify {status}"
        return None

    def run(self) -> None:
        while not self.run_state.stopping.is_set():
            started = time.perf_counter()
            try:
                error = self.flow()
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
            ended = time.perf_counter()
            self.results.append((ended, ended - started, error))


class Run:
    def __init__(self, watcher: ConnectionWatcher) -> None:
        self.watcher = watcher
        self.stopping = threading.Event()


def pids_named(name: str) -> list[int]:
    """Every process called ``name`` (PostgreSQL's backends, Redis), whoever uses them."""
    return [p.pid for p in psutil.process_iter(["name"]) if p.info["name"] == name]


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=30, help="measured window")
    parser.add_argument("--warmup", type=float, default=5)
    parser.add_argument("--latency-ms", type=float, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument(
        "--sessions",
        choices=("cache", "db"),
        default="cache",
        help="SESSION_ENGINE: the cache (Redis) or the database (Django's default)",
    )
    options = parser.parse_args()

    simulator = Simulator(latency_ms=options.latency_ms)
    database_url = recreate_database(DATABASE)
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "benchmarks.settings",
        "DATABASE_URL": database_url,
        "CACHE_URL": REDIS_URL,
        "BENCH_CACHE_PREFIX": f"infobip-otp-bench-load-{os.getpid()}",
        "PYTHONPATH": str(ROOT),
        "BENCH_SESSION_ENGINE": f"django.contrib.sessions.backends.{options.sessions}",
        **simulator.environment(),
    }
    gunicorn = None
    try:
        prepare_database(environment, options.clients)
        gunicorn = Gunicorn(environment, options.workers, options.threads)
        measure(options, simulator, gunicorn)
    finally:
        if gunicorn is not None:
            gunicorn.stop()
        simulator.stop()
        drop_database(DATABASE)


class Phase:
    """What one flow achieved in its measured window."""

    def __init__(self, flow: str, options: argparse.Namespace) -> None:
        self.flow = flow
        self.options = options
        self.flows = 0
        self.achieved = 0.0
        self.errors: list[str] = []
        self.durations: list[float] = []
        self.cpu: dict[str, float] = {}
        self.calls = 0


def run_phase(
    flow: str, options: argparse.Namespace, simulator: Simulator, gunicorn: Gunicorn
) -> tuple[Phase, ConnectionWatcher]:
    """C clients doing ``flow`` for the warm-up and the measured window."""
    watcher = ConnectionWatcher(simulator.port)
    # Connections already open (the set-up's own, an earlier phase's) are not this phase's.
    watcher.excluded |= watcher.sample()
    run = Run(watcher)
    clients = [Client(i, gunicorn.port, simulator.port, run, flow) for i in range(options.clients)]
    watcher.start()
    for client in clients:
        client.start()
    time.sleep(options.warmup)
    window_start = time.perf_counter()
    processes = {
        "gunicorn": gunicorn.pids(),
        "simulator": [simulator.process.pid],
        "clients": [os.getpid()],
        "postgres": pids_named("postgres"),
        "redis": pids_named("redis-server"),
    }
    cpu_before = {name: cpu_seconds(pids) for name, pids in processes.items()}
    time.sleep(options.seconds)
    window_end = time.perf_counter()
    cpu_after = {name: cpu_seconds(pids) for name, pids in processes.items()}
    run.stopping.set()
    for client in clients:
        client.join(timeout=60)
        for connection in (client.app, client.simulator):
            if connection is not None:
                connection.close()
    watcher.stopping.set()
    watcher.join()

    phase = Phase(flow, options)
    in_window = [
        result
        for client in clients
        for result in client.results
        if window_start < result[0] <= window_end
    ]
    phase.errors = [result[2] for client in clients for result in client.results if result[2]]
    phase.durations = [result[1] for result in in_window if not result[2]]
    phase.flows = len(phase.durations)
    phase.achieved = phase.flows / (window_end - window_start)
    phase.cpu = {
        name: (cpu_after[name] - cpu_before[name]) / max(phase.flows, 1) for name in processes
    }
    phase.calls = 2 * sum(len(c.results) for c in clients)
    return phase, watcher


def measure(options: argparse.Namespace, simulator: Simulator, gunicorn: Gunicorn) -> None:
    ours, watcher = run_phase("ours", options, simulator, gunicorn)
    floor, _ = run_phase("floor", options, simulator, gunicorn)
    limit = options.clients / (2 * options.latency_ms / 1000)

    setup_django()  # only for the version numbers in the machine line
    print(machine() + f" PostgreSQL {postgres_version()}")
    print(
        f"gunicorn gthread {options.workers} workers x {options.threads} threads; "
        f"{options.clients} clients; simulator latency {options.latency_ms:g} ms; "
        f"sessions in the {options.sessions}; each flow "
        f"{options.seconds:g} s measured after {options.warmup:g} s warm-up"
    )
    for phase in (ours, floor):
        label = "infobip_otp" if phase.flow == "ours" else "floor"
        cpu = ", ".join(f"{name} {seconds * 1000:.1f}" for name, seconds in phase.cpu.items())
        total = sum(phase.cpu.values())
        print(
            f"{label:11} {phase.flows} flows, {phase.achieved:.1f}/s "
            f"(ratio to the limit {phase.achieved / limit:.3f}); CPU per flow "
            f"{total * 1000:.1f} ms ({cpu}), ceiling {(os.cpu_count() or 1) / total:.1f} flows/s"
            if total
            else f"{label:11} no flows"
        )
        if phase.durations:
            print(
                f"{'':11} p50 {percentile(phase.durations, 0.5) * 1000:.0f} ms, "
                f"p99 {percentile(phase.durations, 0.99) * 1000:.0f} ms (provider alone: "
                f"{2 * options.latency_ms:.0f} ms); errors {len(phase.errors)}"
                + (f" {sorted(set(phase.errors))[:5]}" if phase.errors else "")
            )
    print(
        f"connections to the simulator (infobip_otp): {watcher.app_connections()} distinct, "
        f"at most {watcher.max_open} at once (pool bound {options.workers} x "
        f"{options.threads}; provider calls made: {ours.calls})"
    )
    print(f"physical limit {limit:.1f} flows/s ({options.clients} clients / 2 provider calls)")
    if floor.achieved:
        print(f"infobip_otp / floor = {ours.achieved / floor.achieved:.3f} (flows per second)")
    print(f"errors: {len(ours.errors)} (target 0)")
    print(f"ratio achieved/limit = {ours.achieved / limit:.3f} (target >= 0.85)")


if __name__ == "__main__":
    main()
