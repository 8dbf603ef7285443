"""Every ``farm[...]`` extra a command's help names shows literally in ``--help``: Typer renders
help as rich markup, where a bare ``[monitor]`` is a style tag and vanishes ("needs farm").
Every command of the real CLI, in process with Typer's CliRunner, and `farm flower --help` once
as a real subprocess; and `farm up`'s line for a host without Flower, printed through rich too."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import typer
from typer.testing import CliRunner

from farm.cli import app

ROOT = Path(__file__).resolve().parents[3]
# farm[monitor] as a user reads it; farm\[monitor] as rich markup needs it written in the source.
EXTRA = re.compile(r"farm\\?\[([A-Za-z0-9_,\-]+)\]")


def commands() -> Iterator[tuple[list[str], typer.core.TyperCommand | typer.core.TyperGroup]]:
    """Every command and group of the CLI, by its path of names under `farm`."""
    stack: list[tuple[list[str], typer.core.TyperCommand | typer.core.TyperGroup]] = [
        ([], typer.main.get_command(app))
    ]
    while stack:
        path, command = stack.pop()
        yield path, command
        for name, sub in getattr(command, "commands", {}).items():
            stack.append(([*path, name], sub))


def extras_in(*texts: str | None) -> set[str]:
    return {f"farm[{name}]" for text in texts for name in EXTRA.findall(text or "")}


def shown(output: str) -> str:
    """The help without layout: wrapping and the panels' borders may fall anywhere in a sentence."""
    return re.sub(r"[\s│╭╮╰╯─]+", "", output)


def test_every_extra_named_in_any_commands_help_shows_literally() -> None:
    runner = CliRunner()
    expected_somewhere: set[str] = set()
    for path, command in commands():
        own = extras_in(command.help, *(getattr(param, "help", None) for param in command.params))
        # A group lists its commands with the first paragraph of their help.
        listed = extras_in(
            *((sub.help or "").split("\n\n")[0] for sub in getattr(command, "commands", {}).values())
        )
        expected_somewhere |= own
        result = runner.invoke(app, [*path, "--help"], prog_name="farm")
        assert result.exit_code == 0, (path, result.output)
        for extra in own | listed:
            where = " ".join(["farm", *path, "--help"])
            assert extra in shown(result.output), f"`{where}` lost {extra}:\n{result.output}"
    assert "farm[monitor]" in expected_somewhere  # `farm flower` names its extra: the test checks something


def test_farm_flower_help_names_its_extra() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "farm", "flower", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "farm[monitor]" in shown(result.stdout), result.stdout


def test_farm_up_without_flower_names_the_extra_to_install(tmp_path: Path) -> None:
    """Flower not installed, as importlib sees a module that is absent (sys.modules[name] = None)."""
    probe = (
        "import sys; sys.modules['flower'] = None\n"
        "from farm.cli.cluster import _start_flower\n"
        "from farm.client.cluster import LocalFarm\n"
        "from farm.core.settings import FarmSettings\n"
        f"_start_flower(LocalFarm(FarmSettings(home={str(tmp_path)!r})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "pip install 'farm[monitor]' for the dashboard" in result.stdout, result.stdout
