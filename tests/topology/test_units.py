"""The systemd units of deploy/ (docs/deploy.md): valid for systemd, and running only what
an installed package provides (`modelvault-admin`, gunicorn with `python:config.gunicorn_conf`,
`celery -A config`), never a file of the checkout, so that they serve a wheel install as
they serve a checkout. The tested topology runs their commands (tests/topology/stack.py).

Not marked `topology`: these take a second and run in every pass."""

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.topology.stack import BIN, DEPLOY, UNIT_BIN, unit_command

UNITS = sorted(DEPLOY.glob("*.service"))
EXEC_KEYS = ("ExecStartPre=", "ExecStart=", "ExecStartPost=", "ExecStop=")


def exec_lines(unit: Path) -> list[str]:
    return [line for line in unit.read_text().splitlines() if line.startswith(EXEC_KEYS)]


def test_it_has_the_four_units():
    assert [unit.stem for unit in UNITS] == [
        "modelvault-beat",
        "modelvault-migrate",
        "modelvault-web",
        "modelvault-worker",
    ]


@pytest.mark.parametrize("unit", UNITS, ids=lambda unit: unit.stem)
def test_it_runs_only_what_the_installed_package_provides(unit: Path):
    for line in exec_lines(unit):
        command = shlex.split(line.split("=", 1)[1])
        assert command[0].startswith(UNIT_BIN), line
        assert (BIN / command[0].removeprefix(UNIT_BIN)).is_file(), f"{line}: not installed"
        assert not {"manage.py", "gunicorn.conf.py"} & set(command), f"{line}: a checkout file"


def test_it_serves_with_the_packaged_configuration_and_command():
    assert unit_command("modelvault-web")[1:] == [
        "-c",
        "python:config.gunicorn_conf",
        "config.wsgi",
    ]
    assert unit_command("modelvault-web", "ExecStartPre")[0] == str(BIN / "modelvault-admin")
    assert unit_command("modelvault-migrate")[1:] == ["migrate", "--noinput"]


def test_it_passes_systemd_analyze_verify(tmp_path: Path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("needs systemd-analyze (systemd)")
    # As installed: this venv for /srv/modelvault/.venv, the example for the environment file.
    for unit in UNITS:
        text = unit.read_text().replace(UNIT_BIN, f"{BIN}/")
        text = text.replace(
            "/etc/modelvault/modelvault.env", str(DEPLOY / "modelvault.env.example")
        )
        text = text.replace("WorkingDirectory=/srv/modelvault", f"WorkingDirectory={tmp_path}")
        (tmp_path / unit.name).write_text(text)
    done = subprocess.run(
        [analyze, "verify", *(unit.name for unit in UNITS)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout + done.stderr) == (0, "")
