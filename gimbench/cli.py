"""Command-line front: a thin layer over ``gimbench.runs.run`` and the registries."""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import functools
import os
import re
import signal
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from gimbench import __version__
from gimbench.config import (
    DEVICES,
    GROUPS,
    ConfigError,
    RunConfig,
    choices,
    config_from,
    flag,
    flagged_fields,
    known_options,
    modality_of,
    resolve,
)
from gimbench.data import DATASETS
from gimbench.data.check import CHECKS, check_dataset
from gimbench.data.problems import DataError
from gimbench.distributed.engine import ENGINES
from gimbench.distributed.runtime import PeerLost
from gimbench.distributed.world import world_from_env
from gimbench.models import MODALITIES, NETWORKS, REFERENCE_DEPTH, NetworkEntry
from gimbench.models.presets import PRESETS
from gimbench.report import headline
from gimbench.report.benchcompare import bench_memory_table, compare, failure_line, load_memory, parse_percent
from gimbench.report.collect import collect, result_from_doc
from gimbench.report.html_tables import side_by_side
from gimbench.report.progress import TrainingProgress
from gimbench.report.terminal import paper_table, probe_table, run_summary
from gimbench.results.atomic import WriteError
from gimbench.results.schema import RunResult
from gimbench.runs.failures import RunEnded
from gimbench.runs.launch import launch
from gimbench.runs.resume import RESUME_REFUSED, resume
from gimbench.runs.run import probe_saved_run, run
from gimbench.runs.stopping import SIGNALS as STOP_SIGNALS
from gimbench.runs.stopping import ended_by
from gimbench.runs.table import build_table, not_for_table
from gimbench.strategies import STRATEGIES
from gimbench.sweep.compare import ROUNDS as COMPARE_ROUNDS
from gimbench.sweep.compare import VARIED as SET_BY_COMPARE
from gimbench.sweep.compare import configurations as compare_configurations
from gimbench.sweep.compare import refused as refused_by_compare
from gimbench.sweep.grid import Configuration, accept_lists, configurations, validate
from gimbench.sweep.progress import SweepProgress
from gimbench.sweep.runner import made_by, read_sweep, resume_sweep, run_sweep

# The parse type of a run option's value, by its field's annotation (text and switches need none).
VALUE_TYPES = {"int": int, "int | None": int, "float | None": float}


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line and exit 2, never a usage dump or a traceback."""

    def error(self, message: str) -> None:  # type: ignore[override]
        value = re.search(r"invalid (?:choice|\w+ value): '([^']*)'", message)
        if self.prog.endswith(" run") and value and "," in value.group(1):
            message += "; gimbench run takes one value: gimbench sweep runs every value of a comma list"
        sys.stderr.write(f"gimbench: error: {message}\n")
        sys.exit(2)

    def parse_args(self, args=None, namespace=None) -> argparse.Namespace:  # type: ignore[override]
        """As argparse's, but an unknown flag is refused by the command's own parser, with the nearest of its
        flags (``did you mean --steps?``)."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            parser = command_parser(self, parsed)
            parser.error(f"unrecognized arguments: {' '.join(extras)}{did_you_mean(parser, extras)}")
        return parsed


def command_parser(parser: argparse.ArgumentParser, parsed: argparse.Namespace) -> argparse.ArgumentParser:
    """The (sub)command's parser that ``parsed`` came from: ``gimbench data check``'s for that command."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and getattr(parsed, action.dest, None) in action.choices:
            return command_parser(action.choices[getattr(parsed, action.dest)], parsed)
    return parser


def did_you_mean(parser: argparse.ArgumentParser, extras: list[str]) -> str:
    """``; did you mean --steps?`` for the first unknown flag close to one of ``parser``'s, else nothing."""
    known = [o for o in parser._option_string_actions if o.startswith("--")]
    for word in extras:
        close = difflib.get_close_matches(word.split("=")[0], known, n=1) if word.startswith("-") else []
        if close:
            return f"; did you mean {close[0]}?"
    return ""


def help_text(field: dataclasses.Field) -> str:
    """A run option's help with its default: the value and what it means, or the words for one that has no value."""
    note, value = field.metadata["note"], field.default
    if value is None or isinstance(value, bool):
        return f"{field.metadata['help']} (default: {note or 'off'})"
    return f"{field.metadata['help']} (default {value}{f': {note}' if note else ''})"


def add_run_options(p: argparse.ArgumentParser) -> dict[str, argparse._ArgumentGroup]:
    """Every ``RunConfig`` field as a flag, read from its metadata, in its group (the groups returned by name).

    The parser holds no defaults (``SUPPRESS``): the parsed namespace has exactly the options given, and
    ``RunConfig`` fills in the rest, so its defaults are the only ones. Flags are added in field order (a sweep's
    product, and so its run numbering, follows it); the groups only arrange the help.
    """
    groups = {name: p.add_argument_group(name) for name in GROUPS}
    for field in flagged_fields():
        options: dict = {"dest": field.name, "default": argparse.SUPPRESS, "help": help_text(field)}
        if isinstance(field.default, bool):
            options["action"] = "store_false" if field.default else "store_true"
        else:
            options |= {"type": VALUE_TYPES.get(field.type), "choices": choices(field),
                        "metavar": field.metadata["metavar"]}
        groups[field.metadata["group"]].add_argument(flag(field.name), **options)
    return groups


def make_parser() -> Parser:
    parser = Parser(prog="gimbench", description="Greedy InfoMax vs end-to-end CPC: memory, time, accuracy.")
    parser.add_argument("--version", action="version", version=f"gimbench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    run_parser = sub.add_parser("run", help="train one configuration and report it")
    add_run_options(run_parser)["recovery"].add_argument("--resume", metavar="FOLDER", default=None,
                            help="continue the run in FOLDER from its newest checkpoint (--steps TOTAL extends it)")
    sub.add_parser("list", help="list every registry: models, their variants (gim modes, pipelines), networks, "
                   "engines, datasets and presets")
    probe = sub.add_parser("probe", help="re-run the linear probes of a saved run from its checkpoint")
    probe.add_argument("folder", help="a run folder (holding results.json and checkpoint.pt)")
    probe.add_argument("--device", choices=DEVICES, default="auto", help="where to extract features")
    probe.add_argument("--quiet", action="store_true", help="no progress, only the table")
    probe.add_argument("--checkpoint", choices=("latest", "prev"), default="latest",
                       help="latest: checkpoint.pt, only if it holds the step results.json describes; prev: "
                            "checkpoint.prev.pt, whatever its step (results.json records which, probe_checkpoint)")
    table = sub.add_parser("table", help="train every method on the same data and compare probe accuracy")
    add_run_options(table)
    action_of(table, "--out").help = "the table's folder (default reports/tables/<UTC time>-<modality>)"
    table.set_defaults(out=None)
    data = sub.add_parser("data", help="real datasets on disk").add_subparsers(dest="action", required=True,
                                                                              parser_class=Parser)
    check = data.add_parser("check", help="validate a dataset folder and summarise it (nothing is downloaded)")
    check.add_argument("--data", choices=sorted(CHECKS), required=True, help="which dataset")
    check.add_argument("--data-root", required=True, help="the folder holding it (as for gimbench run)")
    add_sweep_parser(sub)
    add_compare_parser(sub)
    add_report_parser(sub)
    add_headline_parser(sub)
    compare = sub.add_parser("bench-compare", help="fail when memory peaks grew between two benchmark JSON files")
    compare.add_argument("old", help="saved 'pytest benchmarks/ --benchmark-json' output (the baseline)")
    compare.add_argument("new", help="the new output to check")
    compare.add_argument("--max-increase", default="10%",
                         help="allowed growth of any step or module peak (default 10%%)")
    return parser


def action_of(parser: argparse.ArgumentParser, flag: str) -> argparse.Action:
    """The action of ``flag`` in ``parser``."""
    return next(a for a in parser._actions if flag in a.option_strings)


def add_sweep_parser(sub) -> None:
    sweep = sub.add_parser("sweep", help="run every combination of comma-listed run options, each in a fresh process")
    add_run_options(sweep)
    action_of(sweep, "--out").help = "the sweep folder (default reports/sweeps/<--name or UTC time>)"
    action_of(sweep, "--name").help = "the sweep folder's name under reports/sweeps (default: UTC time)"
    # --out and --name are the sweep folder's own: None where not given, not a run's default.
    sweep.set_defaults(out=None, name=None, run_options=accept_lists(sweep))
    sweep.add_argument("--resume", metavar="FOLDER", default=None,
                       help="continue the sweep in FOLDER with its recorded options: runs not complete are resumed "
                            "from their checkpoints or run again (only --quiet may be given with it)")
    sweep.description = ("--out is the sweep folder (default reports/sweeps/<--name or UTC time>); --overwrite "
                         "reuses an existing one; --quiet hides the sweep's progress (runs are always quiet).")


def add_compare_parser(sub) -> None:
    compare = sub.add_parser("compare", help="cpc, cpc with checkpointing or accumulation, and gim at several "
                                             "--modules on one setting, each in a fresh process; then their report")
    add_run_options(compare)
    action_of(compare, "--out").help = "the comparison's folder (default reports/compare/<--name or UTC time-modality>)"
    action_of(compare, "--name").help = "the folder's name under reports/compare (default: UTC time and modality)"
    compare.set_defaults(out=None, name=None)  # the comparison folder's own, as a sweep's
    compare.add_argument("--resume", metavar="FOLDER", default=None,
                         help="continue the comparison in FOLDER with its recorded options: rows not complete are "
                              "resumed from their checkpoints or run again, then the report is rewritten (only "
                              "--quiet may be given with it)")
    compare.add_argument("--rounds", type=positive, default=None, metavar="N",
                         help="run the rows N times, every other round in reverse order, so that a load change "
                              "cannot favour one row; the rounds after the first time the rows only (no probes, no "
                              "memory-tracked steps); the report combines a row's rounds (default 2; 1: one pass)")
    compare.add_argument("--rows", type=comma_list, default=None, metavar="LABELS",
                         help="only these rows, comma-separated labels as the folder names them (cpc among them), "
                              "e.g. cpc,cpc-accumulate4,gim-modules6 (default: every row)")
    for dest in SET_BY_COMPARE:  # the rows set them: refused in one line, so not offered in --help
        action_of(compare, flag(dest)).help = argparse.SUPPRESS
    compare.description = ("Rows: cpc, cpc --checkpoint-activations, cpc --accumulate 2 and 4, gim --modules 2, 3 "
                           "and one per layer, cpc and gim at bf16 and with sgd; every other run option is passed "
                           "to every row (docs/compare.md).")


def comma_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def positive(text: str) -> int:
    """A whole number from 1 up (argparse's error names the flag otherwise)."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 1 up")
    return int(text)


def add_report_parser(sub) -> None:
    report = sub.add_parser("report", help="show run and sweep folders side by side; write an HTML report")
    report.add_argument("folders", nargs="+", metavar="FOLDER",
                        help="run folders, sweep folders, or folders of run folders (such as reports/runs)")
    report.add_argument("--out", default=None, help="report folder (default reports/report-<UTC time>)")
    report.add_argument("--overwrite", action="store_true", help="replace an existing report folder")
    report.add_argument("--details", action="store_true", help="also print every run's module tables")


def add_headline_parser(sub) -> None:
    headline = sub.add_parser("headline", help="the README's headline figure and table from comparison folders")
    headline.add_argument("folders", nargs="+", metavar="FOLDER",
                          help="comparison folders (gimbench compare --out), e.g. one audio and one vision; "
                               "folders of one modality at several batch sizes draw peak against batch size")
    headline.add_argument("--out", required=True, metavar="FILE", help="the figure, .png or .svg (e.g. "
                          "docs/headline.png)")
    headline.add_argument("--accuracy", nargs="+", metavar="FOLDER", default=None,
                          help="comparison folders with probes (tiny preset, trained long enough) whose last-module "
                               "accuracy is drawn beside the rows of the same modality that ran none")
    headline.add_argument("--readme", metavar="FILE", default=None,
                          help="write the figure's link, the table and the provenance between the headline "
                               "markers of this markdown file (e.g. README.md); without it they are printed")
    headline.description = ("Each row's step peak and step time against cpc per setting, probe accuracy beside "
                            "them where probes ran, and the same figures as a markdown table (docs/compare.md).")


def given_options(args: argparse.Namespace) -> dict:
    """The run options the command line gave, by ``RunConfig`` field: the parsers hold no defaults for them
    (``add_run_options``), so the parsed namespace has only these. The one way every command tells them."""
    return known_options(vars(args))


def option_value(args: argparse.Namespace, name: str) -> object:
    """A run option's value: as given, else ``RunConfig``'s default (for what a sweep or comparison reads itself)."""
    return given_options(args).get(name, getattr(RunConfig, name))


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The RunConfig the parsed flags describe: the options given, ``RunConfig``'s defaults for the rest."""
    return config_from(given_options(args))


def resolve_for_launch(cfg: RunConfig) -> RunConfig:
    """``cfg`` resolved for the processes it asks for (``--nproc``), as the launcher will start them."""
    return resolve(cfg, cfg.nproc)


def with_progress(console: Console, quiet: bool, call: Callable[..., RunResult], resuming: bool = False) -> RunResult:
    """``call(on_start=, on_step=, on_probe=)`` (``run`` or ``resume``) with a training bar and a probe bar."""
    progress = TrainingProgress(console, 0, enabled=not quiet)

    def started(resolved: RunConfig, folder: Path) -> None:
        progress.set_total(resolved.steps)
        if not resolved.quiet:
            console.print(f"{resolved.model} · preset [bold]{resolved.preset}[/] on {resolved.device} · "
                          f"{'resuming' if resuming else 'run folder'} {folder}", highlight=False)

    with progress:
        return call(on_start=started, on_step=progress, on_probe=progress.probing, on_probes=progress.set_probes)


def run_with_progress(cfg: RunConfig, console: Console) -> RunResult:
    """``run`` with a training bar and a probe bar (neither with --quiet), and a line per batch size tried."""

    def tried(t) -> None:
        if not cfg.quiet:
            console.print(str(t), style="dim", highlight=False)

    return with_progress(console, cfg.quiet, functools.partial(run, cfg, on_try=tried))


def probe_progress(console: Console, quiet: bool):
    def show(task: str, module: int) -> None:
        if not quiet:
            console.print(f"probe {task} on module {module}", style="dim", highlight=False)

    return show


def cmd_run(args: argparse.Namespace, console: Console, argv: list[str]) -> int:
    cfg = config_from_args(args)
    if cfg.nproc > 1 and not world_from_env().distributed:
        if args.resume is not None:
            raise ConfigError(RESUME_REFUSED)
        return launch(cfg, argv)
    if args.resume is None:
        console.print(run_summary(run_with_progress(cfg, console)))
        return 0
    call = functools.partial(resume, Path(args.resume), **given_options(args))
    console.print(run_summary(with_progress(console, cfg.quiet, call, resuming=True)))
    return 0


def cmd_probe(args: argparse.Namespace, console: Console) -> int:
    doc = probe_saved_run(Path(args.folder), device=args.device, on_probe=probe_progress(console, args.quiet),
                          which=args.checkpoint)
    console.print(probe_table(doc["probe"], [m["name"] for m in doc["modules"]]))
    console.print(f"updated {Path(args.folder) / 'results.json'}", style="dim", highlight=False)
    return 0


def cmd_table(args: argparse.Namespace, console: Console) -> int:
    given = given_options(args)
    out = given.pop("out")  # the table's folder, not its runs'
    refused = not_for_table(given)
    if refused:
        raise ConfigError(refused)
    document, folder = build_table(RunConfig(**given), out=out, run_one=lambda cfg: run_with_progress(cfg, console))
    console.print(paper_table(document))
    console.print(f"table: {folder / 'table.json'}", highlight=False)
    return 0


def cmd_data(args: argparse.Namespace, console: Console) -> int:
    try:
        report = check_dataset(args.data, args.data_root)
    except DataError as e:  # the expected layout here, above the one-line error
        if e.layout:
            console.print(e.layout, markup=False, highlight=False)
        raise
    console.print(report)
    return 0


def cmd_sweep(args: argparse.Namespace, console: Console, command: list[str]) -> int:
    if args.resume is not None:
        return cmd_resume(args, console)
    configs, swept = configurations(args, args.run_options)
    validate(configs, lambda values: resolve_for_launch(config_from(values)))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    folder = Path(args.out) if args.out else Path("reports/sweeps") / (args.name or stamp)
    with SweepProgress(console, len(configs), enabled=not option_value(args, "quiet")) as progress:
        document = run_sweep(configs, folder, swept=swept, command=command, overwrite=option_value(args, "overwrite"),
                             on_start=progress.on_start, on_done=progress.on_done)
    return sweep_ended(document, folder, console)


def compare_rows(args: argparse.Namespace) -> list[Configuration]:
    """The rows of ``gimbench compare``, given its parsed ``args``."""
    given = given_options(args)
    if refused_by_compare(given.keys()):
        raise ConfigError(refused_by_compare(given.keys()))
    base = RunConfig(**given | {"out": RunConfig.out}).to_dict()  # --out is the comparison's folder
    depth = resolve_for_launch(RunConfig(**base)).depth
    configs = compare_configurations(base, given.keys(), depth, args.rounds or COMPARE_ROUNDS, args.rows)
    validate(configs, lambda values: resolve_for_launch(config_from(values)))
    return configs


def cmd_compare(args: argparse.Namespace, console: Console, argv: list[str]) -> int:
    if args.resume is not None:
        return cmd_resume(args, console)
    configs = compare_rows(args)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    modality = modality_of(config_from_args(args))
    folder = Path(args.out) if args.out else Path("reports/compare") / (args.name or f"{stamp}-{modality}")
    # The rounds are written into the recorded command, so --resume holds them whatever the default becomes.
    rounds = [] if args.rounds else ["--rounds", str(COMPARE_ROUNDS)]
    with SweepProgress(console, len(configs), enabled=not option_value(args, "quiet")) as progress:
        document = run_sweep(configs, folder, swept={"row": [c.label for c in configs]},
                             command=["gimbench", *argv, *rounds],
                             overwrite=option_value(args, "overwrite"), on_start=progress.on_start,
                             on_done=progress.on_done)
    return sweep_ended(document, folder, console)


def cmd_resume(args: argparse.Namespace, console: Console) -> int:
    """``gimbench sweep|compare --resume FOLDER``: the recorded configurations, those not complete run now; any
    other option but ``--quiet`` is refused (the recorded ones hold)."""
    kind = args.command
    changed = [flag(d) for d, value in given_options(args).items()
               if d != "quiet" and value is not None]  # --out and --name are None where not given
    changed += [f"--{o}" for o in ("rounds", "rows") if getattr(args, o, None) is not None]
    if changed:
        raise ConfigError(f"{kind} --resume continues a {kind} with its recorded options; {', '.join(changed)} "
                          "cannot be given (only --quiet)")
    folder = Path(args.resume)
    if not folder.is_dir():
        raise ConfigError(f"--resume {folder}: no such {kind} folder")
    document = read_sweep(folder)
    recorded = document.get("command") or []
    if recorded[1:2] != [kind]:
        other = f": gimbench {made_by(document)} --resume continues it" if recorded[1:2] in (["sweep"], ["compare"]) \
            else ""
        raise ConfigError(f"{folder}/sweep.json records no gimbench {kind} command to continue{other}")
    parsed = make_parser().parse_args(recorded[1:])
    if kind == "compare" and parsed.rounds is None:  # recorded before the rounds were written out: one round then
        parsed.rounds = 1
    configs = configurations(parsed, parsed.run_options)[0] if kind == "sweep" else compare_rows(parsed)
    with SweepProgress(console, len(configs), enabled=not option_value(args, "quiet")) as progress:
        progress.done = sum(r["status"] == "complete" for r in document["runs"])
        document = resume_sweep(configs, folder, document, on_start=progress.on_start, on_done=progress.on_done)
    return sweep_ended(document, folder, console)


def sweep_ended(document: dict, folder: Path, console: Console) -> int:
    """Print the sweep's runs side by side (a comparison also writes their report into ``report/``); its exit
    status (128 + the signal that stopped it, if one did)."""
    entries, sweeps = collect([folder])
    console.print(side_by_side(entries, sweeps))
    if made_by(document) == "compare":
        from gimbench.report.export import report_folder, write_report  # matplotlib: ~1 s, for reports only

        report = write_report(entries, sweeps, report_folder(str(folder / "report"), overwrite=True), [str(folder)])
        console.print(f"report: {report}", highlight=False)
    console.print(f"sweep: {folder / 'sweep.json'}", highlight=False)
    if document["status"] == "interrupted":
        sys.stderr.write(f"gimbench: {made_by(document)} interrupted by {document['signal']}; continue it with: "
                         f"{document['resume_command']}\n")
        return 128 + signal.Signals[document["signal"]]
    return 0 if all(r["status"] == "complete" for r in document["runs"]) else 1


def cmd_report(args: argparse.Namespace, console: Console) -> int:
    from gimbench.report.export import report_folder, write_report  # matplotlib: ~1 s, for reports only

    entries, sweeps = collect(args.folders)
    folder = report_folder(args.out, args.overwrite)
    console.print(side_by_side(entries, sweeps))
    if args.details:
        for entry in entries:
            if entry.doc:
                console.print(run_summary(result_from_doc(entry.doc, entry.folder)))
    console.print(f"report: {write_report(entries, sweeps, folder, args.folders)}", highlight=False)
    return 0


def cmd_headline(args: argparse.Namespace, console: Console) -> int:
    from gimbench.report.headline_plot import figure, save  # matplotlib: ~1 s, for figures only

    entries, sweeps = collect(args.folders)
    probed, probed_sweeps = collect(args.accuracy) if args.accuracy else ([], [])
    shown = headline.Headline(headline.settings(entries), headline.settings(probed) if probed else [])
    out, page = Path(args.out), Path(args.readme or "README.md")
    around = headline.around_markers(page) if args.readme else None
    save(figure(shown), out)
    text = headline.block(shown, sweeps + probed_sweeps, out, page)
    if around:
        headline.splice(page, around, text)
    else:
        console.print(text, markup=False, highlight=False, soft_wrap=True)
    short = headline.short_rows(shown.found)
    if short:
        console.print(f"note: under {headline.MIN_TIMED} timed steps, so their time ratios are provisional: "
                      f"{'; '.join(short)}", style="yellow", highlight=False)
    console.print(f"figure: {out}" + (f"; headline written into {page}" if args.readme else ""), highlight=False)
    return 0


def cmd_bench_compare(args: argparse.Namespace, console: Console) -> int:
    limit = parse_percent(args.max_increase)
    old, new = load_memory(Path(args.old)), load_memory(Path(args.new))
    rows = compare(old, new, limit)
    console.print(bench_memory_table(rows, next(iter(new.values()))["memory_backend"]))
    for side, names in (("old", old.keys() - new.keys()), ("new", new.keys() - old.keys())):
        if names:
            console.print(f"only in the {side} file, not compared: "
                          f"{', '.join(sorted(n.split('::')[-1] for n in names))}", style="dim", markup=False,
                          highlight=False)
    line = failure_line(rows)
    if line:
        sys.stderr.write(f"gimbench: {line}\n")
    return 1 if line else 0


def network_sizes(network: NetworkEntry) -> str:
    """A network's depth and input at the paper preset, and at tiny where they differ."""
    sizes = {p: (network.reference_at(p), "x".join(map(str, network.input_of(p)))) for p in ("paper", "tiny")}
    text = f"reference depth {sizes['paper'][0]}, input {sizes['paper'][1]}"
    return text if sizes["tiny"] == sizes["paper"] else f"{text} (tiny: {sizes['tiny'][0]}, {sizes['tiny'][1]})"


def engine_runs(engine: str) -> str:
    """The runs ``engine`` trains under torchrun, by the flags that pick them (from the methods' descriptions)."""
    runs = []
    for model, method in sorted(STRATEGIES.items()):
        names = [name for name, spec in method.variants.items() if spec.engine == engine]
        if len(names) == len(method.variants):
            runs.append(f"--model {model}")
        elif names:
            runs.append(f"--model {model} {flag(method.choice)} {' or '.join(names)}")
    return ", ".join(runs)


def cmd_list(console: Console) -> int:
    table = Table(title="gimbench registries", title_justify="left")
    table.add_column("registry")
    table.add_column("name")
    table.add_column("what")
    for name, strategy in sorted(STRATEGIES.items()):
        table.add_row("model", name, strategy.description)
    for name in MODALITIES:
        table.add_row("modality", name, f"reference depth {REFERENCE_DEPTH[name]}")
    for name, network in sorted(NETWORKS.items()):
        table.add_row("network", name, f"{network.modality}, {network_sizes(network)}: {network.description}")
    for _, method in sorted(STRATEGIES.items()):
        for name, spec in method.variants.items() if method.choice else ():
            table.add_row(method.choice.replace("_", " "), name, spec.description)  # "gim mode", "pipeline"
    for name in sorted(ENGINES):
        table.add_row("engine", name, f"under torchrun (--nproc), trains {engine_runs(name)}")
    for name in sorted(DATASETS):
        table.add_row("dataset", name, DATASETS[name].description)
    for name, specs in PRESETS.items():
        a, v = specs["audio"], specs["vision"]
        table.add_row("preset", name, f"audio {a.channels} ch, GRU {a.hidden}, crop {a.crop_samples}; "
                      f"vision widths {v.widths}, batch {a.batch_size}/{v.batch_size}")
    console.print(table)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = make_parser().parse_args(argv)
    main_rank = world_from_env().is_main  # under torchrun only rank 0 prints (another rank's failure aside)
    # Piped output is 160 wide unless COLUMNS says otherwise (rich reads COLUMNS itself).
    wide = sys.stdout.isatty() or os.environ.get("COLUMNS", "").isdigit()
    console = Console(quiet=not main_rank) if wide else Console(width=160, quiet=not main_rank)
    try:
        commands = {"list": lambda: cmd_list(console), "run": lambda: cmd_run(args, console, argv),
                    "probe": lambda: cmd_probe(args, console), "table": lambda: cmd_table(args, console),
                    "data": lambda: cmd_data(args, console),
                    "sweep": lambda: cmd_sweep(args, console, ["gimbench", *argv]),
                    "compare": lambda: cmd_compare(args, console, argv),
                    "report": lambda: cmd_report(args, console),
                    "headline": lambda: cmd_headline(args, console),
                    "bench-compare": lambda: cmd_bench_compare(args, console)}
        return commands[args.command]()
    except ConfigError as e:
        if main_rank:
            sys.stderr.write(f"gimbench: error: {e}\n")
        return 2
    except RunEnded as e:
        if main_rank or e.result.status == "failed":
            sys.stderr.write(f"gimbench: {'' if e.result.status == 'interrupted' else 'failed: '}{e}\n")
        return e.exit_code
    except (PeerLost, WriteError) as e:
        sys.stderr.write(f"gimbench: failed: {e}\n")
        return 1
    except KeyboardInterrupt as interrupt:  # before a run began, or after it ended (gimbench.runs.stopping)
        line, code = ended_by(interrupt)
        sys.stderr.write(line)
        return code


def entry() -> None:
    """The ``gimbench`` command: ``main``, then exit. After a run stopped by a signal everything is written,
    so a further Ctrl-C during interpreter shutdown is ignored rather than printed as a traceback."""
    code = main()
    if code in {128 + s for s in STOP_SIGNALS}:
        for s in STOP_SIGNALS:
            signal.signal(s, signal.SIG_IGN)
    sys.exit(code)


if __name__ == "__main__":
    entry()
