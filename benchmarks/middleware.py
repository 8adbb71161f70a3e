"""What ``OtpRequiredMiddleware`` costs a signed-in, verified request.

Run: ``.venv/bin/python -m benchmarks.middleware [--rounds 60] [--requests 200]``

Many GET requests go through Django's WSGI handler to a trivial page that
reads ``request.user`` (as every login-required view does), for a session
that is signed in and past its second factor, in three set-ups:

a. the middleware stack without ours;
b. the same with ``infobip_otp.middleware.OtpRequiredMiddleware``;
c. the same with django-otp's ``OTPMiddleware``, the page also checking
   ``request.user.is_verified()`` (``pip install django-otp``).

The set-ups are interleaved: each round times a block of requests of each,
in a rotating order, so machine noise falls on all three alike; the ratios
are the medians of the per-round ratios. SQLite in memory and DB sessions:
the cheapest baseline, so any overhead shows at its largest.
"""

from __future__ import annotations

import argparse
import gc
import io
import time
from typing import Any

from benchmarks._common import (
    count_queries,
    framework_queries,
    machine,
    median,
    setup_django,
)

BASE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
OURS = "infobip_otp.middleware.OtpRequiredMiddleware"
DJANGO_OTP = "django_otp.middleware.OTPMiddleware"
VARIANTS = {
    "a": ("without our middleware", [*BASE], "/page/"),
    "b": ("with OtpRequiredMiddleware", [*BASE, OURS], "/page/"),
    "c": ("django-otp OTPMiddleware + is_verified()", [*BASE, DJANGO_OTP], "/page-django-otp/"),
}


def verified_session_cookie() -> str:
    """A session signed in and verified for both apps; returns the Cookie header."""
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.auth.models import User
    from django.contrib.sessions.backends.db import SessionStore
    from django_otp.plugins.otp_static.models import StaticDevice

    from infobip_otp import state
    from infobip_otp.models import PhoneDevice

    user = User.objects.create_user("bench", password="irrelevant")
    PhoneDevice.objects.create(user=user, phone_number="+447911123456")
    device = StaticDevice.objects.create(user=user, name="bench", confirmed=True)
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session[state.SESSION_KEY] = {
        "state": state.VERIFIED,
        "user_id": str(user.pk),
        "since": time.time(),
    }
    session["otp_device_id"] = device.persistent_id
    session.save()
    return f"{settings.SESSION_COOKIE_NAME}={session.session_key}"


class Variant:
    """One middleware set-up: its own WSGI handler and request environment."""

    def __init__(self, key: str, cookie: str) -> None:
        from django.core.handlers.wsgi import WSGIHandler
        from django.test import override_settings

        self.key = key
        self.label, middleware, self.path = VARIANTS[key]
        with override_settings(MIDDLEWARE=middleware):
            # The handler builds its middleware chain from the settings, once.
            self.handler = WSGIHandler()
        self.environ = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": self.path,
            "SCRIPT_NAME": "",
            "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_HOST": "127.0.0.1",
            "HTTP_ACCEPT": "text/html",
            "HTTP_COOKIE": cookie,
            "wsgi.url_scheme": "http",
            "wsgi.errors": io.StringIO(),
            "wsgi.multithread": False,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "wsgi.version": (1, 0),
        }
        self.seconds: list[float] = []

    def request(self) -> str:
        status = ""

        def start_response(status_line: str, headers: Any, exc_info: Any = None) -> None:
            nonlocal status
            status = status_line

        environ = dict(self.environ)
        environ["wsgi.input"] = io.BytesIO()
        response = self.handler(environ, start_response)
        for _chunk in response:
            pass
        response.close()
        return status

    def run(self, count: int) -> float:
        """Time ``count`` requests; return seconds per request."""
        request = self.request
        started = time.perf_counter()
        for _ in range(count):
            request()
        return (time.perf_counter() - started) / count

    def queries(self) -> tuple[int, int]:
        """Statements of one request: all, and those on the session and user tables."""
        with count_queries() as statements:
            assert self.request().startswith("200"), self.key
        return len(statements), framework_queries(statements)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--requests", type=int, default=200, help="per variant and round")
    options = parser.parse_args()

    setup_django(DATABASE_URL="sqlite:///:memory:", CACHE_URL="locmemcache://")
    from django.conf import settings
    from django.core.management import call_command

    if not settings.HAS_DJANGO_OTP:
        raise SystemExit("pip install django-otp (the bench extra) to compare with django-otp")
    call_command("migrate", verbosity=0)
    cookie = verified_session_cookie()
    variants = [Variant(key, cookie) for key in VARIANTS]
    queries = {variant.key: variant.queries() for variant in variants}
    for variant in variants:  # warm-up: imports, URL resolver caches
        variant.run(options.requests)

    began = time.perf_counter()
    for round_no in range(options.rounds):
        shift = round_no % len(variants)
        gc.collect()
        for variant in variants[shift:] + variants[:shift]:
            variant.seconds.append(variant.run(options.requests))
    elapsed = time.perf_counter() - began

    a, b, c = variants
    total = options.rounds * options.requests
    print(machine())
    print(f"{total} requests per variant, {options.rounds} interleaved rounds, {elapsed:.1f} s")
    for variant in variants:
        q_all, q_framework = queries[variant.key]
        print(
            f"  {variant.key}) {variant.label:42} median {median(variant.seconds) * 1e6:7.1f} us"
            f"/request, {q_all} queries ({q_framework} session+user)"
        )
    ratio_b = median(x / y for x, y in zip(b.seconds, a.seconds, strict=True))
    ratio_c = median(x / y for x, y in zip(c.seconds, a.seconds, strict=True))
    ratio_bc = median(x / y for x, y in zip(b.seconds, c.seconds, strict=True))
    print(f"added queries per request: b-a={queries['b'][0] - queries['a'][0]}, "
          f"c-a={queries['c'][0] - queries['a'][0]}")  # fmt: skip
    print(f"ratio b/a = {ratio_b:.3f} (target <= 1.03)")
    print(f"ratio c/a = {ratio_c:.3f}")
    print(f"ratio b/c = {ratio_bc:.3f} (target < 1)")


if __name__ == "__main__":
    main()
