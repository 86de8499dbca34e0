"""docs/quickstart.md as a user runs it: each code block, in a fresh project, from the wheel.

Each code block of the page follows a marker (an HTML comment, invisible
when the page is rendered) that says what to do with it:

- ``<!-- quickstart: run -->``: run the shell block in the project; it must succeed;
- ``<!-- quickstart: write PATH -->`` / ``append PATH``: the Python block is that file;
- ``<!-- quickstart: background [until "TEXT"] -->``: start the one-line command;
  with ``until``, wait for TEXT in the output of the commands started so
  far, then stop them all with SIGTERM: each must exit 0.

The project is ``python -m django startproject mysite`` with an app
``shop``, in a virtualenv that holds the wheel (installed by the page's own
``pip install``) and Django, which pip finds already there: the run needs no
package index.
"""

import importlib.metadata
import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

PAGE = Path(__file__).resolve().parents[2] / "docs" / "quickstart.md"
BLOCK = re.compile(r"<!-- quickstart: (?P<marker>.*?) -->\n```\w*\n(?P<code>.*?)```", re.S)
DJANGO_DISTRIBUTIONS = ["django", "asgiref", "sqlparse"]
WAIT = 90.0
ADMIN_CHECK = """
from django.contrib.auth.models import User
from django.test import Client

client = Client()
client.force_login(User.objects.get(username="admin"))
response = client.get("/admin/kew_django/", HTTP_HOST="localhost")  # DEBUG allows localhost
assert response.status_code == 200, response.status_code
page = response.content.decode()
for screen in ["Dead letters", "Outbox messages", "Messages in progress", "Processed messages"]:
    assert screen in page, screen
"""


def blocks(page: str) -> list[tuple[str, str]]:
    """Return (marker, code) for each code block; every block must have a marker."""
    found = [(m["marker"], m["code"]) for m in BLOCK.finditer(page)]
    assert len(found) == page.count("\n```") // 2, "a code block of the page has no marker"
    return found


def link_distributions(names: list[str], target: Path) -> None:
    """Link each installed distribution's packages and metadata into ``target``."""
    target.mkdir()
    for name in names:
        dist = importlib.metadata.distribution(name)
        tops = {Path(str(f)).parts[0] for f in dist.files or () if not str(f).startswith("..")}
        for top in tops:
            link = target / top
            if not link.exists():
                link.symlink_to(Path(str(dist.locate_file(top))))


@pytest.fixture(scope="module")
def project(wheel, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """Return a fresh Django project beside the wheel, and the environment to run in it."""
    root = tmp_path_factory.mktemp("quickstart")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    (site,) = (venv / "lib").glob("python*/site-packages")
    link_distributions(DJANGO_DISTRIBUTIONS, root / "deps")
    (site / "deps.pth").write_text(f"{root / 'deps'}\n")
    home = root / "mysite"
    home.mkdir()
    (home / "dist").mkdir()
    shutil.copy(wheel, home / "dist" / wheel.name)
    env = {
        "PATH": f"{venv / 'bin'}:{os.environ['PATH']}",
        "HOME": str(root),
        "LANG": "C.UTF-8",
        "PIP_NO_INDEX": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    for command in ["python -m django startproject mysite .", "python manage.py startapp shop"]:
        subprocess.run(command.split(), cwd=home, env=env, check=True)
    return home, env


class Background:
    """The commands started by background blocks, with their output in files."""

    def __init__(self, home: Path, env: dict[str, str]):
        self.home, self.env = home, env
        self.started: list[tuple[subprocess.Popen, Path]] = []
        self.numbers = itertools.count()

    def start(self, command: str) -> None:
        assert "\n" not in command.strip(), "a background block is one command"
        log = self.home / f"background-{next(self.numbers)}.log"
        with log.open("w") as out:
            process = subprocess.Popen(
                ["bash", "-c", f"exec {command.strip()}"],
                cwd=self.home,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.started.append((process, log))

    def output(self) -> str:
        return "\n".join(log.read_text() for _, log in self.started)

    def wait_for(self, text: str) -> None:
        deadline = time.monotonic() + WAIT
        while text not in self.output():
            ended = [p for p, _ in self.started if p.poll() is not None]
            assert not ended and time.monotonic() < deadline, (
                f"{text!r} never came:\n{self.output()[-4000:]}"
            )
            time.sleep(0.1)

    def stop(self) -> None:
        for process, _ in self.started:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        codes = [process.wait(timeout=WAIT) for process, _ in self.started]
        output, self.started = self.output(), []
        assert codes == [0] * len(codes), f"exit codes {codes}:\n{output[-4000:]}"


def test_every_block_of_the_quickstart_runs_in_a_fresh_project(project):
    home, env = project
    background = Background(home, env)
    try:
        for marker, code in blocks(PAGE.read_text()):
            action, _, argument = marker.partition(" ")
            if action == "run":
                result = subprocess.run(
                    ["bash", "-euo", "pipefail", "-c", code],
                    cwd=home,
                    env=env,
                    capture_output=True,
                    text=True,
                )
                assert result.returncode == 0, f"{code}\n{result.stdout}\n{result.stderr}"
            elif action in ("write", "append"):
                with (home / argument).open("w" if action == "write" else "a") as file:
                    file.write(("\n\n" if action == "append" else "") + code)
            elif action == "background":
                background.start(code)
                if argument:
                    background.wait_for(re.fullmatch(r'until "(.*)"', argument)[1])
                    background.stop()
            else:
                pytest.fail(f"unknown quickstart marker {marker!r}")
    finally:
        for process, _ in background.started:
            process.kill()
    admin = subprocess.run(
        ["python", "manage.py", "shell", "-c", ADMIN_CHECK],
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
    )
    assert admin.returncode == 0, f"the admin screens are not there:\n{admin.stderr}"
    where = subprocess.run(
        ["python", "-c", "import kew_django; print(kew_django.__file__)"],
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
    )
    assert "/venv/lib/" in where.stdout, "kew_django must come from the installed wheel"
