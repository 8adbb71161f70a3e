"""The OpenAPI schema: generated from the demo site, valid, complete and committed.

``docs/openapi.yaml`` is what ``manage.py spectacular`` writes for the example
project; these tests regenerate it in-process with the demo's schema settings
and fail when the committed file is stale.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from unittest import mock

import pytest
import yaml
from django.core.management import call_command
from drf_spectacular.settings import patched_settings

from infobip_otp import exceptions
from infobip_otp.api.views import OtpAPIView

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "docs" / "openapi.yaml"
REGENERATE = (
    "DEBUG=true DJANGO_SETTINGS_MODULE=example_project.settings .venv/bin/python manage.py "
    "spectacular --file docs/openapi.yaml --validate --fail-on-warn"
)
OPERATIONS = {
    ("/otp/api/status/", "get"): (200, set()),
    ("/otp/api/login/", "post"): (200, {"invalid_credentials", "rate_limited"}),
    ("/otp/api/send/", "post"): (202, {"no_challenge", "rate_limited", "provider_unavailable"}),
    ("/otp/api/phone/", "post"): (202, {"invalid_phone", "region_not_allowed"}),
    ("/otp/api/verify/", "post"): (200, {"invalid_pin", "expired", "locked", "no_challenge"}),
}
ERROR = {"$ref": "#/components/schemas/Error"}


def example_settings():
    """The demo's settings module, imported without letting its ``.env`` leak into ours."""
    with mock.patch.dict(os.environ):
        from example_project import settings as example
    return example


@pytest.fixture
def demo_schema_settings(settings):
    """This process, configured as the demo site as far as the schema is concerned."""
    example = example_settings()
    settings.INSTALLED_APPS = [*settings.INSTALLED_APPS, "drf_spectacular"]
    settings.ROOT_URLCONF = "example_project.urls"
    settings.REST_FRAMEWORK = example.REST_FRAMEWORK
    # drf-spectacular reads SPECTACULAR_SETTINGS once, at import: patch its copy.
    patches = {
        key: value
        for key, value in example.SPECTACULAR_SETTINGS.items()
        if not key.startswith("SERVE_")
    }
    with patched_settings(patches):
        yield


@pytest.fixture
def generated(demo_schema_settings, tmp_path):
    """Run ``spectacular --validate --fail-on-warn`` as CI would; the schema text."""
    target = tmp_path / "openapi.yaml"
    call_command("spectacular", file=str(target), validate=True, fail_on_warn=True)
    return target.read_text()


@pytest.fixture
def schema(generated):
    return yaml.safe_load(generated)


def test_committed_schema_is_up_to_date(generated):
    assert COMMITTED.read_text() == generated, f"docs/openapi.yaml is stale; run: {REGENERATE}"


def test_schema_holds_only_the_otp_api(schema):
    operations = {(path, method) for path, methods in schema["paths"].items() for method in methods}
    assert operations == set(OPERATIONS)


def test_operations_have_stable_ids_and_a_json_body(schema):
    for (path, method), _ in OPERATIONS.items():
        operation = schema["paths"][path][method]
        assert operation["operationId"] == f"otp_{path.split('/')[-2]}"
        assert operation["summary"] and operation["description"]
        if method == "post":
            assert list(operation["requestBody"]["content"]) == ["application/json"]


@pytest.mark.parametrize(("path", "method"), list(OPERATIONS))
def test_every_failure_is_the_shared_error_component(schema, path, method):
    success, expected_codes = OPERATIONS[(path, method)]
    responses = schema["paths"][path][method]["responses"]
    assert str(success) in responses
    failures = {int(status): body for status, body in responses.items() if int(status) >= 400}
    expected_statuses = {401, 403} | ({400, 429, 503} if method == "post" else set())
    assert set(failures) == expected_statuses
    codes = set()
    for status, response in failures.items():
        content = response["content"]["application/json"]
        assert content["schema"] == ERROR
        for example in content["examples"].values():
            assert set(example["value"]) >= {"detail", "code"}
            codes.add(example["value"]["code"])
        assert response["description"]
        has_retry_after = "Retry-After" in response.get("headers", {})
        assert has_retry_after == (status in (429, 503)), status
    assert expected_codes <= codes
    assert {"otp_required", "login_expired"} <= codes
    if method == "post":
        assert {"invalid", "parse_error", "permission_denied"} <= codes


def test_retry_after_is_a_required_integer_header(schema):
    header = schema["paths"]["/otp/api/send/"]["post"]["responses"]["429"]["headers"]
    assert header["Retry-After"]["required"] is True
    assert header["Retry-After"]["schema"] == {"type": "integer"}


@pytest.mark.parametrize(
    "error",
    [
        exceptions.RateLimited(retry_after=17),
        exceptions.ProviderRateLimited(),
        exceptions.ProviderUnavailable(),
        exceptions.SendBudgetExhausted(),
        exceptions.RateLimitUnavailable(),
    ],
    ids=lambda error: type(error).__name__,
)
def test_every_429_and_503_carries_the_documented_retry_after(error):
    response = OtpAPIView().handle_exception(error)
    assert response.status_code in (429, 503)
    assert int(response["Retry-After"]) >= 1
    assert set(response.data) == {"detail", "code"}


def test_error_component_shape(schema):
    error = schema["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"detail", "code"}
    assert set(error["properties"]) == {"detail", "code", "attempts_left", "fields"}


def test_session_and_token_clients_are_documented(schema):
    assert set(schema["components"]["securitySchemes"]) == {"cookieAuth", "tokenAuth"}


# --- The demo site with and without the ``openapi`` extra ----------------------------

DEMO_CHECK = """
import json, sys
{block}
import django
django.setup()
from django.core.management import call_command
from django.test import Client

call_command("check", fail_level="WARNING")
call_command("migrate", verbosity=0)
call_command("seed_demo", stdout=open("/dev/null", "w"))
client = Client(HTTP_HOST="localhost")
from django.contrib.staticfiles import finders
results = {{
    "static": bool(finders.find("demo/spa.js")),
    "schema": client.get("/api/schema/").status_code,
    "status": client.get("/otp/api/status/").json(),
    "spa": client.get("/spa/").status_code,
}}
login = client.post(
    "/otp/api/login/",
    {{"username": "demo", "password": "demo-password"}},
    content_type="application/json",
)
results["login"] = login.json()
results["pending_spa"] = client.get("/spa/").status_code
results["pending_home"] = client.get("/").status_code
print(json.dumps(results))
"""


def run_demo(*, without_openapi):
    block = "sys.modules['drf_spectacular'] = None" if without_openapi else ""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "example_project.settings",
        "DEBUG": "true",
        "DATABASE_URL": "sqlite://:memory:",
        "CACHE_URL": "locmemcache://",
    }
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(DEMO_CHECK.format(block=block))],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("without_openapi", [False, True], ids=["with-openapi", "without"])
def test_demo_site_runs_with_and_without_drf_spectacular(without_openapi):
    results = run_demo(without_openapi=without_openapi)
    assert results["schema"] == (404 if without_openapi else 200)
    assert results["static"]
    assert results["status"] == {"state": "anonymous", "phone": None, "challenge": None}
    assert results["login"] == {"state": "pending", "phone": "+44*******456"}
    # The single-page demo carries on a pending login; every other page waits.
    assert results["spa"] == results["pending_spa"] == 200
    assert results["pending_home"] == 302
