"""Command-line front: a thin layer over ``gimbench.runs.run`` and the registries."""

from __future__ import annotations

import argparse
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
    CONTEXTS,
    DEFAULT_MICRO_BATCHES,
    DEFAULT_STEPS,
    DEVICES,
    LOCAL_GRADS,
    SPLIT_RANKS,
    SPLITS,
    TRAIN_SPLITS,
    ConfigError,
    RunConfig,
    flag,
    resolve,
)
from gimbench.data import DATASETS
from gimbench.data.check import CHECKS, check_dataset
from gimbench.data.problems import DataError
from gimbench.distributed.runtime import PeerLost
from gimbench.distributed.world import world_from_env
from gimbench.models import MAX_DEPTH, MODALITIES, NETWORKS, REFERENCE_DEPTH
from gimbench.models.presets import PRESETS
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
from gimbench.strategies import STRATEGIES
from gimbench.sweep.compare import configurations as compare_configurations
from gimbench.sweep.compare import refused as refused_by_compare
from gimbench.sweep.grid import Configuration, accept_lists, configurations, validate
from gimbench.sweep.progress import SweepProgress
from gimbench.sweep.runner import made_by, read_sweep, resume_sweep, run_sweep
from gimbench.sweep.table import build_table, not_for_table


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line and exit 2, never a usage dump or a traceback."""

    def error(self, message: str) -> None:  # type: ignore[override]
        if self.prog.endswith(" run") and re.search(r"'[^']*,[^']*'", message):
            message += "; gimbench run takes one value: gimbench sweep runs every value of a comma list"
        sys.stderr.write(f"gimbench: error: {message}\n")
        sys.exit(2)


GROUPS = ("method", "model", "data", "profiling", "output", "scale-out", "recovery")


def add_run_options(p: argparse.ArgumentParser) -> dict[str, argparse._ArgumentGroup]:
    """Every ``RunConfig`` field as a kebab-case flag, with help and its default, in groups (returned by name)."""
    # Flags are added in their first order (a sweep's product, and so its run numbering, follows it); the
    # groups only arrange the help.
    d, g = RunConfig(), {name: p.add_argument_group(name) for name in GROUPS}
    reference = ", ".join(f"{m} {n}" for m, n in REFERENCE_DEPTH.items())
    steps = ", ".join(f"{n} {m}" for m, n in DEFAULT_STEPS.items())
    g["method"].add_argument("--model", choices=sorted(STRATEGIES), default=d.model,
                             help=f"training method (default {d.model}; see gimbench list)")
    g["model"].add_argument("--modality", choices=MODALITIES, default=d.modality, help=f"default {d.modality}")
    g["model"].add_argument("--depth", type=int, default=None,
                            help=f"gradient-isolated modules, 1-{MAX_DEPTH} (default: the reference, {reference})")
    g["model"].add_argument("--preset", choices=("auto", *PRESETS), default=d.preset,
                            help="layer sizes: paper, tiny, or auto = paper on CUDA, tiny on CPU (default auto)")
    g["method"].add_argument("--gim-mode", choices=list(STRATEGIES["gim"].variants), default=d.gim_mode,
                             help=f"greedy schedule, --model gim only (default {d.gim_mode}; see gimbench list)")
    g["method"].add_argument("--local-grad", choices=LOCAL_GRADS, default=d.local_grad,
                             help="greedy audio conv modules: sparse = gradients from only the output positions "
                                  "the module's own loss reads (exact), dense = from every position; auto = sparse "
                                  f"wherever exact, where it is also cheaper (default {d.local_grad}; "
                                  "docs/profiling.md)")
    g["model"].add_argument("--context", choices=CONTEXTS, default=d.context,
                            help="vision context network on the top module: auto = pixelcnn for cpc, none "
                                 "otherwise (default auto)")
    g["model"].add_argument("--steps", type=int, default=d.steps, help=f"training steps (default: {steps})")
    g["profiling"].add_argument("--warmup-steps", type=int, default=d.warmup_steps,
                                help=f"first steps, never measured (default {d.warmup_steps})")
    g["profiling"].add_argument("--profile-steps", type=int, default=d.profile_steps,
                                help="timed steps, each next to an unprofiled one to show the timers' cost "
                                     f"(default {d.profile_steps})")
    g["profiling"].add_argument("--memory-steps", type=int, default=d.memory_steps,
                                help="memory-tracked steps per module, each after the module has trained once "
                                     f"(slow, never timed; default {d.memory_steps})")
    g["model"].add_argument("--batch-size", type=int, default=None, help="examples per step (default: the preset's)")
    g["model"].add_argument("--lr", type=float, default=None, help="Adam learning rate (default: the preset's)")
    g["model"].add_argument("--seed", type=int, default=d.seed,
                            help=f"seed for initialisation and sampling (default {d.seed})")
    g["model"].add_argument("--device", choices=DEVICES, default=d.device,
                            help=f"where to train (default {d.device}: cuda if available)")
    g["data"].add_argument("--data", choices=sorted(DATASETS), default=d.data,
                           help=f"dataset (default {d.data}: embedded, generated in process)")
    g["data"].add_argument("--data-root", default=None,
                           help="folder of a real dataset (see `gimbench data check`; no default)")
    g["data"].add_argument("--train-split", choices=TRAIN_SPLITS, default=d.train_split,
                           help="vision training images: auto = unlabeled (train for methods trained on labels) "
                                "(default auto)")
    g["data"].add_argument("--workers", type=int, default=d.workers,
                           help=f"data loader worker processes (default {d.workers}: read batches in the training "
                                "process)")
    g["output"].add_argument("--out", default=d.out, help=f"folder that holds run folders (default {d.out})")
    g["output"].add_argument("--name", default=None,
                             help="run folder name (default: <UTC time>-<model>-<modality>-d<depth>)")
    g["output"].add_argument("--overwrite", action="store_true",
                             help="replace an existing run folder of the same --name (default: refuse)")
    g["output"].add_argument("--quiet", action="store_true", help="no progress bar, only the summary (default: off)")
    g["profiling"].add_argument("--no-probe", dest="probe", action="store_false",
                                help="skip the linear probes on every module after training (default: probe)")
    g["recovery"].add_argument("--checkpoint-every", type=int, default=d.checkpoint_every, metavar="N",
                               help="write a checkpoint every N steps, keeping the last two (default 0: only at the "
                                    "end or on a stop)")
    g["profiling"].add_argument("--find-max-batch", action="store_true",
                                help="search the largest batch size whose measured step peak fits --memory-budget, "
                                     "then train at it (default: off)")
    g["profiling"].add_argument("--memory-budget", default=None,
                                help="memory budget for --find-max-batch: e.g. 512MiB, 8GiB, 1.5GB (KB/MB/GB powers "
                                     "of 1000, KiB/MiB/GiB of 1024; no default)")
    g["scale-out"].add_argument("--nproc", type=int, default=d.nproc, metavar="N",
                                help="start N processes with torchrun (data parallel; or module-parallel with "
                                     f"--gim-mode module-parallel) (default {d.nproc})")
    g["scale-out"].add_argument("--max-inflight", type=int, default=d.max_inflight, metavar="K",
                                help=f"module-parallel GIM: batches in flight between neighbouring ranks "
                                     f"(default {d.max_inflight})")
    g["scale-out"].add_argument("--split-ranks", choices=SPLIT_RANKS, default=d.split_ranks,
                                help="module-parallel GIM: contiguous modules per rank, cut by each module's step "
                                     "time measured once before training (balanced) or by module count "
                                     f"(default {d.split_ranks})")
    g["scale-out"].add_argument("--pipeline", choices=list(STRATEGIES["cpc"].variants), default=d.pipeline,
                                help="cpc on several processes: pipeline the encoder over them with "
                                     "torch.distributed.pipelining's GPipe or 1F1B schedule (default none: data "
                                     "parallel)")
    g["scale-out"].add_argument("--micro-batches", type=int, default=None, metavar="M",
                                help=f"pipelined cpc: micro-batches per batch (default {DEFAULT_MICRO_BATCHES}; "
                                     "must divide it)")
    g["profiling"].add_argument("--trace", action="store_true",
                                help="write trace.json (Chrome/Perfetto) of one warm-up step with per-module "
                                     "phases, and on CUDA memory_snapshot.pickle for memory_viz (default: off)")
    g["method"].add_argument("--checkpoint-activations", action="store_true",
                             help="cpc and supervised: recompute each module's activations in backward "
                                  "(torch.utils.checkpoint, non-reentrant) instead of keeping them (default: off; "
                                  "docs/memory-savers.md)")
    g["method"].add_argument("--accumulate", type=int, default=d.accumulate, metavar="M",
                             help="cpc and supervised: run each batch as M equal micro-batches, gradients "
                                  "accumulated, negatives drawn per micro-batch; M must divide the batch "
                                  f"(default {d.accumulate}; docs/memory-savers.md)")
    g["method"].add_argument("--modules", type=int, default=None, metavar="K",
                             help="greedy methods: cut the --depth layers into K contiguous gradient-isolated "
                                  "modules, each trained by its top layer's loss (default: one per layer; "
                                  "docs/modules.md)")
    g["method"].add_argument("--split", choices=SPLITS, default=d.split,
                             help="with --modules: even = by layer count, balanced = smallest largest module's "
                                  f"measured peak memory (default {d.split}; docs/modules.md)")
    return g


def make_parser() -> Parser:
    parser = Parser(prog="gimbench", description="Greedy InfoMax vs end-to-end CPC: memory, time, accuracy.")
    parser.add_argument("--version", action="version", version=f"gimbench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    run_parser = sub.add_parser("run", help="train one configuration and report it")
    add_run_options(run_parser)["recovery"].add_argument("--resume", metavar="FOLDER", default=None,
                            help="continue the run in FOLDER from its newest checkpoint (--steps TOTAL extends it)")
    sub.add_parser("list", help="list models, modalities, gim modes, datasets and presets")
    probe = sub.add_parser("probe", help="re-run the linear probes of a saved run from its checkpoint")
    probe.add_argument("folder", help="a run folder (holding results.json and checkpoint.pt)")
    probe.add_argument("--device", choices=DEVICES, default="auto", help="where to extract features")
    probe.add_argument("--quiet", action="store_true", help="no progress, only the table")
    probe.add_argument("--checkpoint", choices=("latest", "prev"), default="latest",
                       help="latest: checkpoint.pt, only if it holds the step results.json describes; prev: "
                            "checkpoint.prev.pt, whatever its step (results.json records which, probe_checkpoint)")
    table = sub.add_parser("table", help="train every method on the same data and compare probe accuracy")
    add_run_options(table)
    option(table, "--out").help = "the table's folder (default reports/tables/<UTC time>-<modality>)"
    table.set_defaults(out=None)  # here --out is the table's folder (default reports/tables/<time>-<modality>)
    data = sub.add_parser("data", help="real datasets on disk").add_subparsers(dest="action", required=True,
                                                                              parser_class=Parser)
    check = data.add_parser("check", help="validate a dataset folder and summarise it (nothing is downloaded)")
    check.add_argument("--data", choices=sorted(CHECKS), required=True, help="which dataset")
    check.add_argument("--data-root", required=True, help="the folder holding it (as for gimbench run)")
    add_sweep_parser(sub)
    add_compare_parser(sub)
    add_report_parser(sub)
    compare = sub.add_parser("bench-compare", help="fail when memory peaks grew between two benchmark JSON files")
    compare.add_argument("old", help="saved 'pytest benchmarks/ --benchmark-json' output (the baseline)")
    compare.add_argument("new", help="the new output to check")
    compare.add_argument("--max-increase", default="10%",
                         help="allowed growth of any step or module peak (default 10%%)")
    return parser


def option(parser: argparse.ArgumentParser, flag: str) -> argparse.Action:
    """The action of ``flag`` in ``parser``."""
    return next(a for a in parser._actions if flag in a.option_strings)


def add_sweep_parser(sub) -> None:
    sweep = sub.add_parser("sweep", help="run every combination of comma-listed run options, each in a fresh process")
    add_run_options(sweep)
    option(sweep, "--out").help = "the sweep folder (default reports/sweeps/<--name or UTC time>)"
    option(sweep, "--name").help = "the sweep folder's name under reports/sweeps (default: UTC time)"
    sweep.set_defaults(out=None, run_options=accept_lists(sweep))
    sweep.add_argument("--resume", metavar="FOLDER", default=None,
                       help="continue the sweep in FOLDER with its recorded options: runs not complete are resumed "
                            "from their checkpoints or run again (only --quiet may be given with it)")
    sweep.description = ("--out is the sweep folder (default reports/sweeps/<--name or UTC time>); --overwrite "
                         "reuses an existing one; --quiet hides the sweep's progress (runs are always quiet).")


def add_compare_parser(sub) -> None:
    compare = sub.add_parser("compare", help="cpc, cpc with checkpointing or accumulation, and gim at several "
                                             "--modules on one setting, each in a fresh process; then their report")
    add_run_options(compare)
    option(compare, "--out").help = "the comparison's folder (default reports/compare/<--name or UTC time-modality>)"
    option(compare, "--name").help = "the folder's name under reports/compare (default: UTC time and modality)"
    compare.set_defaults(out=None)
    compare.add_argument("--resume", metavar="FOLDER", default=None,
                         help="continue the comparison in FOLDER with its recorded options: rows not complete are "
                              "resumed from their checkpoints or run again, then the report is rewritten (only "
                              "--quiet may be given with it)")
    compare.description = ("Rows: cpc, cpc --checkpoint-activations, cpc --accumulate 2 and 4, gim --modules 2, 3 "
                           "and one per layer; every other run option is passed to every row (docs/compare.md).")


def add_report_parser(sub) -> None:
    report = sub.add_parser("report", help="show run and sweep folders side by side; write an HTML report")
    report.add_argument("folders", nargs="+", metavar="FOLDER",
                        help="run folders, sweep folders, or folders of run folders (such as reports/runs)")
    report.add_argument("--out", default=None, help="report folder (default reports/report-<UTC time>)")
    report.add_argument("--overwrite", action="store_true", help="replace an existing report folder")
    report.add_argument("--details", action="store_true", help="also print every run's module tables")


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The RunConfig the parsed flags describe."""
    fields = RunConfig.__dataclass_fields__
    return RunConfig(**{k: v for k, v in vars(args).items() if k in fields})



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


NOT_GIVEN = object()


def given_options(run_argv: list[str]) -> set[str]:
    """The ``RunConfig`` fields a ``gimbench run`` command line sets (rather than leaving at their defaults)."""
    parser = Parser(add_help=False)
    add_run_options(parser)
    parser.set_defaults(**dict.fromkeys(RunConfig.__dataclass_fields__, NOT_GIVEN))
    args, _ = parser.parse_known_args(run_argv)
    return {k for k, v in vars(args).items() if v is not NOT_GIVEN and k in RunConfig.__dataclass_fields__}


def probe_progress(console: Console, quiet: bool):
    def show(task: str, module: int) -> None:
        if not quiet:
            console.print(f"probe {task} on module {module}", style="dim", highlight=False)

    return show


def cmd_run(args: argparse.Namespace, console: Console, argv: list[str]) -> int:
    if args.nproc > 1 and not world_from_env().distributed:
        if args.resume is not None:
            raise ConfigError(RESUME_REFUSED)
        return launch(config_from_args(args), argv)
    if args.resume is None:
        console.print(run_summary(run_with_progress(config_from_args(args), console)))
        return 0
    changes = {k: getattr(args, k) for k in given_options(argv[1:])}
    call = functools.partial(resume, Path(args.resume), **changes)
    console.print(run_summary(with_progress(console, args.quiet, call, resuming=True)))
    return 0


def cmd_probe(args: argparse.Namespace, console: Console) -> int:
    doc = probe_saved_run(Path(args.folder), device=args.device, on_probe=probe_progress(console, args.quiet),
                          which=args.checkpoint)
    console.print(probe_table(doc["probe"], [m["name"] for m in doc["modules"]]))
    console.print(f"updated {Path(args.folder) / 'results.json'}", style="dim", highlight=False)
    return 0


def cmd_table(args: argparse.Namespace, console: Console, argv: list[str]) -> int:
    refused = not_for_table(vars(args), given_options(argv[1:]))
    if refused:
        raise ConfigError(refused)
    out = args.out
    args.out = RunConfig.out
    base = config_from_args(args)
    document, folder = build_table(base, out=out, run_one=lambda cfg: run_with_progress(cfg, console))
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
        changed = [a.option_strings[0] for d, a in args.run_options.items()
                   if d != "quiet" and getattr(args, d) != a.default]
        return cmd_resume(args, console, changed)
    configs, swept = configurations(args, args.run_options)
    validate(configs, lambda values: resolve_for_launch(config_from_args(argparse.Namespace(**values))))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    folder = Path(args.out) if args.out else Path("reports/sweeps") / (args.name or stamp)
    with SweepProgress(console, len(configs), enabled=not args.quiet) as progress:
        document = run_sweep(configs, folder, swept=swept, command=command, overwrite=args.overwrite,
                             on_start=progress.on_start, on_done=progress.on_done)
    return sweep_ended(document, folder, console)


def compare_rows(args: argparse.Namespace, options: list[str]) -> list[Configuration]:
    """The rows of ``gimbench compare``, given its parsed ``args`` and its command line after ``compare``."""
    given = given_options(options)
    if refused_by_compare(given):
        raise ConfigError(refused_by_compare(given))
    base = {k: v for k, v in vars(args).items() if k in RunConfig.__dataclass_fields__} | {"out": RunConfig.out}
    depth = resolve_for_launch(RunConfig(**base)).depth
    configs = compare_configurations(base, given, depth)
    validate(configs, lambda values: resolve_for_launch(config_from_args(argparse.Namespace(**values))))
    return configs


def cmd_compare(args: argparse.Namespace, console: Console, argv: list[str]) -> int:
    if args.resume is not None:
        return cmd_resume(args, console, sorted(flag(d) for d in given_options(argv[1:]) - {"quiet"}))
    configs = compare_rows(args, argv[1:])
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    folder = Path(args.out) if args.out else Path("reports/compare") / (args.name or f"{stamp}-{args.modality}")
    with SweepProgress(console, len(configs), enabled=not args.quiet) as progress:
        document = run_sweep(configs, folder, swept={"row": [c.label for c in configs]}, command=["gimbench", *argv],
                             overwrite=args.overwrite, on_start=progress.on_start, on_done=progress.on_done)
    return sweep_ended(document, folder, console)


def cmd_resume(args: argparse.Namespace, console: Console, changed: list[str]) -> int:
    """``gimbench sweep|compare --resume FOLDER``: the recorded configurations, those not complete run now;
    ``changed`` names the run options given with it (refused: the recorded ones hold)."""
    kind = args.command
    changed += [f"--{k}" for k in ("out", "name") if getattr(args, k) is not None]
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
    configs = configurations(parsed, parsed.run_options)[0] if kind == "sweep" else compare_rows(parsed, recorded[2:])
    with SweepProgress(console, len(configs), enabled=not args.quiet) as progress:
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
        table.add_row("network", name, f"{network.modality}, reference depth {network.reference_depth}: "
                      f"{network.description}")
    for name, strategy in STRATEGIES["gim"].variants.items():
        table.add_row("gim mode", name, strategy.description)
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
                    "probe": lambda: cmd_probe(args, console), "table": lambda: cmd_table(args, console, argv),
                    "data": lambda: cmd_data(args, console),
                    "sweep": lambda: cmd_sweep(args, console, ["gimbench", *(sys.argv[1:] if argv is None else argv)]),
                    "compare": lambda: cmd_compare(args, console, argv),
                    "report": lambda: cmd_report(args, console),
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
