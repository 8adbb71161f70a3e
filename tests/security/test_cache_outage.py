"""T13 at runtime: the rate-limit cache goes away; nothing may become unlimited.

The counters live in the cache named by ``RATELIMIT_USE_CACHE``. These tests
point it at a port where nothing listens (the machine's Redis is left alone),
with Django's Redis backend and with django-redis told to swallow errors,
and check that sends, verifications and the password step are refused with
503 ``temporarily_unavailable`` (never a 500, never served without limits),
that no SMS goes out and no attempt is spent, and that everything works
again once the cache is back.
"""

import socket

import pytest
from django.core.cache import caches
from django.test import Client

from infobip_otp.backends import locmem
from infobip_otp.models import OtpChallenge, Status
from tests.security.conftest import API, PASSWORD, VERIFY_PAGE, api_post, wrong

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _forget_counters():
    """Empty the real limit cache after the ``settings`` of a test are restored.

    Changing ``CACHES`` makes Django build new cache objects, which the shared
    clean-up then sees as never used and skips; the local-memory cache's data
    outlives them, and this module's counters would reach later tests.
    """
    yield
    caches["default"].clear()


def closed_port():
    """A local port nobody listens on (bound once, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def dead_cache(kind):
    location = f"redis://127.0.0.1:{closed_port()}/0"
    if kind == "django-redis":
        return {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": location,
            "OPTIONS": {
                # A common production choice: cache errors become misses.
                "IGNORE_EXCEPTIONS": True,
                "SOCKET_CONNECT_TIMEOUT": 0.2,
                "SOCKET_TIMEOUT": 0.2,
            },
        }
    return {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": location,
        "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
    }


def cut_the_cache(settings, kind, *, breaker_too=False):
    settings.CACHES = {**settings.CACHES, "dead": dead_cache(kind)}
    settings.RATELIMIT_USE_CACHE = "dead"
    if breaker_too:
        settings.INFOBIP_OTP_CACHE = "dead"


def assert_unavailable(answer):
    assert answer.status_code == 503, answer.content
    assert answer.json()["code"] == "temporarily_unavailable"
    assert int(answer["Retry-After"]) >= 1


CACHE_KINDS = ["django-redis-backend", "django-redis"]


@pytest.mark.security("T13")
@pytest.mark.parametrize("kind", CACHE_KINDS)
@pytest.mark.parametrize(
    "breaker_too", [False, True], ids=["limits-cache", "limits-and-breaker-cache"]
)
def test_cache_outage_refuses_sends_and_verification(pending_client, settings, kind, breaker_too):
    challenge = OtpChallenge.objects.get()
    settings.INFOBIP_OTP_RESEND_COOLDOWN = 0  # only the limits stand between us and a resend
    cut_the_cache(settings, kind, breaker_too=breaker_too)

    for _ in range(10):  # hammering changes nothing
        assert_unavailable(api_post(pending_client, "send"))
        assert_unavailable(api_post(pending_client, "verify", {"pin": wrong(pending_client.pin)}))
    # Not even the right code gets through without its limits being counted.
    assert_unavailable(api_post(pending_client, "verify", {"pin": pending_client.pin}))

    assert len(locmem.outbox) == 1  # only the code sent before the outage
    challenge.refresh_from_db()
    assert (challenge.status, challenge.attempts, challenge.sends) == (Status.PENDING, 0, 1)
    assert pending_client.get(API["status"]).json()["state"] == "pending"

    # The cache is back: the same code works, nothing was used up meanwhile.
    settings.RATELIMIT_USE_CACHE = "default"
    settings.INFOBIP_OTP_CACHE = "default"
    assert api_post(pending_client, "verify", {"pin": pending_client.pin}).json() == {
        "state": "verified"
    }


@pytest.mark.security("T13")
@pytest.mark.parametrize("kind", CACHE_KINDS)
def test_cache_outage_refuses_the_password_step_and_new_enrolments(user, settings, kind):
    signed_in = Client()
    assert (
        api_post(signed_in, "login", {"username": "alice", "password": PASSWORD}).status_code == 200
    )
    cut_the_cache(settings, kind)

    assert_unavailable(api_post(Client(), "login", {"username": "alice", "password": PASSWORD}))
    for number in ("+447400123456", "+447400123457", "+447400123458"):
        assert_unavailable(api_post(signed_in, "phone", {"phone_number": number}))
    assert locmem.outbox == []
    assert OtpChallenge.objects.count() == 0


@pytest.mark.security("T13")
@pytest.mark.parametrize("kind", CACHE_KINDS)
def test_cache_outage_on_the_pages_is_a_message_not_a_server_error(phone_user, settings, kind):
    browser = Client(raise_request_exception=False)
    browser.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    cut_the_cache(settings, kind)

    page = browser.get(VERIFY_PAGE)  # would send the first code
    assert page.status_code == 200
    assert "busy" in page.content.decode()
    resend = browser.post(VERIFY_PAGE, {"action": "resend"})
    assert resend.status_code == 302
    guess = browser.post(VERIFY_PAGE, {"pin": "123456"})
    assert guess.status_code == 200
    assert guess.context["form"].errors
    assert locmem.outbox == []
    assert browser.get("/").status_code == 302  # still pending


@pytest.mark.security("T13")
def test_a_fail_open_ratelimit_setting_cannot_make_sends_unlimited(pending_client, settings):
    """django-ratelimit's ``RATELIMIT_FAIL_OPEN`` must not switch this app's limits off.

    With django-redis swallowing errors, a failed count reaches django-ratelimit
    as "no value"; with ``RATELIMIT_FAIL_OPEN = True`` (set for the project's
    other views, say) it then answers "no limit" and every send would be free.
    """
    settings.RATELIMIT_FAIL_OPEN = True
    settings.INFOBIP_OTP_RESEND_COOLDOWN = 0
    settings.INFOBIP_OTP_MAX_SENDS = 100
    cut_the_cache(settings, "django-redis")

    answers = [api_post(pending_client, "send") for _ in range(5)]

    assert [answer.status_code for answer in answers] == [503] * 5
    assert len(locmem.outbox) == 1
