"""``manage.py infobip_otp_setup`` against the simulator: create, idempotence, updates, refusals."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from infobip_otp.provisioning import ensure_application_and_template, pin_time_to_live
from infobip_otp.testing.pytest_plugin import infobip_simulator_server  # noqa: F401
from infobip_otp.testing.simulator import ApiRequest

WRITES = ("POST", "PUT", "PATCH", "DELETE")


@pytest.fixture
def sim(infobip_simulator_server):  # noqa: F811
    return infobip_simulator_server


def run(*args):
    out = StringIO()
    call_command("infobip_otp_setup", *args, stdout=out)
    return out.getvalue()


def applications(sim):
    return sim.api.list_applications(ApiRequest()).body


def templates(sim, app_id):
    return sim.api.list_templates(ApiRequest(params={"app_id": app_id})).body


def env_lines(output):
    return dict(
        line.split("=", 1) for line in output.splitlines() if line.startswith("INFOBIP_OTP_")
    )


def writes(sim):
    return [(r.method, r.endpoint, r.body) for r in sim.requests_for() if r.method in WRITES]


def test_first_run_creates_the_application_and_template_from_settings(sim):
    output = run()
    assert "Created application 'infobip_otp'" in output
    [application] = applications(sim)
    assert application["name"] == "infobip_otp"
    assert application["enabled"] is True
    assert application["configuration"] == {
        "pinAttempts": 5,
        "pinTimeToLive": "5m",
        "allowMultiplePinVerifications": False,
        "sendPinPerPhoneNumberLimit": "5/1d",
        "verifyPinLimit": "1/3s",
        "sendPinPerApplicationLimit": "10000/1d",
    }
    [template] = templates(sim, application["applicationId"])
    assert template["messageText"] == "Your verification code is {{pin}}"
    assert template["pinType"] == "NUMERIC"
    assert template["pinLength"] == 6
    assert "senderId" not in template
    assert env_lines(output) == {
        "INFOBIP_OTP_APPLICATION_ID": application["applicationId"],
        "INFOBIP_OTP_MESSAGE_ID": template["messageId"],
    }
    assert [(method, endpoint) for method, endpoint, _ in writes(sim)] == [
        ("POST", "applications"),
        ("POST", "messages"),
    ]


def test_second_run_changes_nothing(sim):
    first = env_lines(run())
    sim.reset()  # forget the recorded requests; applications and templates stay
    output = run()
    assert env_lines(output) == first
    assert "up to date" in output
    assert writes(sim) == []
    assert sim.request_count() == 2  # one list of applications, one of templates
    assert ensure_application_and_template().changed is False


def test_changed_setting_is_updated_with_put(sim, settings):
    run()
    settings.INFOBIP_OTP_MAX_ATTEMPTS = 3
    settings.INFOBIP_OTP_MESSAGE_TEXT = "{{pin}} is your code"
    settings.INFOBIP_OTP_SENDER_ID = "Example"
    sim.reset()
    output = run()
    assert "pinAttempts 5 -> 3" in output
    [application] = applications(sim)
    assert application["configuration"]["pinAttempts"] == 3
    assert application["configuration"]["pinTimeToLive"] == "5m"
    [template] = templates(sim, application["applicationId"])
    assert template["messageText"] == "{{pin}} is your code"
    assert template["senderId"] == "Example"
    assert template["pinLength"] == 6
    [app_put, template_put] = writes(sim)
    assert app_put[:2] == ("PUT", "applications")
    assert template_put == (
        "PUT",
        "messages",
        {"messageText": "{{pin}} is your code", "senderId": "Example"},
    )


def test_existing_application_is_found_by_name_and_keeps_unmanaged_fields(sim):
    existing = sim.create_application(
        "infobip_otp", pinAttempts=10, pinTimeToLive="300s", verifyPinLimit="2/5s"
    )
    output = run()
    [application] = applications(sim)
    assert application["applicationId"] == existing["applicationId"]
    assert application["configuration"]["pinAttempts"] == 5
    assert application["configuration"]["allowMultiplePinVerifications"] is False
    assert application["configuration"]["verifyPinLimit"] == "2/5s"
    # 300s already is 5 minutes: not reported as a change.
    assert "pinTimeToLive" not in output
    assert env_lines(output)["INFOBIP_OTP_APPLICATION_ID"] == existing["applicationId"]


def test_configured_ids_are_preferred(sim, settings):
    sim.create_application("infobip_otp")
    chosen = sim.create_application("renamed")
    template = sim.create_template(chosen["applicationId"], message_text="Other {{pin}}")
    settings.INFOBIP_OTP_APPLICATION_ID = chosen["applicationId"]
    settings.INFOBIP_OTP_MESSAGE_ID = template["messageId"]
    output = run()
    assert env_lines(output) == {
        "INFOBIP_OTP_APPLICATION_ID": chosen["applicationId"],
        "INFOBIP_OTP_MESSAGE_ID": template["messageId"],
    }
    assert [(method, endpoint) for method, endpoint, _ in writes(sim)] == [
        ("PUT", "applications"),
        ("PUT", "messages"),
    ]


def test_dry_run_writes_nothing(sim):
    output = run("--dry-run")
    assert "Would create application 'infobip_otp'" in output
    assert "Would create an SMS template" in output
    assert "INFOBIP_OTP_APPLICATION_ID" not in output
    assert writes(sim) == []
    assert applications(sim) == []


def test_dry_run_reports_updates(sim, settings):
    run()
    settings.INFOBIP_OTP_PIN_TTL = 120
    sim.reset()
    output = run("--dry-run")
    assert "Would update application" in output
    assert "pinTimeToLive '5m' -> '2m'" in output
    assert writes(sim) == []


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("PIN_TTL", 900, "INFOBIP_OTP_PIN_TTL must be 1 to 600 seconds"),
        ("PIN_LENGTH", 4, "INFOBIP_OTP_PIN_LENGTH must be at least 6 digits"),
        ("MESSAGE_TEXT", "Your code is {pin}", "INFOBIP_OTP_MESSAGE_TEXT must contain {{pin}}"),
        ("SEND_PER_NUMBER_LIMIT", "lots", "INFOBIP_OTP_SEND_PER_NUMBER_LIMIT must look like"),
    ],
)
def test_unsafe_settings_are_refused(sim, settings, name, value, message):
    setattr(settings, f"INFOBIP_OTP_{name}", value)
    with pytest.raises(CommandError, match=message):
        run()
    assert sim.request_count() == 0


def test_provider_error_is_a_generic_command_error(sim, settings):
    settings.INFOBIP_OTP_API_KEY = "wrong-key-0123456789abcdef"
    with pytest.raises(CommandError) as caught:
        run()
    assert str(caught.value) == (
        "Infobip refused the API key (HTTP 401, UNAUTHORIZED). Check INFOBIP_OTP_API_KEY "
        "and that it has the 2fa:manage scope."
    )
    assert applications(sim) == []


def test_unreachable_provider_is_a_command_error(sim, settings):
    sim.set_fault("applications", "503")
    with pytest.raises(CommandError, match="could not be reached or answered badly"):
        run()


def test_ambiguous_application_name_is_refused(sim):
    sim.create_application("infobip_otp")
    sim.create_application("infobip_otp")
    with pytest.raises(CommandError, match="2 Infobip applications are named 'infobip_otp'"):
        run()
    assert writes(sim) == []


@pytest.mark.parametrize(("seconds", "text"), [(300, "5m"), (600, "10m"), (90, "90s"), (45, "45s")])
def test_pin_time_to_live_format(seconds, text):
    assert pin_time_to_live(seconds) == text
