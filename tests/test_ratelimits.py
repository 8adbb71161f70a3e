"""Rate limits and SMS-pumping guards: 429 + Retry-After, all before any provider call."""

import json

import pytest
from django.test import Client, RequestFactory
from django.urls import reverse

from infobip_otp import ratelimits, signals
from infobip_otp.backends import locmem
from infobip_otp.models import OtpChallenge, PhoneDevice

pytestmark = pytest.mark.django_db

PASSWORD = "pw-alice-123"
SEND = reverse("infobip_otp:api-send")
PHONE_URL = reverse("infobip_otp:api-phone")
VERIFY = reverse("infobip_otp:api-verify")
LOGIN = reverse("infobip_otp:api-login")
NO_LIMITS = dict.fromkeys(ratelimits.DEFAULT_RATES)


def post(client, url, body=None, **extra):
    return client.post(url, json.dumps(body or {}), content_type="application/json", **extra)


@pytest.fixture
def verified(user, settings):
    """A signed-in, verified API client that may send codes to new numbers."""
    settings.INFOBIP_OTP_RESEND_COOLDOWN = 0
    client = Client()
    post(client, LOGIN, {"username": "alice", "password": PASSWORD})
    return client


def only(settings, **rates):
    settings.INFOBIP_OTP_RATES = {**NO_LIMITS, **rates}


def numbers(count, start=100000):
    return [f"+4474001{start + i:05d}"[:13] for i in range(count)]


def assert_limited(response, code="rate_limited"):
    assert response.status_code == 429, response.content
    assert response.json()["code"] == code
    assert int(response["Retry-After"]) >= 1


def test_send_per_phone_number(verified, settings, other_user):
    only(settings, send_phone="2/h")
    for _ in range(2):
        assert post(verified, PHONE_URL, {"phone_number": "+447400123456"}).status_code == 202
    assert_limited(post(verified, PHONE_URL, {"phone_number": "+447400123456"}))
    assert len(locmem.outbox) == 2
    # Another account and another IP cannot send to that number either (T36).
    other = Client(REMOTE_ADDR="10.9.9.9")
    post(other, LOGIN, {"username": "bob", "password": "pw-bob-123"})
    assert_limited(post(other, PHONE_URL, {"phone_number": "+447400123456"}))
    assert len(locmem.outbox) == 2


def test_send_per_ip(verified, settings):
    only(settings, send_ip="3/h")
    for number in numbers(3):
        assert post(verified, PHONE_URL, {"phone_number": number}).status_code == 202
    assert_limited(post(verified, PHONE_URL, {"phone_number": numbers(4)[3]}))
    assert len(locmem.outbox) == 3


def test_send_per_user(settings, user):
    only(settings, send_user="2/h")
    settings.INFOBIP_OTP_RESEND_COOLDOWN = 0
    sent = 0
    for i in range(3):
        client = Client(REMOTE_ADDR=f"10.0.0.{i + 1}")
        post(client, LOGIN, {"username": "alice", "password": PASSWORD})
        response = post(client, PHONE_URL, {"phone_number": numbers(1, 200 + i)[0]})
        sent += response.status_code == 202
    assert sent == 2
    assert_limited(response)


def test_send_per_session(verified, settings):
    only(settings, send_session="2/h")
    for number in numbers(2):
        post(verified, PHONE_URL, {"phone_number": number})
    assert_limited(post(verified, PHONE_URL, {"phone_number": numbers(3)[2]}))


def test_verify_per_session_does_not_consume_attempts(verified, settings):
    only(settings, verify_session="2/m")
    post(verified, PHONE_URL, {"phone_number": "+447400123456"})
    for _ in range(2):
        assert post(verified, VERIFY, {"pin": "000000"}).status_code == 400
    assert_limited(post(verified, VERIFY, {"pin": locmem.last_pin()}))
    challenge = OtpChallenge.objects.get()
    assert challenge.attempts == 2 - (locmem.last_pin() == "000000")


def test_verify_per_ip_and_user(user, settings):
    only(settings, verify_ip="1/m", verify_user="5/m")
    client = Client()
    post(client, LOGIN, {"username": "alice", "password": PASSWORD})
    post(client, VERIFY, {"pin": "000000"})
    assert_limited(post(client, VERIFY, {"pin": "000000"}))


def test_login_per_username_and_ip(user, settings):
    only(settings, login_username="2/10m")
    client = Client()
    for _ in range(2):
        assert post(client, LOGIN, {"username": "alice", "password": "bad"}).status_code == 400
    assert_limited(post(client, LOGIN, {"username": "ALICE", "password": PASSWORD}))
    only(settings, login_ip="1/10m")
    other = Client(REMOTE_ADDR="10.1.1.1")
    post(other, LOGIN, {"username": "x", "password": "y"})
    assert_limited(post(other, LOGIN, {"username": "z", "password": "y"}))


def test_forged_x_forwarded_for_changes_nothing(verified, settings):
    only(settings, send_ip="2/h")
    for i, number in enumerate(numbers(3)):
        response = post(
            verified, PHONE_URL, {"phone_number": number}, HTTP_X_FORWARDED_FOR=f"203.0.113.{i}"
        )
    assert_limited(response)
    assert len(locmem.outbox) == 2


@pytest.mark.parametrize(
    ("remote", "forwarded", "hops", "expected"),
    [
        ("10.0.0.1", "203.0.113.7", 0, "10.0.0.1"),
        ("10.0.0.1", "198.51.100.1, 203.0.113.7", 1, "203.0.113.7"),
        ("10.0.0.1", "198.51.100.1, 203.0.113.7", 2, "198.51.100.1"),
        ("10.0.0.1", "203.0.113.7", 2, "10.0.0.1"),
        ("2001:db8::1234", "", 0, "2001:db8::"),
        ("10.0.0.1", "not-an-ip", 1, "invalid"),
    ],
)
def test_client_ip_trusts_only_configured_hops(settings, remote, forwarded, hops, expected):
    settings.INFOBIP_OTP_TRUSTED_PROXY_COUNT = hops
    request = RequestFactory().get("/", REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=forwarded)
    assert ratelimits.client_ip(request) == expected


def test_prefix_burst_is_limited_and_logged(verified, settings, caplog):
    only(settings, send_prefix="3/10m")
    caplog.set_level("WARNING", logger="infobip_otp")
    for number in numbers(3):
        assert post(verified, PHONE_URL, {"phone_number": number}).status_code == 202
    assert_limited(post(verified, PHONE_URL, {"phone_number": numbers(4)[3]}))
    assert [r.event for r in caplog.records if hasattr(r, "event")] == ["otp.prefix_burst"]
    # A number in another range is not held back by that burst.
    assert post(verified, PHONE_URL, {"phone_number": "+447911123456"}).status_code == 202


def test_send_budget_refuses_sends_but_not_verification(settings, user, caplog):
    only(settings)
    settings.INFOBIP_OTP_SEND_BUDGET = 2
    settings.INFOBIP_OTP_RESEND_COOLDOWN = 0
    PhoneDevice.objects.create(user=user, phone_number="+447400123456")
    alerts = []

    def receiver(**kwargs):
        alerts.append(kwargs["budget"])

    signals.otp_budget_exhausted.connect(receiver)
    try:
        client = Client()
        post(client, LOGIN, {"username": "alice", "password": PASSWORD})
        assert post(client, SEND).status_code == 202
        pin = locmem.last_pin()
        assert post(client, SEND).status_code == 202
        pin = locmem.last_pin()
        refused = post(client, SEND)
        assert refused.status_code == 503
        assert refused.json()["code"] == "send_budget_exhausted"
        assert int(refused["Retry-After"]) > 0
        assert len(locmem.outbox) == 2
        assert post(client, VERIFY, {"pin": pin}).json() == {"state": "verified"}
    finally:
        signals.otp_budget_exhausted.disconnect(receiver)
    assert alerts == [2]


def test_cache_outage_fails_closed(verified, settings):
    only(settings, send_ip="100/h")
    settings.CACHES = {
        **settings.CACHES,
        "dead": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        },
    }
    settings.RATELIMIT_USE_CACHE = "dead"
    response = post(verified, PHONE_URL, {"phone_number": "+447400123456"})
    assert response.status_code == 503
    assert response.json()["code"] == "temporarily_unavailable"
    assert response["Retry-After"] == "30"
    assert locmem.outbox == []
    assert OtpChallenge.objects.count() == 0


def test_counters_key_numbers_with_the_secret(verified, settings):
    from django_ratelimit.core import get_usage

    only(settings, send_phone="5/h")
    assert post(verified, PHONE_URL, {"phone_number": "+447400123456"}).status_code == 202
    request = RequestFactory().get("/")

    def count(value):
        usage = get_usage(
            request, group="infobip_otp.send_phone", key=lambda g, r: value, rate="5/h"
        )
        return usage["count"]

    assert count("+447400123456") == 0
    assert count(ratelimits._keyed("+447400123456")) == 1


def usage_count(group, value, rate):
    """What django-ratelimit's own ``get_usage`` reads for a counter (not counting)."""
    from django_ratelimit.core import get_usage

    request = RequestFactory().get("/")
    usage = get_usage(request, group=f"infobip_otp.{group}", key=lambda g, r: value, rate=rate)
    return usage["count"]


SEND_LIMITS = ("send_ip", "send_user", "send_session", "send_phone", "send_prefix")


def test_a_send_is_counted_in_every_limit_and_the_budget(verified, settings, user):
    only(settings, **dict.fromkeys(SEND_LIMITS, "100/h"))
    settings.INFOBIP_OTP_SEND_BUDGET = 100
    number = "+447400123456"

    assert post(verified, PHONE_URL, {"phone_number": number}).status_code == 202

    # Counted in django-ratelimit's own keys, whichever path counted them.
    assert usage_count("send_ip", "127.0.0.1", "100/h") == 1
    assert usage_count("send_user", str(user.pk), "100/h") == 1
    assert usage_count("send_phone", ratelimits._keyed(number), "100/h") == 1
    assert usage_count("send_prefix", ratelimits._keyed(number[:8]), "100/h") == 1
    assert usage_count("send_budget", "all", "100/h") == 1


def test_a_refused_send_spends_no_later_limit_nor_the_budget(verified, settings):
    """One client over its own limit cannot use up a number's sends or everyone's budget."""
    only(settings, send_ip="1/h", send_phone="5/h")
    settings.INFOBIP_OTP_SEND_BUDGET = 100
    number = "+447400123456"

    assert post(verified, PHONE_URL, {"phone_number": number}).status_code == 202
    for _ in range(3):
        assert_limited(post(verified, PHONE_URL, {"phone_number": number}))

    assert usage_count("send_ip", "127.0.0.1", "1/h") == 4
    assert usage_count("send_phone", ratelimits._keyed(number), "5/h") == 1
    assert usage_count("send_budget", "all", "100/h") == 1
    assert len(locmem.outbox) == 1


def test_a_redis_cache_counts_all_limits_in_one_round_trip(verified, settings, monkeypatch):
    """Six counters, one script on Redis; django-ratelimit's ``get_usage`` per limit elsewhere."""
    from django.core.cache import caches

    only(settings, **dict.fromkeys(SEND_LIMITS, "100/h"))
    settings.INFOBIP_OTP_SEND_BUDGET = 100
    round_trips = []
    count_in_redis, get_usage = ratelimits._count_in_redis, ratelimits.get_usage

    def script(client, cache, limits):
        round_trips.append(("script", len(limits)))
        return count_in_redis(client, cache, limits)

    def one_limit(*args, **kwargs):
        round_trips.append(("get_usage", 1))
        return get_usage(*args, **kwargs)

    monkeypatch.setattr(ratelimits, "_count_in_redis", script)
    monkeypatch.setattr(ratelimits, "get_usage", one_limit)

    assert post(verified, PHONE_URL, {"phone_number": "+447400123456"}).status_code == 202

    if ratelimits._redis_client(caches["default"]) is not None:
        assert round_trips == [("script", 6)]
    else:
        assert settings.CACHES["default"]["BACKEND"].endswith("LocMemCache")
        assert round_trips == [("get_usage", 1)] * 6


def test_django_redis_counts_through_the_raw_client(settings):
    """django-redis's default client qualifies; its sharded client does not (keys spread)."""
    from django.core.cache import caches

    settings.CACHES = {
        **settings.CACHES,
        "plain": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"},
        "sharded": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": ["redis://127.0.0.1:1/0", "redis://127.0.0.1:2/0"],
            "OPTIONS": {"CLIENT_CLASS": "django_redis.client.ShardClient"},
        },
        "memory": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    }
    import redis

    assert isinstance(ratelimits._redis_client(caches["plain"]), redis.Redis)
    assert ratelimits._redis_client(caches["sharded"]) is None
    assert ratelimits._redis_client(caches["memory"]) is None
