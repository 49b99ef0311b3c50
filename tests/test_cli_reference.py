"""docs/cli.md is what the generator renders from the parser now: a changed flag, help or default fails here."""

import argparse
from pathlib import Path

from gimbench.cli import make_parser
from gimbench.report.cli_reference import cli_reference, subcommands

PAGE = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def test_docs_cli_md_is_what_the_parser_renders():
    rendered = cli_reference(make_parser())
    assert PAGE.read_text() == rendered, "docs/cli.md is stale: run `make docs` and commit docs/cli.md"


def test_the_page_does_not_depend_on_the_terminal_width(monkeypatch):
    monkeypatch.setenv("COLUMNS", "20")
    narrow = cli_reference(make_parser())
    monkeypatch.setenv("COLUMNS", "400")
    assert cli_reference(make_parser()) == narrow


def test_every_subcommand_and_option_has_its_help_and_default_on_the_page():
    parser = make_parser()
    page = cli_reference(parser)
    commands = subcommands(parser)
    assert {p.prog for p, _ in commands} >= {"gimbench run", "gimbench sweep", "gimbench data check"}
    for sub, _ in commands:
        section = page.split(f"## `{sub.prog}`\n", 1)[1].split("\n## ", 1)[0]
        assert f"```\n{sub.prog} [-h]" in section
        for action in sub._actions:
            if action.option_strings and action.dest != "help" and action.help != argparse.SUPPRESS:
                row = next(line for line in section.splitlines() if line.startswith(f"| `{action.option_strings[0]}"))
                assert row.count(" | ") == 2 and not row.endswith("|  |"), row
    run = page.split("## `gimbench run`\n", 1)[1].split("\n## ", 1)[0]
    row = next(line for line in run.splitlines() if line.startswith("| `--profile-steps"))
    assert row.endswith("| `50` |"), row  # the code's default, which the README once gave as 10
