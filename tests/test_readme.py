"""The README keeps up with the code: every setting, every CLI command, in the promised order."""

from __future__ import annotations

import argparse
from pathlib import Path

from gateway.cli import _parser
from gateway.settings import Settings

README = (Path(__file__).parent.parent / "README.md").read_text()


def _section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:end]


def test_the_sections_come_in_a_newcomers_order() -> None:
    titles = ["Quick start", "Walkthrough", "Configuration", "CLI", "API reference"]
    positions = [README.index(f"\n## {title}\n") for title in titles]
    assert positions == sorted(positions)
    assert "../shared/" not in README  # a clone carries its own docs
    assert (Path(__file__).parent.parent / "docs" / "architecture.md").is_file()


def test_every_setting_is_documented_with_both_names_and_its_default() -> None:
    table = _section("Configuration")
    for name in Settings.__struct_fields__:
        assert f"| `{name}` | `CONSENTGATE_{name.upper()}` |" in table, name


def test_every_cli_command_is_documented() -> None:
    documented = _section("CLI")

    def commands(parser: argparse.ArgumentParser, prefix: str) -> list[str]:
        found = []
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    found += commands(child, f"{prefix} {name}") or [f"{prefix} {name}"]
        return found

    for command in commands(_parser(), "consentgate"):
        assert command in documented, command


def test_every_cli_option_has_help() -> None:
    def missing(parser: argparse.ArgumentParser, prefix: str) -> list[str]:
        found = []
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    found += missing(child, f"{prefix} {name}")
            elif not action.help:
                found.append(f"{prefix} {action.dest}")
        return found

    assert missing(_parser(), "consentgate") == []
