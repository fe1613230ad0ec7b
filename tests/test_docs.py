"""Every command is documented in the README and has --help with an example."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer.main

from cxlens.cli import app

from conftest import run_cli

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def _commands() -> list[list[str]]:
    group = typer.main.get_command(app)
    out = []
    for name, cmd in group.commands.items():
        sub = getattr(cmd, "commands", None)
        if sub:
            out += [[name, s] for s in sub]
        else:
            out.append([name])
    return out


@pytest.mark.parametrize("command", _commands(), ids=" ".join)
def test_command_is_in_readme_and_has_examples(command: list[str]) -> None:
    assert f"cxlens {' '.join(command)}" in README, f"README does not document `cxlens {' '.join(command)}`"
    res = run_cli(*command, "--help")
    assert res.returncode == 0
    assert "Example" in res.stdout, f"`cxlens {' '.join(command)} --help` shows no example"


def test_readme_opens_with_the_two_commands() -> None:
    head = README[:1500]
    assert "make demo" in head and "make test" in head


def test_version() -> None:
    from cxlens import __version__

    res = run_cli("--version")
    assert res.returncode == 0 and res.stdout.strip() == f"cxlens {__version__}"
