"""Command-line front: a thin layer over ``gimbench.run`` and the registries."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from gimbench.config import CONTEXTS, DEVICES, GIM_MODES, ConfigError, RunConfig
from gimbench.data import DATASETS
from gimbench.models import MAX_DEPTH, MODALITIES, REFERENCE_DEPTH
from gimbench.models.presets import PRESETS
from gimbench.progress import TrainingProgress
from gimbench.run import run
from gimbench.strategies import STRATEGIES


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line and exit 2, never a usage dump or a traceback."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"gimbench: error: {message}\n")
        sys.exit(2)


def add_run_options(p: argparse.ArgumentParser) -> None:
    """Every ``RunConfig`` field as a kebab-case flag, with help."""
    d = RunConfig()
    p.add_argument("--model", choices=sorted(STRATEGIES), default=d.model, help="training method")
    p.add_argument("--modality", choices=MODALITIES, default=d.modality, help="audio (default) or vision")
    p.add_argument("--depth", type=int, default=None,
                   help=f"gradient-isolated modules, 1-{MAX_DEPTH} (default: reference, {REFERENCE_DEPTH})")
    p.add_argument("--preset", choices=("auto", *PRESETS), default=d.preset,
                   help="layer sizes: paper, tiny, or auto (paper on CUDA, tiny on CPU)")
    p.add_argument("--gim-mode", choices=GIM_MODES, default=d.gim_mode, help="greedy schedule (gim only)")
    p.add_argument("--context", choices=CONTEXTS, default=d.context,
                   help="vision context network on the top module: auto = pixelcnn for cpc, none otherwise")
    p.add_argument("--steps", type=int, default=d.steps, help="training steps")
    p.add_argument("--warmup-steps", type=int, default=d.warmup_steps, help="first steps, never measured")
    p.add_argument("--profile-steps", type=int, default=d.profile_steps,
                   help="timed steps (each next to an unprofiled one, to show the timers' cost)")
    p.add_argument("--memory-steps", type=int, default=d.memory_steps,
                   help="memory-tracked steps right after warm-up (tensor tracker; slow, never timed)")
    p.add_argument("--batch-size", type=int, default=None, help="examples per step (default: the preset's)")
    p.add_argument("--lr", type=float, default=None, help="Adam learning rate (default: the preset's)")
    p.add_argument("--seed", type=int, default=d.seed, help="seed for initialisation and sampling")
    p.add_argument("--device", choices=DEVICES, default=d.device, help="where to train")
    p.add_argument("--data", choices=sorted(DATASETS), default=d.data, help="dataset (synthetic: embedded)")
    p.add_argument("--data-root", default=None, help="folder of a real dataset")
    p.add_argument("--out", default=d.out, help="folder that holds run folders")
    p.add_argument("--name", default=None,
                   help="run folder name (default: <UTC time>-<model>-<modality>-d<depth>)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing run folder of the same --name")
    p.add_argument("--quiet", action="store_true", help="no progress bar, only the summary")


def make_parser() -> Parser:
    parser = Parser(prog="gimbench", description="Greedy InfoMax vs end-to-end CPC: memory, time, accuracy.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    add_run_options(sub.add_parser("run", help="train one configuration and report it"))
    sub.add_parser("list", help="list models, modalities, gim modes, datasets and presets")
    return parser


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The RunConfig the parsed flags describe."""
    fields = RunConfig.__dataclass_fields__
    return RunConfig(**{k: v for k, v in vars(args).items() if k in fields})


def cmd_run(args: argparse.Namespace, console: Console) -> int:
    cfg = config_from_args(args)
    if cfg.data_root is not None and cfg.data == "synthetic":
        raise ConfigError("--data-root is for real datasets; --data synthetic is generated in process")
    progress = TrainingProgress(console, cfg.steps, enabled=not cfg.quiet)

    def started(resolved: RunConfig, folder: Path) -> None:
        console.print(f"preset [bold]{resolved.preset}[/] on {resolved.device} · run folder {folder}",
                      highlight=False)

    with progress:
        result = run(cfg, on_start=started, on_step=progress)
    console.print(result)
    return 0


def cmd_list(console: Console) -> int:
    table = Table(title="gimbench registries", title_justify="left")
    table.add_column("registry")
    table.add_column("name")
    table.add_column("what")
    for name, strategy in sorted(STRATEGIES.items()):
        table.add_row("model", name, strategy.description)
    for name in MODALITIES:
        table.add_row("modality", name, f"reference depth {REFERENCE_DEPTH[name]}")
    for name in GIM_MODES:
        table.add_row("gim mode", name, "")
    for name in sorted(DATASETS):
        table.add_row("dataset", name, (DATASETS[name].__doc__ or "").strip().splitlines()[0])
    for name, specs in PRESETS.items():
        a, v = specs["audio"], specs["vision"]
        table.add_row("preset", name, f"audio {a.channels} ch, GRU {a.hidden}, crop {a.crop_samples}; "
                      f"vision widths {v.widths}, batch {a.batch_size}/{v.batch_size}")
    console.print(table)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    console = Console() if sys.stdout.isatty() else Console(width=160)
    try:
        if args.command == "list":
            return cmd_list(console)
        return cmd_run(args, console)
    except ConfigError as e:
        sys.stderr.write(f"gimbench: error: {e}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("gimbench: interrupted\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
