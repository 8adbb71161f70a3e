"""Shared set-up of the attack and fault suite (tests tagged ``security("Tnn")``)."""

import json

import pytest
from django.test import Client
from django.urls import reverse

from infobip_otp.backends import locmem
from infobip_otp.models import PhoneDevice

PHONE = "+447400123456"
MASKED = "+44*******456"
PASSWORD = "pw-alice-123"
API = {
    name: reverse(f"infobip_otp:api-{name}")
    for name in ("status", "login", "send", "verify", "phone")
}
VERIFY_PAGE = reverse("infobip_otp:verify")


def api_post(client, name, body=None, **extra):
    return client.post(API[name], json.dumps(body or {}), content_type="application/json", **extra)


def wrong(pin):
    """A PIN of the same length that differs from ``pin`` in every digit."""
    return "".join(str((int(d) + 1) % 10) for d in pin)


@pytest.fixture
def phone_user(user):
    PhoneDevice.objects.create(user=user, phone_number=PHONE)
    return user


@pytest.fixture
def pending_client(phone_user):
    """An API client past the password step with its first code sent."""
    client = Client()
    assert api_post(client, "login", {"username": "alice", "password": PASSWORD}).status_code == 200
    assert api_post(client, "send").status_code == 202
    client.pin = locmem.last_pin()
    return client
