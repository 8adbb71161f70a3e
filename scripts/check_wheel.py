"""Build the wheel and check what it holds: the app, templates, migrations, py.typed; no tests."""

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUIRED = (
    "infobip_otp/__init__.py",
    "infobip_otp/py.typed",
    "infobip_otp/migrations/0001_initial.py",
    "infobip_otp/templates/infobip_otp/",
    "infobip_otp/management/commands/infobip_otp_cleanup.py",
)
FORBIDDEN = ("tests/", "example_project/", "benchmarks/", "scripts/", "docs/")


def main() -> int:
    with tempfile.TemporaryDirectory() as out:
        subprocess.run(
            [sys.executable, "-m", "build", "--wheel", "--outdir", out, str(ROOT)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        (wheel,) = Path(out).glob("*.whl")
        names = zipfile.ZipFile(wheel).namelist()
    missing = [r for r in REQUIRED if not any(n.startswith(r) for n in names)]
    leaked = [n for n in names if n.startswith(FORBIDDEN)]
    packages = sorted({n.split("/")[0] for n in names})
    print(f"{wheel.name}: {len(names)} files, top level {packages}")
    if missing or leaked:
        print(f"missing: {missing}\nnot allowed: {leaked}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
