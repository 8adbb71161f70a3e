"""Every setting is documented, and the example project passes Django's checks."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from infobip_otp.conf import DEFAULTS, PREFIX

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", sorted(DEFAULTS))
def test_every_setting_is_documented(name):
    assert f"`{PREFIX}{name}`" in (ROOT / "docs" / "configuration.md").read_text()


def run_manage(*args, settings_module, **env):
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": settings_module, **env}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_example_project_passes_manage_py_check():
    result = run_manage(
        "check", "--fail-level", "WARNING", settings_module="example_project.settings", DEBUG="true"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_example_project_refuses_the_console_backend_in_production():
    result = run_manage("check", settings_module="example_project.settings", DEBUG="false")
    assert result.returncode != 0
    assert "infobip_otp.E004" in result.stderr


def test_test_settings_pass_manage_py_check():
    result = run_manage("check", "--fail-level", "WARNING", settings_module="tests.settings")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
