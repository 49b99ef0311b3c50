"""``gimbench run --nproc N``: check the configuration, then start N copies of the same command under torchrun.

torchrun's own code (``torch.distributed.run``) runs in this process as its elastic agent, exactly as
``python -m torch.distributed.run --standalone --nproc-per-node N -m gimbench run ...`` would; running it
here rather than in a child process gives its failure records (rank, pid, exit code or signal) as data,
which become one line for the user.
"""

from __future__ import annotations

from gimbench.config import RunConfig, resolve
from gimbench.runs.folder import named_folder

QUIET_CODES = (2, 130, 143)  # a config error, a stop by SIGINT/SIGTERM: rank 0 has said so itself


def check(cfg: RunConfig) -> None:
    """The ``ConfigError`` the ranks would all meet, found before starting them."""
    named_folder(resolve(cfg, cfg.nproc))


def torchrun_args(nproc: int, argv: list[str]):
    """torchrun's parsed arguments that start ``gimbench <argv>`` on ``nproc`` local processes. ``argv`` is
    passed on as it is (``--nproc N`` included, which each rank checks against the world size) and never
    parsed by torchrun, whose options could otherwise claim abbreviations of gimbench's."""
    from torch.distributed.run import parse_args

    args = parse_args(["--standalone", f"--nproc-per-node={nproc}", "-m", "gimbench"])
    args.training_script_args = list(argv)
    return args


def describe(failures: dict) -> tuple[str, int]:
    """One line about the ranks that failed (torchrun's ``ProcessFailure`` by rank), first failure first, and
    the exit status: the first failure's own, or 128 + its signal."""
    order = sorted(failures.items(), key=lambda item: item[1].timestamp)
    parts = [f"rank {rank} (pid {f.pid}) " + (f"was killed by {f.signal_name()}" if f.exitcode < 0
                                              else f"exited with code {f.exitcode}") for rank, f in order]
    line = parts[0] + (f"; after it {', '.join(parts[1:])}" if parts[1:] else "")
    first = order[0][1].exitcode
    return line + " (torchrun stops every rank when one fails)", first if first > 0 else 128 - first


def launch(cfg: RunConfig, argv: list[str]) -> int:
    """Start ``gimbench <argv>`` on ``cfg.nproc`` processes with torchrun; its exit code.

    Raises:
        ConfigError: when the configuration cannot run (checked here, before any process starts).
    """
    import sys

    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import run

    check(cfg)
    try:
        run(torchrun_args(cfg.nproc, argv))
    except ChildFailedError as e:
        line, code = describe(e.failures)
        if not all(f.exitcode in QUIET_CODES for f in e.failures.values()):
            sys.stderr.write(f"gimbench: failed: {line}\n")
        return code
    except SignalException as e:
        return 128 + int(e.sigval)
    return 0
