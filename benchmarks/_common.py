"""Shared by the benchmark scripts: the URLconf of ``benchmarks.settings``, the
baseline views, the simulator and PostgreSQL set-up, and small statistics.

Importing this module never starts Django; the scripts call :func:`setup_django`
after setting the environment.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
API_KEY = "bench-api-key"
#: The admin database: CREATE/DROP DATABASE of the benchmark databases run there.
ADMIN_DATABASE_URL = os.environ.get(
    "BENCH_ADMIN_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
#: Infobip-side limits loose enough that the simulator never answers 429.
UNTHROTTLED_APPLICATION = {
    "pinAttempts": 10,
    "pinTimeToLive": "15m",
    "verifyPinLimit": "100000/1s",
    "sendPinPerApplicationLimit": "100000000/1d",
    "sendPinPerPhoneNumberLimit": "1000000/1d",
}


def phone_number(index: int) -> str:
    """A distinct valid UK mobile number (E.164) per index (index < 10,000)."""
    return f"+44791112{index:04d}"


# --- Django ------------------------------------------------------------------------------


def setup_django(**environment: str) -> None:
    """Point ``benchmarks.settings`` at ``environment`` and start Django."""
    os.environ.update(environment)
    os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.settings"
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def wsgi_application() -> Any:
    """The WSGI callable for gunicorn: ``gunicorn 'benchmarks._common:wsgi_application()'``."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")
    from django.core.wsgi import get_wsgi_application

    return get_wsgi_application()


def migrate_with_users(count: int, password: str) -> list[Any]:
    """Migrate, then create users ``bench0``... each with a confirmed phone of their own."""
    from django.contrib.auth.models import User
    from django.core.management import call_command

    from infobip_otp.models import PhoneDevice

    call_command("migrate", verbosity=0)
    users = []
    for index in range(count):
        user = User.objects.create_user(f"bench{index}", password=password)
        PhoneDevice.objects.create(user=user, phone_number=phone_number(index))
        users.append(user)
    return users


@contextmanager
def count_queries(alias: str = "default") -> Iterator[list[str]]:
    """Collect the SQL of every statement run on ``alias`` inside the block."""
    from django.db import connections

    statements: list[str] = []

    def record(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        statements.append(sql)
        return execute(sql, params, many, context)

    with connections[alias].execute_wrapper(record):
        yield statements


def framework_queries(statements: Iterable[str]) -> int:
    """Statements any login-required view costs: the session's, and loading ``request.user``.

    Every statement on ``django_session`` counts, but only the first
    ``SELECT`` of ``auth_user``: loading the user again is the view's doing.
    """
    session = sum(1 for sql in statements if '"django_session"' in sql)
    user = any(sql.startswith('SELECT "auth_user".') for sql in statements)
    return session + int(user)


# --- Views of the benchmark URLconf ---------------------------------------------------------

_baseline_session = requests.Session()


def page(request: Any) -> Any:
    """A trivial login-required page: it reads ``request.user`` like every such view."""
    from django.http import HttpResponse, HttpResponseForbidden

    if not request.user.is_authenticated:
        return HttpResponseForbidden()
    return HttpResponse(f"hello {request.user.get_username()}")


def page_django_otp(request: Any) -> Any:
    """The same page guarded the django-otp way: ``request.user.is_verified()``."""
    from django.http import HttpResponse, HttpResponseForbidden

    if not (request.user.is_authenticated and request.user.is_verified()):
        return HttpResponseForbidden()
    return HttpResponse(f"hello {request.user.get_username()}")


def _provider(path: str, body: dict[str, Any]) -> Any:
    from django.conf import settings
    from django.http import JsonResponse

    response = _baseline_session.post(
        settings.INFOBIP_OTP_BASE_URL + path,
        json=body,
        headers={"Authorization": f"App {settings.INFOBIP_OTP_API_KEY}"},
        timeout=(3.05, 10),
    )
    return JsonResponse(response.json(), status=response.status_code)


def baseline_send(request: Any) -> Any:
    """The least a send view can do: one ``requests`` call to ``POST /2fa/2/pin``."""
    from django.conf import settings

    body = json.loads(request.body)
    return _provider(
        "/2fa/2/pin",
        {
            "applicationId": settings.INFOBIP_OTP_APPLICATION_ID,
            "messageId": settings.INFOBIP_OTP_MESSAGE_ID,
            "to": body["to"],
        },
    )


def baseline_verify(request: Any) -> Any:
    """The least a verify view can do: one ``requests`` call to ``/2fa/2/pin/{id}/verify``."""
    body = json.loads(request.body)
    return _provider(f"/2fa/2/pin/{body['pinId']}/verify", {"pin": body["pin"]})


def _floor_views() -> tuple[Any, Any, Any]:
    """The least a correct session-bound SMS step can do with Django and DRF.

    Session authentication with CSRF, a signed-in user, the user's number read
    from the database, the provider's pin id kept in the session, and on a
    right code the session key rotated (as ``login()`` does). No rate limits,
    no challenge rows, no lockout, no audit: what any hand-written version of
    the two calls costs before it does anything of its own.
    """
    from django.contrib.auth import authenticate, login
    from rest_framework.authentication import SessionAuthentication
    from rest_framework.permissions import AllowAny, IsAuthenticated
    from rest_framework.response import Response
    from rest_framework.views import APIView

    from infobip_otp.models import PhoneDevice

    class FloorView(APIView):
        authentication_classes = [SessionAuthentication]
        permission_classes = [IsAuthenticated]
        throttle_classes: list[Any] = []

    class FloorLogin(FloorView):
        """The password step: ``authenticate`` and ``login`` (``benchmarks.load``)."""

        permission_classes = [AllowAny]

        def post(self, request: Any) -> Any:
            user = authenticate(
                request._request,
                username=request.data["username"],
                password=request.data["password"],
            )
            if user is None:
                return Response({"signed_in": False}, status=400)
            login(request._request, user)
            return Response({"signed_in": True})

    class FloorSend(FloorView):
        def post(self, request: Any) -> Any:
            from django.conf import settings

            number = (
                PhoneDevice.objects.filter(user=request.user)
                .values_list("phone_number", flat=True)
                .get()
            )
            answer = _provider(
                "/2fa/2/pin",
                {
                    "applicationId": settings.INFOBIP_OTP_APPLICATION_ID,
                    "messageId": settings.INFOBIP_OTP_MESSAGE_ID,
                    "to": number.lstrip("+"),
                },
            )
            request.session["floor_pin_id"] = json.loads(answer.content)["pinId"]
            return Response({"sent": True}, status=202)

    class FloorVerify(FloorView):
        def post(self, request: Any) -> Any:
            pin_id = request.session["floor_pin_id"]
            answer = json.loads(
                _provider(f"/2fa/2/pin/{pin_id}/verify", {"pin": request.data["pin"]}).content
            )
            if not answer.get("verified"):
                return Response({"verified": False}, status=400)
            request.session.cycle_key()
            request.session["floor_verified"] = True
            return Response({"verified": True})

    return FloorLogin.as_view(), FloorSend.as_view(), FloorVerify.as_view()


def _urlpatterns() -> list[Any]:
    from django.urls import include, path
    from django.views.decorators.csrf import csrf_exempt

    floor_login, floor_send, floor_verify = _floor_views()
    return [
        path("page/", page),
        path("page-django-otp/", page_django_otp),
        path("baseline/send/", csrf_exempt(baseline_send)),
        path("baseline/verify/", csrf_exempt(baseline_verify)),
        path("floor/login/", floor_login),
        path("floor/send/", floor_send),
        path("floor/verify/", floor_verify),
        path("otp/", include("infobip_otp.urls")),
    ]


def __getattr__(name: str) -> Any:
    # Django reads ``urlpatterns`` only once it is set up; building it lazily
    # keeps this module importable before that.
    if name == "urlpatterns":
        return _urlpatterns()
    raise AttributeError(name)


# --- The simulator ------------------------------------------------------------------------


class Simulator:
    """The Infobip simulator in its own process, with an application and a template."""

    def __init__(self, latency_ms: float) -> None:
        self.process = subprocess.Popen(
            [
                PYTHON,
                "-m",
                "infobip_otp.testing.simulator",
                "--port",
                "0",
                "--api-key",
                API_KEY,
                "--latency-ms",
                str(latency_ms),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()
        if not self.url.startswith("http://"):
            self.stop()
            raise RuntimeError(f"the simulator did not start: {self.url!r}")
        self.port = int(self.url.rsplit(":", 1)[1])
        self.control = requests.Session()
        auth = {"Authorization": f"App {API_KEY}"}
        app = self.control.post(
            f"{self.url}/2fa/2/applications",
            json={"name": "bench", "configuration": UNTHROTTLED_APPLICATION},
            headers=auth,
            timeout=10,
        ).json()
        self.application_id = app["applicationId"]
        template = self.control.post(
            f"{self.url}/2fa/2/applications/{self.application_id}/messages",
            json={"messageText": "Your code is {{pin}}", "pinType": "NUMERIC", "pinLength": 6},
            headers=auth,
            timeout=10,
        ).json()
        self.message_id = template["messageId"]

    def environment(self) -> dict[str, str]:
        """The ``INFOBIP_OTP_*`` variables that point the app at this simulator."""
        return {
            "INFOBIP_OTP_BASE_URL": self.url,
            "INFOBIP_OTP_API_KEY": API_KEY,
            "INFOBIP_OTP_APPLICATION_ID": self.application_id,
            "INFOBIP_OTP_MESSAGE_ID": self.message_id,
        }

    def set_latency(self, ms: float) -> None:
        """Make every provider answer wait ``ms`` from now on (on top of ``latency_ms``)."""
        self.control.delete(f"{self.url}/_simulator/faults", timeout=10).raise_for_status()
        if ms > 0:
            self.control.post(
                f"{self.url}/_simulator/faults",
                json={"endpoint": "*", "kind": "latency", "ms": ms},
                timeout=10,
            ).raise_for_status()

    def last_pin(self, number: str) -> dict[str, Any]:
        """``{"pin", "pinId", ...}`` of the last PIN sent to ``number`` (E.164 or digits)."""
        digits = number.lstrip("+")
        return self.control.get(f"{self.url}/_simulator/pins/{digits}", timeout=10).json()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# --- PostgreSQL ---------------------------------------------------------------------------


def database_url(name: str) -> str:
    """The URL of database ``name`` on the admin database's server."""
    return re.sub(r"/[^/]*$", f"/{name}", ADMIN_DATABASE_URL)


def recreate_database(name: str) -> str:
    """Drop and create the PostgreSQL database ``name``; return its URL."""
    drop_database(name)
    _admin(f'CREATE DATABASE "{name}"')
    return database_url(name)


def drop_database(name: str) -> None:
    _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(ADMIN_DATABASE_URL, autocommit=True) as connection:
        connection.execute(sql)  # type: ignore[arg-type]


def postgres_version() -> str:
    import psycopg

    with psycopg.connect(ADMIN_DATABASE_URL) as connection:
        row = connection.execute("SHOW server_version").fetchone()
    return row[0] if row else "?"


# --- Figures ------------------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    """The ``fraction`` quantile (nearest rank) of ``values``."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]


def median(values: Iterable[float]) -> float:
    return statistics.median(values)


def machine() -> str:
    """One line naming the machine and the versions, printed by every benchmark."""
    import django

    memory = ""
    if shutil.which("free"):
        lines = subprocess.run(["free", "-h"], capture_output=True, text=True).stdout.splitlines()
        memory = f"memory={lines[1].split()[1]}" if len(lines) > 1 else ""
    return (
        f"machine: nproc={os.cpu_count()} {memory} load={os.getloadavg()[0]:.2f} "
        f"Python {platform.python_version()} Django {django.get_version()}"
    )
