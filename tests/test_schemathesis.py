"""schemathesis against the committed schema (docs/openapi.yaml), in-process.

Every operation is fuzzed with data that fits the schema (positive) and data
that does not (negative), from four clients: anonymous, a session that passed
the password step and was sent a code (pending), the same after the code
(verified), and a token whose user must still verify a code. Every answer must
be documented (status, content type, body, headers) and none may be a 5xx.

The examples of one run share the database and the client, so state drifts
as a real client's would: codes sent, attempts used, limits reached. The
number of examples and the answers seen are printed at the end of the module.
"""

from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import Client
from hypothesis import HealthCheck, given, settings
from rest_framework.authtoken.models import Token

from infobip_otp.backends import locmem
from infobip_otp.models import PhoneDevice

schemathesis = pytest.importorskip("schemathesis")

from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = pytest.mark.django_db

SCHEMA = schemathesis.openapi.from_path(
    Path(__file__).resolve().parent.parent / "docs" / "openapi.yaml"
)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
MAX_EXAMPLES = 50
PASSWORD = "pw-alice-123"
PHONE = "+447400123456"
SEND = "/otp/api/send/"
VERIFY = "/otp/api/verify/"
STATUS = "/otp/api/status/"

# Negative data needs something to break: ``status/`` takes no input at all.
RUNS = [
    ("GET", STATUS, "positive"),
    *(
        ("POST", path, mode)
        for path in ("/otp/api/login/", SEND, "/otp/api/phone/", VERIFY)
        for mode in ("positive", "negative")
    ),
]

#: Per (client, operation, mode): examples tried, failures, answers seen.
TRIED: Counter = Counter()
FAILED: Counter = Counter()
ANSWERS: dict[tuple, Counter] = {}


@pytest.fixture(scope="module", autouse=True)
def _report(request):
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or not TRIED:
        return
    with request.config.pluginmanager.get_plugin("capturemanager").global_and_fixture_disabled():
        reporter.write_line(
            f"\nschemathesis: {sum(TRIED.values())} examples in {len(TRIED)} runs, "
            f"{sum(FAILED.values())} failing"
        )
        for key in sorted(TRIED):
            answers = ", ".join(f"{a} x{n}" for a, n in ANSWERS[key].most_common())
            reporter.write_line(
                f"  {' '.join(key):44} {TRIED[key]:3} tried, {FAILED[key]} failed: {answers}"
            )


@pytest.fixture
def app(settings):
    """The demo site's WSGI application."""
    settings.ROOT_URLCONF = "example_project.urls"
    return WSGIHandler()


@contextmanager
def keep_test_connection():
    """As Django's test client does: a request must not close the test's connection."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def phone_user(user):
    PhoneDevice.objects.create(user=user, phone_number=PHONE)
    return user


def post(client, path, body=None, **extra):
    return client.post(path, body or {}, content_type="application/json", **extra)


def session_of(client):
    """Headers and cookies of ``client``'s session, CSRF token included."""
    token = client.get(STATUS).cookies["csrftoken"].value
    cookies = {"csrftoken": token}
    if "sessionid" in client.cookies:
        cookies["sessionid"] = client.cookies["sessionid"].value
    return {"X-CSRFToken": token}, cookies


def signed_in_with_a_code_sent():
    client = Client()
    login = post(client, "/otp/api/login/", {"username": "alice", "password": PASSWORD})
    assert login.json()["state"] == "pending"
    assert post(client, SEND).status_code == 202
    return client


def anonymous(phone_user):
    return session_of(Client())


def pending_session(phone_user):
    return session_of(signed_in_with_a_code_sent())


def verified_session(phone_user):
    client = signed_in_with_a_code_sent()
    post(client, VERIFY, {"pin": locmem.last_pin()})
    assert client.get(STATUS).json()["state"] == "verified"
    return session_of(client)


def pending_token(phone_user):
    auth = {"Authorization": f"Token {Token.objects.create(user=phone_user).key}"}
    assert post(Client(), SEND, headers=auth).status_code == 202
    return auth, {}


CLIENTS = {
    "anonymous": anonymous,
    "pending-session": pending_session,
    "verified-session": verified_session,
    "pending-token": pending_token,
}


def answer(response):
    if response.headers.get("content-type", [""])[0] != "application/json":
        return str(response.status_code)
    code = response.json().get("code")
    return f"{response.status_code} {code}" if code else str(response.status_code)


@pytest.mark.parametrize("client_name", list(CLIENTS))
@pytest.mark.parametrize(("method", "path", "mode"), RUNS, ids=[" ".join(run) for run in RUNS])
def test_api_conforms_to_its_schema(app, phone_user, client_name, method, path, mode):
    headers, cookies = CLIENTS[client_name](phone_user)
    key = (client_name, method, path, mode)
    ANSWERS[key] = Counter()
    strategy = SCHEMA[path][method].as_strategy(generation_mode=schemathesis.GenerationMode(mode))

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case):
        TRIED[key] += 1
        with keep_test_connection():
            response = case.call(app=app, headers=headers, cookies=cookies)
        ANSWERS[key][answer(response)] += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except Exception:
            FAILED[key] += 1
            raise

    run()
