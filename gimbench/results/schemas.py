"""What every file gimbench reads must hold: results.json, sweep.json, pytest-benchmark files, and the plain-data
parts of a checkpoint (what ``torch.load(..., weights_only=True)`` returns is as untrusted as any JSON).

Each schema lists the fields some reader uses, with the type that reader expects; fields a file may lack
(written by an older version, or not in every run) are optional, fields nothing reads are left unchecked.
``read`` parses a file and checks it (``gimbench.results.validate``), so its readers never meet a wrong type.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import torch

from gimbench.config import RunConfig
from gimbench.results.validate import (
    AMOUNT,
    ANY,
    BOOL,
    COUNT,
    INT,
    NUMBER,
    PLAIN,
    STR,
    Kind,
    ListOf,
    MapOf,
    Nullable,
    Obj,
    Row,
    check,
    read_json,
)

MAYBE_AMOUNT, MAYBE_NUMBER, MAYBE_STR, MAYBE_COUNT = map(Nullable, (AMOUNT, NUMBER, STR, COUNT))
# FLOPs counted on a warm-up step and the rate they ran at (module rows and the step alike).
FLOPS = {"flops": MAYBE_AMOUNT, "achieved_flops_per_s": MAYBE_AMOUNT, "flops_by_phase": Nullable(MapOf(MAYBE_AMOUNT))}
# Memory figures: a number of bytes (or null), except the blocks named as maps or lists of them.
FIGURES = (("_bytes", MAYBE_AMOUNT), ("_note", MAYBE_STR), ("_fraction", MAYBE_NUMBER), ("_floor", MAYBE_NUMBER))
BYTES_BY = Nullable(MapOf(MAYBE_AMOUNT))
CATEGORY_BYTES = {f"{c}_bytes": AMOUNT for c in ("parameter", "gradient", "optimizer", "activation", "temporary")}
SHARE = Kind("a fraction from 0 to 1", (int, float), lambda v: 0 <= v <= 1)
PER_MODULE = Kind("a non-empty list of accuracies", (list,), lambda v: len(v) > 0 and all(
    isinstance(a, int | float) and not isinstance(a, bool) and 0 <= a <= 1 for a in v))

# RunConfig's annotations (strings under ``from __future__ import annotations``) as leaves.
_FIELD_KINDS = {"str": STR, "str | None": MAYBE_STR, "int": INT, "int | None": Nullable(INT),
                "float | None": MAYBE_NUMBER, "bool": BOOL}
OPTIONS = {f.name: _FIELD_KINDS.get(str(f.type), ANY) for f in dataclasses.fields(RunConfig)}
# What reports index directly is required (every results.json has it); the rest may predate a file.
CONFIG = Obj(required={"model": STR, "modality": STR, "preset": STR, "depth": COUNT, "batch_size": COUNT,
                       "steps": COUNT},
             optional=OPTIONS)

# ``StepResult``'s fields without a default are required: a report rebuilds it from the file.
STEP = Obj(required={
    "time_ms": MAYBE_AMOUNT, "time_ms_unprofiled": MAYBE_AMOUNT, "timer_overhead": MAYBE_NUMBER,
    "samples_per_second": MAYBE_AMOUNT, "time_ms_iqr": MAYBE_AMOUNT, "data_ms": MAYBE_AMOUNT, "timed_steps": COUNT,
    "unprofiled_steps": COUNT}, optional={
    "data_wait_ms": MapOf(MAYBE_NUMBER), "time_note": MAYBE_STR, "peak_over_floor": MAYBE_NUMBER,
    "memory_steps": MAYBE_COUNT, "peak_breakdown_bytes": BYTES_BY,
    "floor_by_module_bytes": Nullable(ListOf(MAYBE_AMOUNT)), "untracked_bytes": Nullable(INT), **FLOPS},
    patterns=FIGURES,
    together=("time_ms", "time_ms_iqr", "samples_per_second"))
MODULE = Obj(
    required={"index": COUNT, "name": STR, "parameters": COUNT,
              "loss": Obj(required={"first": MAYBE_NUMBER, "last": MAYBE_NUMBER, "history": ListOf(MAYBE_NUMBER)})},
    optional={"time_ms": Nullable(MapOf(MAYBE_AMOUNT)), "time_ms_iqr": Nullable(MapOf(MAYBE_AMOUNT)),
              "timed_steps": COUNT, "local_grad": MAYBE_STR, **FLOPS, "flops_fraction": MAYBE_NUMBER,
              "memory": Nullable(Obj(optional={**CATEGORY_BYTES, "peak_phase": MAYBE_STR, "phase_peak_bytes": BYTES_BY,
                                               "phase_tracked_peak_bytes": BYTES_BY,
                                               # the allocator's count less the tracker's: negative where the
                                               # tracker books a tensor the allocator handed out before the step
                                               "untracked_bytes": Nullable(INT)}, patterns=FIGURES))})
RANK = Obj(required={"rank": COUNT, "device": STR, "modules": ListOf(COUNT)},
           optional={"step": Nullable(STEP), "idle_fraction": Nullable(SHARE), "samples_per_s": MAYBE_AMOUNT,
                     "module_rows": ListOf(MODULE),
                     "links": Nullable(ListOf(Obj(required={"peer": ANY, "one_way_ms": AMOUNT})))},
           patterns=FIGURES)
TRY = Obj(required={"batch_size": COUNT, "peak_bytes": MAYBE_AMOUNT, "fits": BOOL})
RESULTS = Obj(
    required={"schema": Kind("'gimbench.run/<version>'", (str,), lambda v: v.startswith("gimbench.run/")),
              "status": STR, "memory_backend": STR, "config": CONFIG,
              "environment": Obj(required={"device": STR}, optional={
                  "device_name": STR, "reference_flops_per_s": MAYBE_AMOUNT,
                  "reference_matmul": Nullable(Obj(required={"size": COUNT, "precision": STR}))}),
              "modules": ListOf(MODULE), "step": STEP,
              "final_parameter_checksum": STR, "wall_seconds": AMOUNT},
    optional={
        "probe": Nullable(MapOf(Obj(required={"per_module": PER_MODULE, "chance": SHARE}))),
        "data": Nullable(Obj(optional={"skipped": Nullable(MapOf(Obj(required={"count": COUNT})))})),
        "failure": Nullable(Obj(optional={"reason": STR, "message": STR, "step": COUNT})),
        "steps_completed": MAYBE_COUNT, "resume_command": MAYBE_STR,
        "sessions": ListOf(Obj(optional={"wall_seconds": AMOUNT, "start_step": COUNT, "end_step": COUNT})),
        "max_batch": Nullable(Obj(required={"budget_bytes": AMOUNT, "batch_size": COUNT, "peak_bytes": MAYBE_AMOUNT,
                                            "backend": STR, "tried": ListOf(TRY)})),
        "distributed": Nullable(Obj(required={"mode": STR, "ranks": ListOf(RANK)})),
        "probe_checkpoint": Nullable(Obj(required={"file": STR, "step": COUNT})), "trace": Nullable(Obj()),
        "memory_timeline": Nullable(Obj(
            required={"csv": STR, "png": STR, "spans": ListOf(Obj(required={
                "module": COUNT, "name": STR, "phase": STR, "start_ms": AMOUNT, "end_ms": AMOUNT}))},
            optional={"source": STR, "points": COUNT, "events": COUNT, "duration_ms": AMOUNT, "peak_bytes": AMOUNT,
                      "peak_ms": AMOUNT, "resident_bytes": AMOUNT}))})

# A sweep's run lives in its sweep folder's runs/: a record naming any other path is not one gimbench wrote.
RUN_FOLDER = Kind("a folder runs/NAME inside the sweep", (str,),
                  lambda v: re.fullmatch(r"runs/[^/\x00]+", v) is not None and v not in ("runs/.", "runs/.."))
STATUSES = ("running", "complete", "failed", "interrupted")
RUN_STATUS = Kind(f"one of {', '.join(STATUSES)}", (str,), lambda v: v in STATUSES)
SWEEP_RECORD = Obj(
    required={"name": STR, "folder": RUN_FOLDER, "status": RUN_STATUS, "log": STR, "exit_code": Nullable(INT),
              "error": MAYBE_STR, "wall_seconds": AMOUNT, "options": Obj(optional=OPTIONS)},
    optional={"label": STR, "command": Nullable(ListOf(STR)), "step_time_ms": MAYBE_AMOUNT,
              "run_wall_seconds": MAYBE_AMOUNT, "resume_command": MAYBE_STR, "steps_completed": MAYBE_COUNT,
              "max_batch": Nullable(Obj())}, patterns=FIGURES)
SWEEP = Obj(
    required={"schema": Kind("'gimbench.sweep/<version>'", (str,), lambda v: v.startswith("gimbench.sweep/")),
              "runs": ListOf(SWEEP_RECORD), "status": RUN_STATUS, "swept": MapOf(ListOf(ANY))},
    optional={"command": Nullable(ListOf(STR)), "started": STR, "resumed": ListOf(STR),
              "pid": Nullable(COUNT), "signal": MAYBE_STR, "resume_command": MAYBE_STR, "wall_seconds": AMOUNT,
              "runs_wall_seconds": AMOUNT, "runs_in_process_seconds": AMOUNT, "overhead": MAYBE_NUMBER})

# pytest-benchmark's JSON: what ``gimbench bench-compare`` reads of it. A peak is a positive byte count below
# 2^63 (JSON's true, a negative, NaN or 10^400 is not one).
PEAK = Kind("a positive number of bytes below 2^63", (int,), lambda v: 0 < v < 2**63)
MEMORY_INFO = Obj(optional={"step_peak_bytes": PEAK, "module_peak_bytes": ListOf(Nullable(Kind(
    "a number of bytes", (int,), lambda v: 0 <= v < 2**63))), "module_names": ListOf(STR), "memory_backend": STR})
BENCHMARKS = Obj(required={"benchmarks": ListOf(Obj(required={"name": STR},
                                                     optional={"fullname": STR, "extra_info": Nullable(MEMORY_INFO)}))})


# A checkpoint (``gimbench.runs.session.Session.state``): what its parts must be before they are restored. The
# network's and optimizers' tensors are checked against the network they are loaded into
# (``gimbench.runs.checkpoint.check_contents``); everything that reaches results.json must be plain data.
TENSOR = Kind("a tensor", (torch.Tensor,))
CATEGORIES = ("parameter", "gradient", "optimizer", "activation", "temporary")
SNAPSHOT = Obj(required={"live": AMOUNT, "by_category": Obj(required=dict.fromkeys(CATEGORIES, AMOUNT)),
                         "activation_by_module": MapOf(AMOUNT), "gradient_by_module": MapOf(AMOUNT)})
MAYBE_MODULE = Nullable(COUNT)
# A memory step's series (``gimbench.profiling.timeline.Timeline``): its peak is the largest level, so none is
# empty or of another type.
LEVELS = Kind("a non-empty list of whole numbers from 0 to 2^63", (list,), lambda v: len(v) > 0 and all(
    isinstance(x, int) and not isinstance(x, bool) and 0 <= x < 2**63 for x in v))
TIMELINE = Obj(required={
    "times_ns": LEVELS, "levels": LEVELS, "resident": AMOUNT, "events": COUNT, "source": STR, "duration_ns": AMOUNT,
    "spans": ListOf(Obj(required={"module": COUNT, "phase": STR, "start_ns": AMOUNT, "end_ns": AMOUNT}))})
STEP_MEMORY = Obj(required={
    "resident": AMOUNT, "peak": SNAPSHOT, "allocator_peak": MAYBE_AMOUNT, "rss_peak": MAYBE_AMOUNT,
    "reserved_peak": MAYBE_AMOUNT, "intervals": ListOf(Row((MAYBE_MODULE, STR, Obj(required={
        "tracked": SNAPSHOT, "allocator_peak": MAYBE_AMOUNT, "reserved_peak": MAYBE_AMOUNT}))))},
    optional={"preexisting": AMOUNT, "timeline": Nullable(TIMELINE)})
OPTIMIZER = Obj(required={"state": MapOf(MapOf(TENSOR)),
                          "param_groups": ListOf(Obj(required={"params": ListOf(COUNT)}))})
CHECKPOINT = Obj(required={
    "model": MapOf(TENSOR), "optimizers": ListOf(Nullable(OPTIMIZER)), "config": PLAIN, "step": COUNT}, optional={
    # Optional here as in ``load_file``'s REQUIRED: a probe reads the network alone; a resume missing them ends
    # in one line when it restores them.
    "strategy": Obj(optional={"module": COUNT, "schedule_steps": COUNT}, rest=PLAIN),
    "rng": Obj(required={
        "torch": TENSOR, "cuda": ListOf(TENSOR), "data": TENSOR,
        "numpy": Obj(required={"kind": STR, "keys": TENSOR, "pos": INT, "has_gauss": INT, "gauss": NUMBER}),
        "python": Obj(required={"version": INT, "internal": ListOf(INT), "gauss_next": MAYBE_NUMBER})}),
    "history": Obj(required={"losses": ListOf(ListOf(MAYBE_NUMBER)), "seconds": ListOf(AMOUNT),
                             "data_seconds": ListOf(AMOUNT)}),
    "profile": Obj(required={"timing": ListOf(ListOf(Row((MAYBE_MODULE, STR, AMOUNT)))),
                             "memory": ListOf(STEP_MEMORY)}, optional={
        "isolated": Nullable(ListOf(MAYBE_AMOUNT)), "floor_by_module": Nullable(ListOf(MAYBE_AMOUNT)),
        "flops": ListOf(Row((MAYBE_MODULE, STR, AMOUNT)))}),
    "kinds": ListOf(STR), "sessions": ListOf(Obj(rest=PLAIN)), "format": STR,
    "max_batch": Nullable(Obj(required={"budget_bytes": AMOUNT, "batch_size": COUNT, "peak_bytes": MAYBE_AMOUNT,
                                        "backend": STR, "tried": ListOf(TRY)}, rest=PLAIN))})

def read(path: Path, schema: Obj, what: str) -> dict:
    """The JSON document at ``path`` checked against ``schema``, or ``ConfigError`` naming the file and the field
    (``what`` the file should have been); ``FileNotFoundError`` is left to the caller, which knows what a
    missing file means."""
    document = read_json(path)
    check(document, schema, path, f"the file is damaged or not {what}")
    return document
