"""Every setting is documented, and the example project passes Django's checks."""

import os
import re
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


def security_rows():
    rows = {}
    for line in (ROOT / "docs" / "security.md").read_text().splitlines():
        match = re.match(r"\| (T\d\d) \|", line)
        if match:
            rows[match[1]] = line
    return rows


def test_every_requirement_has_a_row_without_todo():
    rows = security_rows()
    assert sorted(rows) == [f"T{n:02d}" for n in range(1, 51)]
    for row in rows.values():
        assert "todo" not in row.lower()
        assert "tests/security/" in row or "not applicable" in row.lower()


@pytest.mark.parametrize("requirement", sorted(security_rows()))
def test_security_rows_name_tests_that_exist_and_carry_their_id(requirement):
    row = security_rows()[requirement]
    current = None
    names = []
    for path, name in re.findall(r"`(tests/security/[\w/]+\.py)?::(\w+)", row):
        current = path or current
        names.append((current, name))
    assert names, row
    for path, name in names:
        source = (ROOT / path).read_text()
        assert re.search(rf"def {name}\(", source), f"{path}::{name} does not exist"
        assert f'security("{requirement}")' in source, f"{path} has no test tagged {requirement}"
