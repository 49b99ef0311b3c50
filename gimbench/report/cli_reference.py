"""The CLI reference page (docs/cli.md), rendered from the argparse parser so the page cannot drift from the flags.

Everything is read from the parser's actions and written by this module (no argparse help formatter), so the
page does not depend on the terminal's width or on the Python version's help layout. ``make docs`` rewrites
the page; ``tests/test_cli_reference.py`` fails when it differs from what this module renders now.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from pathlib import Path

from gimbench.config import RunConfig

WIDTH = 100  # usage lines are wrapped at this many columns
RUN_DEFAULTS = {f.name: f.default for f in dataclasses.fields(RunConfig)}
HEADER = "<!-- Generated from gimbench/cli.py by `make docs` (gimbench/report/cli_reference.py); do not edit. -->"


def subcommands(parser: argparse.ArgumentParser) -> list[tuple[argparse.ArgumentParser, str]]:
    """Every (sub)command parser under ``parser``, depth first, with its one-line help."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, sub in action.choices.items():
                found.append((sub, helps.get(name, "")))
                found.extend(subcommands(sub))
    return found


def metavar(action: argparse.Action) -> str:
    if action.metavar is not None:
        return action.metavar if isinstance(action.metavar, str) else " ".join(action.metavar)
    if action.choices is not None and not isinstance(action, argparse._SubParsersAction):
        return "{" + ",".join(map(str, action.choices)) + "}"
    return action.dest if not action.option_strings else action.dest.upper()


def invocation(action: argparse.Action, first_flag: bool = False) -> str:
    """How the option is written: ``--model {cpc,gim}``, ``-h, --help``, ``FOLDER [FOLDER ...]`` (``-h`` with
    ``first_flag``, as in a usage line)."""
    if isinstance(action, argparse._SubParsersAction):
        return "{" + ",".join(action.choices) + "}"
    m = metavar(action)
    value = {None: m, "?": f"[{m}]", "*": f"[{m} ...]", "+": f"{m} [{m} ...]"}.get(action.nargs, m)
    if not action.option_strings:
        return value
    flags = action.option_strings[0] if first_flag else ", ".join(action.option_strings)
    return flags if action.nargs == 0 else f"{flags} {value}"


def usage(parser: argparse.ArgumentParser) -> str:
    """A usage line wrapped at ``WIDTH`` columns: optional flags in brackets, then positionals."""
    shown = [a for a in parser._actions if a.help != argparse.SUPPRESS]
    optional = [invocation(a, True) if a.required else f"[{invocation(a, True)}]" for a in shown if a.option_strings]
    words = optional + [invocation(a) for a in shown if not a.option_strings]
    lines, line = [], parser.prog
    indent = " " * (len(parser.prog) + 1)
    for word in words:
        if len(line) + 1 + len(word) > WIDTH and line.strip():
            lines.append(line)
            line = indent + word
        else:
            line = f"{line} {word}"
    return "\n".join([*lines, line])


def default(action: argparse.Action) -> str:
    """The default column: the parser's, or for a run option (whose parser leaves it to ``RunConfig``) the field's."""
    if not action.option_strings or action.required:
        return "required"
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        return "off"
    if isinstance(action, argparse._VersionAction):
        return "-"
    value = action.default
    if value is argparse.SUPPRESS:
        value = RUN_DEFAULTS.get(action.dest)
    return "none" if value is None else f"`{value}`"


def inline(text: str) -> str:
    """``text`` for a markdown table cell: pipes and angle brackets escaped outside code spans."""
    parts = text.split("`")
    for i in range(0, len(parts), 2):
        parts[i] = parts[i].replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts).replace("\n", " ")


def expanded_help(action: argparse.Action, prog: str) -> str:
    if not action.help:
        return ""
    params = {k: v for k, v in vars(action).items() if v is not argparse.SUPPRESS}
    return re.sub(r"\s+", " ", action.help % dict(params, prog=prog))


def options_section(parser: argparse.ArgumentParser) -> list[str]:
    out = []
    for group in parser._action_groups:
        actions = [a for a in group._group_actions if a.help != argparse.SUPPRESS
                   and not isinstance(a, (argparse._SubParsersAction, argparse._HelpAction))]
        if not actions:
            continue
        out += ["", f"**{group.title}**", "", "| option | help | default |", "| --- | --- | --- |"]
        for a in actions:
            out.append(f"| `{invocation(a)}` | {inline(expanded_help(a, parser.prog))} | {default(a)} |")
    return out


def command_section(parser: argparse.ArgumentParser, help_line: str) -> list[str]:
    anchor = parser.prog
    out = ["", f"## `{anchor}`", ""]
    if help_line:
        out += [inline(help_line[0].upper() + help_line[1:]) + ".", ""]
    if parser.description:
        out += [inline(parser.description), ""]
    out += ["```", usage(parser), "```"]
    out += options_section(parser)
    return out


def cli_reference(parser: argparse.ArgumentParser) -> str:
    """docs/cli.md: the top-level usage, then every subcommand's usage and option groups (help, default)."""
    commands = subcommands(parser)
    out = [HEADER, "", "# The command line", "", "[Back to the README](../README.md)", ""]
    if parser.description:
        out += [inline(parser.description), ""]
    out += ["Every option of every subcommand, with its help and its default, as `gimbench <command> --help`",
            "shows them. \"off\" is a switch not given; \"none\" means the option has no fixed default (its help",
            "says what is used instead).", "", "```", usage(parser), "```", "", "| command | what it does |",
            "| --- | --- |"]
    for sub, help_line in commands:
        slug = re.sub(r"[^a-z0-9 -]", "", f"`{sub.prog}`".lower()).replace(" ", "-")
        out.append(f"| [`{sub.prog}`](#{slug}) | {inline(help_line)} |")
    out += options_section(parser)
    for sub, help_line in commands:
        out += command_section(sub, help_line)
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Write the page to the path given (``make docs``: docs/cli.md), or print it."""
    from gimbench.cli import make_parser
    from gimbench.results.atomic import write_atomic

    argv = sys.argv[1:] if argv is None else argv
    page = cli_reference(make_parser())
    if argv:
        write_atomic(Path(argv[0]), lambda f: f.write(page.encode()))
    else:
        print(page, end="")


if __name__ == "__main__":
    main()
