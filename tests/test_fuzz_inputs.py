"""Property tests (hypothesis) for what clients type: phone numbers, codes, JSON bodies.

- ``normalize_phone_number`` refuses anything with a ``PhoneNumberError`` and
  nothing else, and what it accepts is E.164 that normalises to itself.
- ``mask_phone_number`` shows the country code and the last three digits, never more.
- Any JSON body (or none) posted to any API endpoint, from an anonymous, a
  pending or a verified client, gets a 2xx or a 4xx in the API's error shape:
  never a 5xx, never a full phone number.

The number of examples tried per test is printed at the end of the module.
"""

import json
import re
from collections import Counter

import phonenumbers
import pytest
from django.core.cache import caches
from django.test import Client, override_settings
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase

from infobip_otp import ratelimits
from infobip_otp.backends import locmem
from infobip_otp.exceptions import PhoneNumberError
from infobip_otp.models import OtpChallenge, PhoneDevice
from infobip_otp.phones import mask_phone_number, normalize_phone_number

PHONE = "+447400123456"
PASSWORD = "pw-alice-123"
E164 = re.compile(r"\+[1-9][0-9]{6,14}")
API = {name: f"/otp/api/{name}/" for name in ("status", "login", "send", "verify", "phone")}
FIELDS = ("pin", "phone_number", "username", "password", "state", "challenge", "pinId")

#: Examples tried per test; printed when the module ends.
TRIED: Counter = Counter()

FUZZ = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
# Each API example signs a client in afresh: fewer of them keep the run short.
FUZZ_API = settings(FUZZ, max_examples=200)


@pytest.fixture(scope="module", autouse=True)
def _report(request):
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or not TRIED:
        return
    with request.config.pluginmanager.get_plugin("capturemanager").global_and_fixture_disabled():
        reporter.write_line(f"\nhypothesis: {sum(TRIED.values())} examples")
        for name, count in sorted(TRIED.items()):
            reporter.write_line(f"  {name:60} {count:4} tried")
    # pytest-django runs the TestCase class first: report each part once.
    TRIED.clear()


# --- Phone numbers ------------------------------------------------------------------

# Text that looks like a phone number now and then: digits of any script,
# separators, letters (vanity numbers), extensions, plus signs.
phone_like = st.text(
    alphabet=st.one_of(
        st.sampled_from("0123456789+ -().#*x/"),
        st.characters(categories=["Nd", "Zs", "Pd"]),
        st.characters(),
    ),
    max_size=40,
)
national_or_international = st.builds(
    lambda plus, cc, rest: f"{plus}{cc}{rest}",
    st.sampled_from(["+", "00", "", "+ "]),
    st.sampled_from(["44", "1", "385", "49", "7", "86", "0", ""]),
    st.from_regex(r"[0-9 ]{4,16}", fullmatch=True),
)
odd_values = st.one_of(
    st.none(),
    st.integers(),
    st.floats(),
    st.binary(max_size=20),
    st.lists(st.text(max_size=5), max_size=3),
    st.text(min_size=60, max_size=5000),
)
raw_numbers = st.one_of(st.text(), phone_like, national_or_international, odd_values)


def check_normalize(raw):
    try:
        number = normalize_phone_number(raw)
    except PhoneNumberError:
        return
    assert E164.fullmatch(number), number
    assert normalize_phone_number(number) == number
    assert (
        phonenumbers.format_number(phonenumbers.parse(number), phonenumbers.PhoneNumberFormat.E164)
        == number
    )


@FUZZ
@given(raw=raw_numbers)
def test_normalize_refuses_with_phone_number_errors_and_accepts_e164(raw):
    TRIED["normalize_phone_number (default region GB)"] += 1
    check_normalize(raw)


@override_settings(
    INFOBIP_OTP_DEFAULT_REGION=None,
    INFOBIP_OTP_ALLOWED_REGIONS=["GB", "HR", "US"],
)
@FUZZ
@given(raw=raw_numbers)
def test_normalize_with_an_allow_list_and_no_default_region(raw):
    TRIED["normalize_phone_number (no default region, allow-list)"] += 1
    check_normalize(raw)


def valid_numbers():
    """Valid mobile numbers of many countries, as phonenumbers' examples make them."""
    regions = sorted(phonenumbers.SUPPORTED_REGIONS)
    return st.builds(
        lambda region, tail: _mobile_like(region, tail),
        st.sampled_from(regions),
        st.integers(0, 999),
    ).filter(bool)


def _mobile_like(region, tail):
    example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    if example is None:
        return ""
    national = str(example.national_number)
    varied = national[:-3] + f"{tail:03d}" if len(national) > 3 else national
    number = phonenumbers.parse(f"+{example.country_code}{varied}")
    if not phonenumbers.is_valid_number(number):
        return ""
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@FUZZ
@given(number=valid_numbers())
def test_mask_shows_only_the_country_code_and_the_last_three_digits(number):
    TRIED["mask_phone_number (valid numbers)"] += 1
    masked = mask_phone_number(number)
    country = str(phonenumbers.parse(number).country_code)
    hidden = len(number) - 1 - len(country) - 3
    assert masked == f"+{country}{'*' * hidden}{number[-3:]}"
    assert len(re.findall(r"[0-9]", masked)) == len(country) + 3


@FUZZ
@given(raw=st.one_of(st.text(max_size=40), phone_like, national_or_international))
def test_mask_of_anything_reveals_at_most_six_characters(raw):
    TRIED["mask_phone_number (any text)"] += 1
    masked = mask_phone_number(raw)
    assert isinstance(masked, str)
    revealed = masked.lstrip("+").replace("*", "")
    # A country code has at most three digits; three more are the tail.
    assert len(revealed) <= 6
    if len(raw.lstrip("+")) > 6:
        assert raw.lstrip("+") not in masked


# --- JSON bodies to the API ---------------------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(),
    st.sampled_from(["123456", " 1 2 3 4 5 6 ", "١٢٣٤٥٦", "000000", PHONE, "07400 123456", ""]),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(FIELDS), st.text()), children, max_size=4),
    ),
    max_leaves=10,
)
# Objects with the API's own field names, so the validation paths get exercised.
json_bodies = st.one_of(
    st.fixed_dictionaries({}, optional=dict.fromkeys(FIELDS, json_values)),
    json_values,
)


@override_settings(INFOBIP_OTP_RATES=dict.fromkeys(ratelimits.DEFAULT_RATES))
class ApiBodyFuzzTests(TestCase):
    """Each example runs in its own transaction, with fresh caches and outbox."""

    @classmethod
    def setUpTestData(cls):
        from django.contrib.auth import get_user_model

        cls.user = get_user_model().objects.create_user("alice", password=PASSWORD)
        PhoneDevice.objects.create(user=cls.user, phone_number=PHONE)

    def setup_example(self):
        super().setup_example()
        locmem.outbox.clear()
        for cache in caches.all(initialized_only=True):
            cache.clear()

    def client_in(self, client_state):
        client = Client()
        if client_state == "anonymous":
            return client
        client.post(
            API["login"],
            {"username": "alice", "password": PASSWORD},
            content_type="application/json",
        )
        client.post(API["send"], {}, content_type="application/json")
        if client_state == "verified":
            client.post(API["verify"], {"pin": locmem.last_pin()}, content_type="application/json")
        return client

    def assert_well_formed(self, response):
        self.assertLess(response.status_code, 500, response.content)
        text = response.content.decode()
        numbers = {PHONE, *OtpChallenge.objects.values_list("phone_number", flat=True)}
        for number in numbers:
            self.assertNotIn(number, text)
            self.assertNotIn(number.lstrip("+"), text)
        if response.status_code >= 400:
            body = response.json()
            self.assertIsInstance(body["detail"], str)
            self.assertRegex(body["code"], r"^[a-z_]+$")

    @FUZZ_API
    @given(
        client_state=st.sampled_from(["anonymous", "pending", "verified"]),
        endpoint=st.sampled_from(["login", "send", "verify", "phone"]),
        body=json_bodies,
    )
    def test_any_json_body_gets_a_documented_answer(self, client_state, endpoint, body):
        TRIED["API: any JSON body, any endpoint, any client"] += 1
        client = self.client_in(client_state)
        response = client.post(API[endpoint], json.dumps(body), content_type="application/json")
        self.assert_well_formed(response)

    @FUZZ_API
    @given(
        endpoint=st.sampled_from(["login", "send", "verify", "phone"]),
        raw=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)),
        content_type=st.sampled_from(
            ["application/json", "text/plain", "application/x-www-form-urlencoded"]
        ),
    )
    def test_bytes_that_are_not_json_get_a_4xx_in_shape(self, endpoint, raw, content_type):
        TRIED["API: raw bytes, any endpoint (pending client)"] += 1
        client = self.client_in("pending")
        response = client.generic("POST", API[endpoint], raw, content_type=content_type)
        self.assert_well_formed(response)

    @FUZZ_API
    @given(pin=st.text(max_size=40))
    # Digits str.isdigit() accepts: Arabic-Indic, fullwidth, superscript.
    @example(pin="\u0661\u0662\u0663\u0664\u0665\u0666")
    @example(pin="\uff11\uff12\uff13\uff14\uff15\uff16")
    @example(pin="\u00b9\u00b2\u00b3\u2074\u2075\u2076")
    def test_a_pin_is_only_ever_six_ascii_digits(self, pin):
        TRIED["API: verify with any text as pin (pending client)"] += 1
        client = self.client_in("pending")
        response = client.post(API["verify"], {"pin": pin}, content_type="application/json")
        self.assert_well_formed(response)
        malformed = response.json().get("code") == "invalid"
        if not malformed:
            self.assertRegex("".join(pin.split()), r"^[0-9]{6}$")
        # Only a well-formed code costs an attempt.
        self.assertEqual(OtpChallenge.objects.get().attempts, 0 if malformed else 1)
