"""The statements a login, a send and a verify run on this app's tables (docs/performance.md).

Django's own (the session, ``request.user``, savepoints) depend on the
session engine and the test's transaction; these count only the statements
that touch ``infobip_otp`` tables, so a change that adds one shows here.
"""

import json

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from infobip_otp.backends import locmem
from infobip_otp.models import OtpChallenge, PhoneDevice, Status

pytestmark = pytest.mark.django_db

PASSWORD = "pw-alice-123"


def post(client, name, body=None):
    return client.post(
        reverse(f"infobip_otp:api-{name}"), json.dumps(body or {}), content_type="application/json"
    )


def ours(captured):
    return [q["sql"] for q in captured.captured_queries if "infobip_otp_" in q["sql"]]


@pytest.fixture
def pending(user):
    PhoneDevice.objects.create(user=user, phone_number="+447400123456")
    client = Client()
    assert post(client, "login", {"username": "alice", "password": PASSWORD}).status_code == 200
    return client


def test_a_login_reads_the_number_once(user):
    PhoneDevice.objects.create(user=user, phone_number="+447400123456")
    client = Client()

    with CaptureQueriesContext(connection) as captured:
        answer = post(client, "login", {"username": "alice", "password": PASSWORD})

    # The policy check reads it; the answer shows it masked without reading it again.
    assert answer.json() == {"state": "pending", "phone": "+44*******456"}
    assert [sql.split()[0] for sql in ours(captured)] == ["SELECT"]


def test_a_first_send_runs_four_statements(pending):
    with CaptureQueriesContext(connection) as captured:
        assert post(pending, "send").status_code == 202

    statements = ours(captured)
    assert [sql.split()[0] for sql in statements] == ["SELECT", "INSERT", "UPDATE", "UPDATE"]
    # The number and the lock in one read; the session written once, before the provider call.
    assert "locked_at" in statements[0]
    session_writes = [
        q["sql"]
        for q in captured.captured_queries
        if q["sql"].startswith(("UPDATE", "INSERT")) and "django_session" in q["sql"]
    ]
    assert len(session_writes) == 1
    assert OtpChallenge.objects.get().status == Status.PENDING


def test_a_right_code_runs_four_statements(pending):
    assert post(pending, "send").status_code == 202
    pin = locmem.last_pin()

    with CaptureQueriesContext(connection) as captured:
        assert post(pending, "verify", {"pin": pin}).json() == {"state": "verified"}

    statements = ours(captured)
    # Read the challenge; claim an attempt (the lock checked in the same UPDATE);
    # consume it; reset the device's failure count.
    assert [sql.split()[0] for sql in statements] == ["SELECT", "UPDATE", "UPDATE", "UPDATE"]
    assert "locked_at" in statements[1]
    assert OtpChallenge.objects.get().status == Status.VERIFIED


def test_a_locked_factor_claims_no_attempt(pending, user):
    assert post(pending, "send").status_code == 202
    pin = locmem.last_pin()
    PhoneDevice.objects.filter(user=user).update(failure_count=10, locked_at="2026-01-01T00:00Z")

    answer = post(pending, "verify", {"pin": pin})

    assert answer.status_code == 400
    assert answer.json()["code"] == "factor_locked"
    assert answer.json()["attempts_left"] == 0
    challenge = OtpChallenge.objects.get()
    assert (challenge.attempts, challenge.status) == (0, Status.PENDING)
