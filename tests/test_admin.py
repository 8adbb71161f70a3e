"""The admin shows challenges and phones read-only, with masked numbers and no secrets."""

from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from infobip_otp.models import OtpChallenge, PhoneDevice, Purpose, Status

pytestmark = pytest.mark.django_db

ALICE_NUMBER = "+447911123456"
BOB_NUMBER = "+447911123457"
# Every way the full numbers could be written; none may reach a page.
FULL_NUMBER_FRAGMENTS = ("447911", "7911123", "7911 123")
SECRETS = ("digest-0f1e2d3c4b5a", "pinid-9F8E7D6C5B4A", "5e55" * 16)

CHALLENGES = reverse("admin:infobip_otp_otpchallenge_changelist")
PHONES = reverse("admin:infobip_otp_phonedevice_changelist")


def make_challenge(user, phone_number=ALICE_NUMBER, **fields):
    now = timezone.now()
    return OtpChallenge.objects.create(
        user=user,
        phone_number=phone_number,
        purpose=fields.pop("purpose", Purpose.LOGIN),
        max_attempts=5,
        sends=1,
        last_sent_at=now,
        expires_at=now + timedelta(minutes=5),
        pin_digest=SECRETS[0],
        provider_pin_id=SECRETS[1],
        session_hash=SECRETS[2],
        **fields,
    )


def make_phone(user, phone_number=ALICE_NUMBER, **fields):
    return PhoneDevice.objects.create(user=user, phone_number=phone_number, **fields)


def change_url(obj):
    return reverse(f"admin:infobip_otp_{obj._meta.model_name}_change", args=[obj.pk])


def delete_url(obj):
    return reverse(f"admin:infobip_otp_{obj._meta.model_name}_delete", args=[obj.pk])


def assert_no_secret(html):
    for fragment in (*FULL_NUMBER_FRAGMENTS, *SECRETS):
        assert fragment not in html


def listed(response):
    return list(response.context["cl"].result_list)


@pytest.fixture
def staff_client(client, django_user_model):
    """Log in a staff member holding exactly the given permissions."""

    def log_in(*codenames):
        staff = django_user_model.objects.create_user("staff", "staff@example.com", "pw-staff")
        staff.is_staff = True
        staff.save()
        staff.user_permissions.set(Permission.objects.filter(codename__in=codenames))
        client.force_login(staff)
        return client

    return log_in


# Challenges


def test_challenge_list_shows_masked_numbers_and_no_secret(admin_client, user, other_user):
    challenge = make_challenge(user, attempts=2)
    make_challenge(other_user, BOB_NUMBER)

    response = admin_client.get(CHALLENGES)

    html = response.content.decode()
    assert response.status_code == 200
    assert "+44*******456" in html
    assert "+44*******457" in html
    assert str(challenge.public_id)[:8] in html
    assert "2/5" in html
    assert_no_secret(html)


def test_challenge_detail_shows_no_secret_and_no_form(admin_client, user):
    challenge = make_challenge(user)

    response = admin_client.get(change_url(challenge))

    html = response.content.decode()
    assert response.status_code == 200
    assert "+44*******456" in html
    assert str(challenge.public_id) in html
    assert 'name="_save"' not in html
    assert 'name="status"' not in html
    assert_no_secret(html)


def test_challenge_add_page_is_forbidden(admin_client):
    assert admin_client.get(reverse("admin:infobip_otp_otpchallenge_add")).status_code == 403


def test_challenge_change_post_is_refused(admin_client, user):
    challenge = make_challenge(user)

    response = admin_client.post(
        change_url(challenge), {"status": Status.VERIFIED, "attempts": 0, "max_attempts": 99}
    )

    assert response.status_code == 403
    challenge.refresh_from_db()
    assert (challenge.status, challenge.max_attempts) == (Status.PENDING, 5)


def test_challenge_delete_is_refused(admin_client, user):
    challenge = make_challenge(user)

    assert admin_client.post(delete_url(challenge), {"post": "yes"}).status_code == 403
    admin_client.post(
        CHALLENGES, {"action": "delete_selected", "_selected_action": [challenge.pk], "post": "yes"}
    )

    assert OtpChallenge.objects.filter(pk=challenge.pk).exists()


def test_staff_with_view_permission_open_challenges_read_only(staff_client, user):
    client = staff_client("view_otpchallenge")
    challenge = make_challenge(user)

    assert client.get(CHALLENGES).status_code == 200
    detail = client.get(change_url(challenge))
    assert detail.status_code == 200
    assert_no_secret(detail.content.decode())
    assert client.post(change_url(challenge), {"status": Status.VERIFIED}).status_code == 403


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"status__exact": Status.LOCKED}, "locked"),
        ({"purpose__exact": Purpose.ENROLL}, "enroll"),
    ],
)
def test_challenge_list_filters_by_status_and_purpose(admin_client, user, query, expected):
    make_challenge(user)
    make_challenge(user, status=Status.LOCKED)
    make_challenge(user, purpose=Purpose.ENROLL)

    rows = listed(admin_client.get(CHALLENGES, query))

    assert len(rows) == 1
    assert expected in (rows[0].status, rows[0].purpose)


@pytest.mark.parametrize(
    "term",
    ["alice", "ALICE@example", ALICE_NUMBER, "07911 123456", "07911123456", "+44 7911 123456"],
)
def test_challenge_search_by_username_email_or_whole_number(admin_client, user, other_user, term):
    mine = make_challenge(user)
    make_challenge(other_user, BOB_NUMBER)

    assert listed(admin_client.get(CHALLENGES, {"q": term})) == [mine]


@pytest.mark.parametrize("term", ["+4479111234", "7911123", "123456", "+44791", "456"])
def test_partial_number_search_matches_nothing(admin_client, user, term):
    make_challenge(user)

    assert listed(admin_client.get(CHALLENGES, {"q": term})) == []


@pytest.mark.parametrize(
    "lookup",
    [
        "phone_number__startswith",
        "phone_number",
        "pin_digest__startswith",
        "provider_pin_id",
        "session_hash__startswith",
    ],
)
def test_url_filters_on_secret_fields_are_refused(admin_client, user, lookup):
    make_challenge(user)

    assert admin_client.get(CHALLENGES, {lookup: "+4479"}).status_code == 400


def test_challenge_list_queries_do_not_grow_with_rows(admin_client, user, django_user_model):
    make_challenge(user)
    with CaptureQueriesContext(connection) as one_row:
        admin_client.get(CHALLENGES)

    for n in range(19):
        owner = django_user_model.objects.create_user(f"user{n}", f"user{n}@example.com")
        make_challenge(owner, f"+4479111235{n:02d}")
    with CaptureQueriesContext(connection) as twenty_rows:
        response = admin_client.get(CHALLENGES)

    assert len(listed(response)) == 20
    assert len(twenty_rows) == len(one_row)


# Phones


def test_phone_list_shows_masked_numbers_and_lock_state(admin_client, user, other_user):
    make_phone(user, failure_count=10, locked_at=timezone.now())
    make_phone(other_user, BOB_NUMBER)

    response = admin_client.get(PHONES)

    html = response.content.decode()
    assert "+44*******456" in html
    assert "+44*******457" in html
    assert 'alt="True"' in html
    assert 'alt="False"' in html
    assert_no_secret(html)


@pytest.mark.parametrize(("locked", "expected"), [("yes", "alice"), ("no", "bob")])
def test_phone_list_filters_on_locked(admin_client, user, other_user, locked, expected):
    make_phone(user, locked_at=timezone.now())
    make_phone(other_user, BOB_NUMBER)

    rows = listed(admin_client.get(PHONES, {"locked": locked}))

    assert [device.user.username for device in rows] == [expected]


@pytest.mark.parametrize("term", ["bob", "bob@example.com", BOB_NUMBER, "07911 123457"])
def test_phone_search_by_username_email_or_whole_number(admin_client, user, other_user, term):
    make_phone(user)
    bobs = make_phone(other_user, BOB_NUMBER)

    assert listed(admin_client.get(PHONES, {"q": term})) == [bobs]


def test_phone_partial_number_search_and_number_filters_reveal_nothing(admin_client, user):
    make_phone(user)

    assert listed(admin_client.get(PHONES, {"q": "7911123"})) == []
    assert admin_client.get(PHONES, {"phone_number__contains": "7911"}).status_code == 400


def test_phone_detail_is_read_only_without_the_number(admin_client, user):
    device = make_phone(user, failure_count=3)

    response = admin_client.get(change_url(device))
    html = response.content.decode()
    assert response.status_code == 200
    assert "+44*******456" in html
    assert 'name="_save"' not in html
    assert_no_secret(html)

    refused = admin_client.post(change_url(device), {"phone_number": BOB_NUMBER})
    assert refused.status_code == 403
    device.refresh_from_db()
    assert (device.phone_number, device.failure_count) == (ALICE_NUMBER, 3)


def test_phone_add_page_is_forbidden(admin_client):
    assert admin_client.get(reverse("admin:infobip_otp_phonedevice_add")).status_code == 403


def test_clear_lockout_unlocks_the_selected_phones_only(admin_client, user, other_user):
    mine = make_phone(user, failure_count=10, locked_at=timezone.now())
    bobs = make_phone(other_user, BOB_NUMBER, failure_count=10, locked_at=timezone.now())

    response = admin_client.post(
        PHONES, {"action": "clear_lockout", "_selected_action": [mine.pk]}, follow=True
    )

    assert [str(m) for m in response.context["messages"]] == ["Cleared the lockout of 1 phone."]
    mine.refresh_from_db()
    bobs.refresh_from_db()
    assert (mine.locked_at, mine.failure_count) == (None, 0)
    assert bobs.locked_at is not None
    entry = LogEntry.objects.get()
    assert entry.get_change_message() == "Cleared the SMS lockout."
    assert_no_secret(entry.object_repr)


def test_remove_phone_asks_first_then_deletes_and_ends_open_challenges(
    admin_client, user, other_user
):
    mine = make_phone(user)
    make_phone(other_user, BOB_NUMBER)
    pending = make_challenge(user, purpose=Purpose.ENROLL)
    verified = make_challenge(user, status=Status.VERIFIED)
    bobs_pending = make_challenge(other_user, BOB_NUMBER)
    data = {"action": "delete_selected", "_selected_action": [mine.pk]}

    confirmation = admin_client.post(PHONES, data)
    assert confirmation.status_code == 200
    assert "+44*******456" in confirmation.content.decode()
    assert_no_secret(confirmation.content.decode())
    assert PhoneDevice.objects.filter(pk=mine.pk).exists()

    admin_client.post(PHONES, {**data, "post": "yes"})

    assert not PhoneDevice.objects.filter(user=user).exists()
    assert PhoneDevice.objects.filter(user=other_user).exists()
    statuses = dict(OtpChallenge.objects.values_list("pk", "status"))
    assert statuses == {
        pending.pk: Status.CANCELLED,
        verified.pk: Status.VERIFIED,
        bobs_pending.pk: Status.PENDING,
    }


def test_delete_button_on_a_phone_also_ends_open_challenges(admin_client, user):
    device = make_phone(user)
    pending = make_challenge(user)

    admin_client.post(delete_url(device), {"post": "yes"})

    assert not PhoneDevice.objects.exists()
    pending.refresh_from_db()
    assert pending.status == Status.CANCELLED


def test_clear_lockout_needs_the_change_permission(staff_client, user):
    device = make_phone(user, failure_count=10, locked_at=timezone.now())
    client = staff_client("view_phonedevice", "delete_phonedevice")

    client.post(PHONES, {"action": "clear_lockout", "_selected_action": [device.pk]})

    device.refresh_from_db()
    assert device.locked_at is not None


def test_staff_with_the_change_permission_can_clear_a_lockout(staff_client, user):
    device = make_phone(user, failure_count=10, locked_at=timezone.now())
    client = staff_client("view_phonedevice", "change_phonedevice")

    client.post(PHONES, {"action": "clear_lockout", "_selected_action": [device.pk]})

    device.refresh_from_db()
    assert device.locked_at is None


def test_remove_phone_needs_the_delete_permission(staff_client, user):
    device = make_phone(user)
    client = staff_client("view_phonedevice", "change_phonedevice")

    client.post(
        PHONES, {"action": "delete_selected", "_selected_action": [device.pk], "post": "yes"}
    )

    assert PhoneDevice.objects.filter(pk=device.pk).exists()
