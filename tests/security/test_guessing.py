"""Guessing, rate limits and races (SECURITY T08-T15), attacked over HTTP.

The race tests (T10, T11) send real parallel requests to pytest-django's live
server: each request runs in its own server thread with its own database
connection on PostgreSQL, so the conditional UPDATEs of ``services.py`` are
what stands between 50 guesses and the provider. On in-memory SQLite the
server threads share one connection, so there the live server serves one
request at a time (``one_request_at_a_time_on_shared_sqlite``); the outcome
must be the same.
"""

import secrets
import threading
from urllib.parse import urljoin

import pytest
import requests
import time_machine
from django.core import mail
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import connection
from django.test import Client

from infobip_otp.backends import locmem
from infobip_otp.exceptions import ChallengeLocked, NoChallenge
from infobip_otp.models import OtpChallenge, PhoneDevice, Status
from infobip_otp.ratelimits import DEFAULT_RATES
from tests.security.conftest import API, PASSWORD, PHONE, VERIFY_PAGE, api_post, wrong
from tests.security.test_code_lifetime import (  # noqa: F401
    infobip_simulator,
    infobip_simulator_server,
    lax_infobip,
)

LOGIN_PAGE = "/accounts/login/"
ALICE = {"username": "alice", "password": PASSWORD}
NO_RATE_LIMITS = dict.fromkeys(DEFAULT_RATES)


def only_rates(settings, **rates):
    """Switch every rate limit off but ``rates``, so one defence is tested at a time."""
    settings.INFOBIP_OTP_RATES = {**NO_RATE_LIMITS, **rates}


def codes(response):
    return [r.json()["code"] for r in response]


# --- T08 ----------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.security("T08")
def test_right_code_after_the_allowed_wrong_ones_is_refused_and_a_new_login_is_needed(
    lax_infobip,  # noqa: F811
    phone_user,
    settings,
):
    settings.INFOBIP_OTP_MAX_ATTEMPTS = 5
    browser = Client()
    browser.post(LOGIN_PAGE, ALICE)
    browser.get(VERIFY_PAGE)
    pin = lax_infobip.last_pin(PHONE)
    for _ in range(5):
        browser.post(VERIFY_PAGE, {"pin": wrong(pin)})

    right = browser.post(VERIFY_PAGE, {"pin": pin})

    assert str(ChallengeLocked.default_detail) in right.content.decode()
    assert browser.get(API["status"]).json()["state"] == "pending"
    # Infobip allows ten tries: the sixth never reached it.
    assert lax_infobip.request_count("verify") == 5
    assert OtpChallenge.objects.get().status == Status.LOCKED
    resend = browser.post(VERIFY_PAGE, {"action": "resend"}, follow=True)
    assert str(NoChallenge.default_detail) in resend.content.decode()
    assert lax_infobip.request_count("send") == 1

    browser.post("/accounts/logout/")
    browser.post(LOGIN_PAGE, ALICE)
    browser.get(VERIFY_PAGE)
    assert browser.post(VERIFY_PAGE, {"pin": lax_infobip.last_pin(PHONE)}).status_code == 302
    assert browser.get(API["status"]).json()["state"] == "verified"


# --- T09 ----------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.security("T09")
def test_guesses_spread_over_sessions_and_ips_lock_the_sms_factor(phone_user, settings):
    """Ten wrong codes in four sessions from four addresses lock Alice's SMS factor.

    No challenge reaches its own limit (5) and no address its own, so only the
    account-level count can stop this attacker. The per-user verify rate is
    off here: it only slows the attacker down per minute, the lockout ends it.
    """
    settings.INFOBIP_OTP_LOCKOUT_THRESHOLD = 10
    settings.INFOBIP_OTP_NOTIFY_AFTER_FAILURES = 3
    settings.INFOBIP_OTP_RATES = {"verify_user": None}
    sessions, answers = [], []
    for guesses, address in zip(
        (3, 3, 3, 1), ("198.51.100.1", "198.51.100.2", "198.51.100.3", "198.51.100.4"), strict=True
    ):
        attacker = Client(REMOTE_ADDR=address)
        api_post(attacker, "login", ALICE)
        api_post(attacker, "send")
        attacker.pin = locmem.last_pin()
        sessions.append(attacker)
        answers += [
            api_post(attacker, "verify", {"pin": wrong(attacker.pin)}) for _ in range(guesses)
        ]

    assert codes(answers) == ["invalid_pin"] * 9 + ["factor_locked"]
    assert {r.status_code for r in answers} == {400}
    device = PhoneDevice.objects.get(user=phone_user)
    assert device.is_locked
    assert device.failure_count == 10
    # Even the right code of a still-open session no longer works.
    for attacker in sessions:
        assert api_post(attacker, "verify", {"pin": attacker.pin}).json()["code"] == "factor_locked"
    sent_before = len(locmem.outbox)
    fresh = Client(REMOTE_ADDR="198.51.100.5")
    api_post(fresh, "login", ALICE)
    assert api_post(fresh, "send").json()["code"] == "factor_locked"
    assert len(locmem.outbox) == sent_before

    assert [message.subject for message in mail.outbox] == [
        "Wrong sign-in codes were entered for your account",
        "Your sign-in codes are locked",
    ]
    lockout_mail = mail.outbox[1].body
    assert mail.outbox[1].to == ["alice@example.com"]
    assert "198.51.100.4" in lockout_mail
    assert "someone knows your password: change it now" in lockout_mail
    assert PHONE not in lockout_mail


@pytest.mark.django_db
@pytest.mark.security("T09")
def test_locked_sms_factor_works_again_only_after_an_administrator_clears_it(
    phone_user, django_user_model, settings
):
    settings.INFOBIP_OTP_LOCKOUT_THRESHOLD = 2
    attacker = Client()
    api_post(attacker, "login", ALICE)
    api_post(attacker, "send")
    for _ in range(2):
        api_post(attacker, "verify", {"pin": wrong(locmem.last_pin())})
    browser = Client()
    browser.post(LOGIN_PAGE, ALICE)
    locked_out = browser.get(VERIFY_PAGE)
    assert locked_out["Location"] == LOGIN_PAGE
    assert browser.get(API["status"]).json()["state"] == "anonymous"

    staff = django_user_model.objects.create_superuser("root", "root@example.com", "pw-root-123")
    admin = Client()
    admin.force_login(staff)
    device = PhoneDevice.objects.get(user=phone_user)
    admin.post(
        "/admin/infobip_otp/phonedevice/",
        {"action": "clear_lockout", "_selected_action": [device.pk]},
    )
    device.refresh_from_db()
    assert not device.is_locked

    browser.post(LOGIN_PAGE, ALICE)
    browser.get(VERIFY_PAGE)
    assert browser.post(VERIFY_PAGE, {"pin": locmem.last_pin()}).status_code == 302
    assert browser.get(API["status"]).json()["state"] == "verified"


# --- T10 and T11: real parallel requests -------------------------------------------


class LiveBrowser:
    """A ``requests`` session against the live server that handles Django's CSRF."""

    def __init__(self, base_url, cookies=None):
        self.base_url = base_url
        self.http = requests.Session()
        self.clones = []
        if cookies is not None:
            self.http.cookies.update(cookies)

    def close(self):
        """Close this client's connections and its copies', so no server thread lingers."""
        for client in [*self.clones, self]:
            client.http.close()

    def post(self, name, body=None):
        return self.http.post(
            urljoin(self.base_url, API[name]),
            json=body or {},
            headers={"X-CSRFToken": self.http.cookies.get("csrftoken", "")},
            timeout=30,
        )

    def state(self):
        return self.http.get(urljoin(self.base_url, API["status"]), timeout=30).json()["state"]

    @classmethod
    def pending(cls, base_url):
        browser = cls(base_url)
        browser.state()  # sets the CSRF cookie
        assert browser.post("login", ALICE).json()["state"] == "pending"
        assert browser.post("send").status_code == 202
        return browser

    def copies(self, count):
        """``count`` clients holding this one's cookies, as copies of a stolen cookie jar.

        Each has already opened its (kept-alive) connection, so that the parallel
        requests race inside the app rather than in the server's accept queue.
        """
        clients = [LiveBrowser(self.base_url, self.http.cookies.copy()) for _ in range(count)]
        self.clones += clients
        for client in clients:
            assert client.state() == "pending"
        return clients


def all_at_once(calls):
    """Run every callable in its own thread, released together; their results in order."""
    start = threading.Barrier(len(calls))
    results = [None] * len(calls)

    def run(index, call):
        start.wait()
        try:
            results[index] = call()
        except Exception as exc:  # reported below, in the test's thread
            results[index] = exc

    threads = [threading.Thread(target=run, args=item) for item in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    failures = [result for result in results if isinstance(result, Exception)]
    assert not failures, failures
    return results


def distinct_wrong_pins(pin, count):
    pins = set()
    while len(pins) < count:
        candidate = f"{secrets.randbelow(10**6):06d}"
        if candidate != pin:
            pins.add(candidate)
    return sorted(pins)


@pytest.fixture
def one_request_at_a_time_on_shared_sqlite(live_server, monkeypatch):
    """On in-memory SQLite, let the live server run one request at a time.

    Its threads then share one connection object, and Python's sqlite3 reads
    an UPDATE's row count only after letting other threads run, so a request
    could see another's count: a flaw of that test set-up, not of the app
    (each real server thread has its own connection). PostgreSQL runs fully
    in parallel.
    """
    if not (connection.vendor == "sqlite" and connection.is_in_memory_db()):
        return
    server = live_server.thread.httpd
    application = server.get_app()
    lock = threading.Lock()

    def serialised(environ, start_response):
        with lock:
            return application(environ, start_response)

    monkeypatch.setattr(server, "application", serialised)


@pytest.fixture
def live_pending(
    live_server,
    one_request_at_a_time_on_shared_sqlite,
    lax_infobip,  # noqa: F811
    phone_user,
    settings,
):
    """A live-server API session of Alice's with its first code sent by the simulator."""
    settings.INFOBIP_OTP_MAX_ATTEMPTS = 5
    browser = LiveBrowser.pending(live_server.url)
    browser.pin = lax_infobip.last_pin(PHONE)
    browser.infobip = lax_infobip
    yield browser
    browser.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.security("T10")
def test_fifty_parallel_guesses_get_exactly_the_attempts_left(live_pending, settings):
    """50 parallel wrong codes against a challenge with 3 attempts left.

    The requirement's wording expects 429 for the losers; in this app a
    challenge whose attempts are used up answers 400 ``locked`` (the API
    contract: every verification failure has one status and shape), and 429
    belongs to the request rate limits, tested below. Rate limits are off
    here, so only the conditional UPDATE stands between the guesses and the
    provider: exactly 3 of them are counted and reach Infobip, whose own
    limit (10 attempts) is never reached.
    """
    only_rates(settings)
    for _ in range(2):
        assert live_pending.post("verify", {"pin": wrong(live_pending.pin)}).status_code == 400
    provider_calls_before = live_pending.infobip.request_count("verify")
    guesses = distinct_wrong_pins(live_pending.pin, 50)

    answers = all_at_once(
        [
            lambda client=client, pin=pin: client.post("verify", {"pin": pin})
            for client, pin in zip(live_pending.copies(50), guesses, strict=True)
        ]
    )

    assert {r.status_code for r in answers} == {400}
    assert set(codes(answers)) <= {"invalid_pin", "locked"}
    assert codes(answers).count("invalid_pin") <= 3
    assert live_pending.infobip.request_count("verify") - provider_calls_before == 3
    challenge = OtpChallenge.objects.get()
    assert (challenge.attempts, challenge.max_attempts) == (5, 5)
    assert challenge.status == Status.LOCKED
    assert PhoneDevice.objects.get().failure_count == 5
    assert live_pending.post("verify", {"pin": live_pending.pin}).json()["code"] == "locked"
    assert live_pending.state() == "pending"


@pytest.mark.django_db(transaction=True)
@pytest.mark.security("T10")
def test_fifty_parallel_guesses_beyond_the_session_rate_get_429(live_pending, settings):
    """With the per-session verify rate on, the guesses past it get 429 + Retry-After.

    Two guesses were spent; the rate allows 10 per hour, so 8 of the 50 reach
    the challenge and 42 are turned away before it. Of those 8, the
    challenge's 3 attempts left still bound what reaches Infobip.
    """
    only_rates(settings, verify_session="10/h")
    for _ in range(2):
        live_pending.post("verify", {"pin": wrong(live_pending.pin)})
    provider_calls_before = live_pending.infobip.request_count("verify")
    guesses = distinct_wrong_pins(live_pending.pin, 50)

    answers = all_at_once(
        [
            lambda client=client, pin=pin: client.post("verify", {"pin": pin})
            for client, pin in zip(live_pending.copies(50), guesses, strict=True)
        ]
    )

    limited = [r for r in answers if r.status_code == 429]
    assert len(limited) == 42
    assert set(codes(limited)) == {"rate_limited"}
    assert all(int(r.headers["Retry-After"]) >= 1 for r in limited)
    reached = [r for r in answers if r.status_code != 429]
    assert len(reached) == 8
    assert set(codes(reached)) <= {"invalid_pin", "locked"}
    assert live_pending.infobip.request_count("verify") - provider_calls_before == 3
    assert OtpChallenge.objects.get().attempts == 5


@pytest.mark.django_db(transaction=True)
@pytest.mark.security("T11")
@pytest.mark.parametrize("copies", [2, 5])
def test_parallel_right_codes_elevate_exactly_one_session(live_pending, settings, copies):
    """The right code sent at once from several copies of one pending session.

    Infobip (``allowMultiplePinVerifications`` on, as by default) may say yes
    to each; only one request wins the consume-once UPDATE, gets the new
    session key and is verified. The others are refused and keep the old key,
    which the winner's key change has made worthless.
    """
    only_rates(settings)
    old_key = live_pending.http.cookies["sessionid"]
    racers = live_pending.copies(copies)

    answers = all_at_once(
        [lambda racer=racer: racer.post("verify", {"pin": live_pending.pin}) for racer in racers]
    )

    winners = [racer for racer, r in zip(racers, answers, strict=True) if r.status_code == 200]
    assert len(winners) == 1
    assert [r.json() for r in answers if r.status_code == 200] == [{"state": "verified"}]
    # A loser that started after the winner changed the key finds no session (401).
    assert {r.status_code for r in answers if r.status_code != 200} <= {400, 401}
    assert winners[0].http.cookies["sessionid"] != old_key
    assert winners[0].state() == "verified"
    for racer in racers:
        if racer is not winners[0]:
            assert racer.http.cookies.get("sessionid") in (old_key, None)
            assert racer.state() == "anonymous"
    stolen = LiveBrowser(live_pending.base_url, {"sessionid": old_key})
    assert stolen.state() == "anonymous"
    stolen.close()
    challenge = OtpChallenge.objects.get()
    assert challenge.status == Status.VERIFIED
    assert challenge.verified_at is not None
    assert 0 < live_pending.infobip.request_count("verify") <= copies


# --- T12 ----------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.security("T12")
def test_rotating_x_forwarded_for_does_not_escape_the_ip_limit(user, settings):
    only_rates(settings, login_ip="5/h")
    attacker = Client(REMOTE_ADDR="203.0.113.9")
    answers = [
        api_post(
            attacker,
            "login",
            {"username": f"victim{i}", "password": "guess"},
            HTTP_X_FORWARDED_FOR=f"198.51.100.{i}",
            HTTP_X_REAL_IP=f"198.51.100.{i}",
        )
        for i in range(7)
    ]

    assert codes(answers) == ["invalid_credentials"] * 5 + ["rate_limited"] * 2
    assert all(int(r["Retry-After"]) >= 1 for r in answers[5:])
    # The real address is what is held back, whatever header it sends next.
    blocked = api_post(attacker, "login", ALICE, HTTP_X_FORWARDED_FOR="10.0.0.1")
    assert blocked.status_code == 429
    neighbour = api_post(Client(REMOTE_ADDR="203.0.113.10"), "login", ALICE)
    assert neighbour.json()["state"] == "not_required"


@pytest.mark.django_db
@pytest.mark.security("T12")
def test_x_forwarded_for_is_read_only_behind_the_configured_proxies(user, settings):
    """The control: with one trusted proxy the header does key the limit."""
    only_rates(settings, login_ip="1/h")
    settings.INFOBIP_OTP_TRUSTED_PROXY_COUNT = 1
    proxy = Client(REMOTE_ADDR="10.0.0.2")
    answers = [
        api_post(
            proxy,
            "login",
            {"username": "alice", "password": "guess"},
            HTTP_X_FORWARDED_FOR=f"198.51.100.66, 203.0.113.{i}",
        )
        for i in (1, 2, 2)
    ]
    assert codes(answers) == ["invalid_credentials", "invalid_credentials", "rate_limited"]


# --- T13: the system-check part ------------------------------------------------------

# Only named, never connected to: the checks judge a cache by its backend.
SHARED_CACHE_URL = "redis://127.0.0.1:6379/15"
UNSHARED_CACHES = [
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.filebased.FileBasedCache",
    "django.core.cache.backends.db.DatabaseCache",
    "django.core.cache.backends.dummy.DummyCache",
]


@pytest.mark.security("T13")
@pytest.mark.parametrize("backend", UNSHARED_CACHES)
@pytest.mark.parametrize("setting", ["RATELIMIT_USE_CACHE", "INFOBIP_OTP_CACHE"])
def test_production_settings_with_an_unshared_rate_limit_cache_refuse_to_start(
    settings, tmp_path, backend, setting
):
    settings.DEBUG = False
    settings.SILENCED_SYSTEM_CHECKS = ["django_ratelimit.E003", "django_ratelimit.W001"]
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": SHARED_CACHE_URL,
        },
        "counters": {"BACKEND": backend, "LOCATION": str(tmp_path)},
    }
    setattr(settings, setting, "counters")

    with pytest.raises(SystemCheckError, match=r"infobip_otp\.E007") as refused:
        call_command("check")

    assert "'counters'" in str(refused.value)


@pytest.mark.security("T13")
def test_production_settings_with_a_shared_rate_limit_cache_start(settings):
    settings.DEBUG = False
    settings.SILENCED_SYSTEM_CHECKS = []
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": SHARED_CACHE_URL,
        }
    }
    call_command("check")


# --- T14 ----------------------------------------------------------------------


@pytest.fixture
def bob(other_user):
    PhoneDevice.objects.create(user=other_user, phone_number="+447400654321")
    return other_user


@pytest.mark.django_db
@pytest.mark.security("T14")
def test_another_users_success_from_the_same_address_resets_nothing(phone_user, bob, settings):
    """Bob's successful logins from Alice's attacker's address leave every count alone.

    allauth 65.8.1 let a success reset the failure count; here neither
    Alice's account count nor the shared address's buckets move.
    """
    only_rates(settings, verify_ip="5/h", login_ip="4/h")
    address = "203.0.113.20"
    attacker = Client(REMOTE_ADDR=address)
    api_post(attacker, "login", ALICE)
    api_post(attacker, "send")
    pin = locmem.last_pin()
    for _ in range(3):
        api_post(attacker, "verify", {"pin": wrong(pin)})
    bob_client = Client(REMOTE_ADDR=address)
    api_post(bob_client, "login", {"username": "bob", "password": "pw-bob-123"})
    api_post(bob_client, "send")
    assert api_post(bob_client, "verify", {"pin": locmem.last_pin()}).json() == {
        "state": "verified"
    }

    assert PhoneDevice.objects.get(user=phone_user).failure_count == 3
    assert PhoneDevice.objects.get(user=bob).failure_count == 0
    # 3 + 1 of the address's 5 verifications are spent: one more, then 429.
    more = [api_post(attacker, "verify", {"pin": wrong(pin)}) for _ in range(2)]
    assert codes(more) == ["invalid_pin", "rate_limited"]
    # 2 of the address's 4 password attempts are spent.
    logins = [api_post(Client(REMOTE_ADDR=address), "login", ALICE) for _ in range(3)]
    assert [r.status_code for r in logins] == [200, 200, 429]


# --- T15 ----------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.security("T15")
def test_verifying_again_inside_the_rate_window_costs_no_attempt_and_no_provider_call(
    lax_infobip,  # noqa: F811
    phone_user,
    settings,
):
    only_rates(settings, verify_session="2/m")
    client = Client()
    api_post(client, "login", ALICE)
    api_post(client, "send")
    pin = lax_infobip.last_pin(PHONE)
    for _ in range(2):
        api_post(client, "verify", {"pin": wrong(pin)})

    hurried = api_post(client, "verify", {"pin": pin})

    assert hurried.status_code == 429
    assert hurried.json()["code"] == "rate_limited"
    assert 0 < int(hurried["Retry-After"]) <= 60
    assert lax_infobip.request_count("verify") == 2
    challenge = OtpChallenge.objects.get()
    assert (challenge.attempts, challenge.status) == (2, Status.PENDING)
    assert client.get(API["status"]).json()["challenge"]["attempts_left"] == 3
    with time_machine.travel(int(hurried["Retry-After"]) + 1):
        assert api_post(client, "verify", {"pin": pin}).json() == {"state": "verified"}
