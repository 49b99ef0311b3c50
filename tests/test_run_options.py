"""The run options: built from RunConfig's field metadata, and one way to tell which were given."""

from __future__ import annotations

import argparse

import pytest

from gimbench.cli import config_from_args, given_options, main, make_parser
from gimbench.config import GROUPS, RunConfig, choices, flag, flagged_fields
from gimbench.report.cli_reference import subcommands
from gimbench.sweep.compare import VARIED as SET_BY_COMPARE

FIELDS = flagged_fields()


def command(name: str) -> argparse.ArgumentParser:
    return next(p for p, _ in subcommands(make_parser()) if p.prog == f"gimbench {name}")


@pytest.mark.parametrize("name", ["run", "sweep", "table", "compare"])
def test_every_field_is_a_flag_in_its_group_with_its_choices(name):
    parser = command(name)
    group_of = {a.dest: g.title for g in parser._action_groups for a in g._group_actions}
    actions = {a.dest: a for a in parser._actions if a.dest in group_of}
    for field in FIELDS:
        action = actions[field.name]
        assert action.option_strings == [flag(field.name)] and group_of[field.name] == field.metadata["group"]
        assert group_of[field.name] in GROUPS
        if name != "sweep":  # a sweep checks each item of a comma list itself (tests/test_sweep.py)
            assert action.choices == choices(field)
        if action.help == argparse.SUPPRESS:  # compare hides the options its rows set (it refuses them)
            assert name == "compare" and field.name in SET_BY_COMPARE
            continue
        assert f"(default{':' if field.default is None or isinstance(field.default, bool) else ''} " in action.help


def test_the_parsed_command_line_holds_only_the_options_given():
    args = make_parser().parse_args(["run", "--seed", "0", "--no-probe", "--model", "gim"])
    assert given_options(args) == {"seed": 0, "probe": False, "model": "gim"}
    assert config_from_args(args) == RunConfig(probe=False)
    assert config_from_args(make_parser().parse_args(["run"])) == RunConfig()


@pytest.mark.parametrize("kind", ["sweep", "compare"])
def test_resume_refuses_an_option_given_at_its_default_value(kind, tmp_path, capsys):
    assert main([kind, "--resume", str(tmp_path), "--seed", "0", "--quiet"]) == 2
    assert capsys.readouterr().err == (f"gimbench: error: {kind} --resume continues a {kind} with its recorded "
                                       "options; --seed cannot be given (only --quiet)\n")


def test_table_refuses_no_probe_by_its_flag(capsys):
    assert main(["table", "--no-probe"]) == 2
    assert capsys.readouterr().err.startswith("gimbench: error: --no-probe does not apply: gimbench table probes")
