"""GPU acceptance check: every CUDA path of gimbench in one go, on one device, in a few minutes.

    PYTHONPATH=. python3 benchmarks/gpu_check.py              # on a machine with a GPU (< 8 min on one H100/H200)
    python benchmarks/gpu_check.py --device cpu --preset tiny --steps 8 --out /tmp/check   # a dry run on the CPU

Installs nothing and downloads nothing (the embedded synthetic data). What it runs and checks:

1. ``gimbench run`` (the Python API, as the CLI calls it) for ``cpc`` and the three ``gim`` schedules at
   the paper presets, audio depth 6 and vision depth 3: warm-up, memory-tracked steps (allocator watch,
   tensor tracker, NVML sampler, the greedy floor measured module by module), timed steps (CUDA events),
   unprofiled steps; audio InfoNCE heads send their negatives' indices from pinned host memory.
   Checks on every run: the allocator's peak is at least the tracker's, for the step and every module;
   the floor is at most the step peak for per-module GIM and below it for summed; NVML's peak is at least
   the allocator's (device-wide: contexts and cached blocks on top).
2. ``--find-max-batch`` with a budget small enough that some tries run out of memory: the search must
   recover from each ``OutOfMemoryError`` (no memory left behind: allocated bytes return to where they
   were) and end at a batch size that fits.
3. ``--trace`` on a small per-module GIM run: trace.json parses as a Chrome trace with one gimbench event per
   (module, phase); on CUDA the memory_viz snapshot (``torch.cuda.memory._record_memory_history`` /
   ``_dump_snapshot``) must load with PyTorch's snapshot reader (``torch.cuda._memory_viz``) and hold
   segments; on the CPU it must be recorded as skipped.
4. With ``--cpu-compare``: each configuration's memory steps also on the CPU (the CPU allocator backend).

Writes ``<out>/gpu_check-<device>.json`` and ``.md`` (default ``reports/reference/``); exits 1 if any check
failed (every configuration still runs, so one run shows everything that breaks). With time left on the GPU,
``benchmarks/gpu_compare.py`` runs ``gimbench compare``'s memory half there next.
"""

from __future__ import annotations

import argparse
import gc
import json
import pickle
import re
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

from gimbench import RunConfig, run
from gimbench.results.schema import write_json_atomic

REFERENCE_DEPTHS = {"audio": 6, "vision": 3}
METHODS = (("cpc", "per-module"), ("gim", "per-module"), ("gim", "summed"), ("gim", "sequential"))
MIB = 2**20
STEP_KEYS = ("time_ms", "time_ms_unprofiled", "timer_overhead", "samples_per_second", "peak_memory_bytes",
             "tracked_peak_bytes", "untracked_bytes", "reserved_peak_bytes", "resident_bytes", "floor_bytes",
             "floor_by_module_bytes", "peak_over_floor", "nvml_used_bytes", "nvml_note", "memory_steps")


def measure(cfg: RunConfig) -> dict:
    """One run's step and per-module figures."""
    result = run(cfg).to_json()
    return {
        "memory_backend": result["memory_backend"],
        "step": {k: result["step"].get(k) for k in STEP_KEYS},
        "modules": [{"name": m["name"], "time_ms": m.get("time_ms"), "memory": m.get("memory")}
                    for m in result["modules"]],
        "environment": result["environment"],
    }


def problems(row: dict) -> list[str]:
    """What is wrong with one run's figures."""
    found, step, mode = [], row["step"], row.get("gim_mode")
    if step["peak_memory_bytes"] is None or step["tracked_peak_bytes"] is None:
        return ["no memory figures"]
    if step["peak_memory_bytes"] < step["tracked_peak_bytes"]:
        found.append(f"step: allocator {step['peak_memory_bytes']} < tracker {step['tracked_peak_bytes']}")
    for m in row["modules"]:
        mem = m["memory"] or {}
        if mem and mem["peak_bytes"] < mem["tracked_peak_bytes"]:
            found.append(f"{m['name']}: allocator {mem['peak_bytes']} < tracker {mem['tracked_peak_bytes']}")
        if not mem:
            found.append(f"{m['name']}: no memory row")
    floor = step["floor_bytes"]
    if floor is None:
        found.append("no floor")
    elif row["model"] == "gim" and mode == "summed" and not floor < step["peak_memory_bytes"]:
        found.append(f"summed: floor {floor} not below the peak {step['peak_memory_bytes']}")
    if step["time_ms"] is None:
        found.append("no timed step")
    nvml = step["nvml_used_bytes"]
    if row["device"] == "cuda" and (nvml is None or nvml < step["peak_memory_bytes"]):
        found.append(f"NVML peak {nvml} missing or below the allocator's ({step['nvml_note']})")
    return found


def max_batch_check(device: str, preset: str, budget: str, scratch: str) -> dict:
    """A batch-size search that runs out of memory on the way (on CUDA) and must recover."""
    before = torch.cuda.memory_allocated() if device == "cuda" else None
    cfg = RunConfig(model="gim", gim_mode="per-module", modality="audio", depth=6, preset=preset, device=device,
                    find_max_batch=True, memory_budget=budget, steps=2, warmup_steps=1, memory_steps=1,
                    profile_steps=0, probe=False, quiet=True, out=scratch, name="max-batch")
    result = run(cfg).to_json()
    gc.collect()
    after = torch.cuda.memory_allocated() if device == "cuda" else None
    tried = result["max_batch"]["tried"]
    found = []
    if device == "cuda":
        if not any(t["peak_bytes"] is None for t in tried):
            found.append("no try ran out of memory: lower --budget to exercise the recovery")
        # The run's own network and optimizer are freed once run() returns: nothing of the tries stays.
        if after != before:
            found.append(f"allocated bytes {before} before the search, {after} after it")
    if not result["max_batch"]["batch_size"] >= 1:
        found.append("no batch size fits")
    return {"budget": budget, "max_batch": result["max_batch"], "allocated_before": before,
            "allocated_after": after, "problems": found}


def trace_check(device: str, preset: str, scratch: str) -> dict:
    """``--trace`` on a depth-2 per-module GIM run: the Chrome trace, and on CUDA the memory_viz snapshot."""
    cfg = RunConfig(model="gim", gim_mode="per-module", modality="audio", depth=2, preset=preset, device=device,
                    steps=2, warmup_steps=1, memory_steps=0, profile_steps=0, probe=False, quiet=True, out=scratch,
                    name="trace", overwrite=True, trace=True)
    outcome = run(cfg)
    folder, block, found = Path(outcome.folder), outcome.trace, []
    events = json.loads((folder / block["file"]).read_text())["traceEvents"]
    phases = [(e["args"]["module"], e["args"]["phase"]) for e in events if e.get("cat") == "gimbench"]
    expected = {(k, p) for k in (0, 1) for p in ("forward", "loss", "backward", "optimizer")}
    if sorted(phases) != sorted(expected):
        found.append(f"trace: (module, phase) events {sorted(phases)}, expected one of each of {sorted(expected)}")
    if not any(e.get("cat") != "gimbench" for e in events):
        found.append("trace: no profiler events")
    snapshot = block.get("memory_snapshot")
    if device == "cuda":
        if snapshot is None:
            found.append(f"no memory snapshot on CUDA ({block.get('memory_snapshot_note')})")
        else:
            from torch.cuda import _memory_viz

            loaded = pickle.loads((folder / snapshot).read_bytes())
            if not loaded.get("segments"):
                found.append("memory snapshot: no segments")
            if "<html" not in _memory_viz.trace_plot(loaded).lower():
                found.append("memory snapshot: memory_viz's trace_plot did not render it")
    elif snapshot is not None or "skipped" not in block.get("memory_snapshot_note", ""):
        found.append(f"on {device} the memory snapshot must be skipped, got {block}")
    return {"trace_events": len(events), "phase_events": len(phases), "memory_snapshot": snapshot,
            "memory_snapshot_bytes": (folder / snapshot).stat().st_size if snapshot else None, "problems": found}


def table(rows: list[dict], name: str, preset: str) -> str:
    """The markdown table of every run."""
    def mib(v):
        return "-" if v is None else f"{v / MIB:.0f}"

    lines = [f"gimbench GPU check on {name}, preset {preset}", "",
             "| config | backend | step peak MiB | tracked MiB | untracked MiB | floor MiB | peak/floor | "
             "NVML peak MiB | step ms | samples/s | problems |", "|" + "---|" * 11]
    for r in rows:
        s = r.get("step") or {}
        config = f"{r['modality']} d{r['depth']} {r['model']} {r['gim_mode'] if r['model'] == 'gim' else ''}"
        ratio = "-" if s.get("peak_over_floor") is None else f"{s['peak_over_floor']:.2f}"
        ms = "-" if s.get("time_ms") is None else f"{s['time_ms']:.1f}"
        sps = "-" if s.get("samples_per_second") is None else f"{s['samples_per_second']:.1f}"
        lines.append(f"| {config} | {r.get('memory_backend', '-')} | {mib(s.get('peak_memory_bytes'))} | "
                     f"{mib(s.get('tracked_peak_bytes'))} | {mib(s.get('untracked_bytes'))} | "
                     f"{mib(s.get('floor_bytes'))} | {ratio} | {mib(s.get('nvml_used_bytes'))} | {ms} | {sps} | "
                     f"{'; '.join(r['problems']) or 'ok'} |")
    return "\n".join(lines) + "\n"


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    p.add_argument("--preset", default="paper", choices=("paper", "tiny"))
    p.add_argument("--steps", type=int, default=24, help="steps per configuration")
    p.add_argument("--modality", default="both", choices=("both", "audio", "vision"))
    p.add_argument("--batch-size", type=int, default=None, help="override the preset's batch size")
    p.add_argument("--budget", default=None, help="--memory-budget of the batch-size search (cuda 2GiB, cpu 32MiB)")
    p.add_argument("--cpu-compare", action="store_true", help="also measure each configuration on the CPU")
    p.add_argument("--out", default="reports/reference", help="folder for the JSON and markdown results")
    return p.parse_args()


def main() -> int:
    args = parse()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; use --device cpu --preset tiny for a dry run", file=sys.stderr)
        return 2
    name = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    rows, started = [], time.perf_counter()
    modalities = REFERENCE_DEPTHS if args.modality == "both" else {args.modality: REFERENCE_DEPTHS[args.modality]}
    configs = [(modality, depth, *method) for modality, depth in modalities.items() for method in METHODS]
    with tempfile.TemporaryDirectory() as scratch:
        for modality, depth, model, mode in configs:
            common = dict(model=model, gim_mode=mode, modality=modality, depth=depth, preset=args.preset, quiet=True,
                          out=scratch, warmup_steps=min(3, args.steps // 4), memory_steps=1, probe=False,
                          profile_steps=max(1, (args.steps - 4) // 2), batch_size=args.batch_size, overwrite=True,
                          name=f"{modality}-{model}-{mode}")
            row = {"modality": modality, "depth": depth, "model": model, "gim_mode": mode, "device": args.device}
            # sequential measures module k in the second step of its share: every share needs two steps or more
            steps = max(args.steps, 3 * depth) if (model, mode) == ("gim", "sequential") else args.steps
            try:
                row |= measure(RunConfig(device=args.device, steps=steps, **common))
                row["problems"] = problems(row)
                if args.cpu_compare and args.device == "cuda":
                    cpu = dict(common, warmup_steps=1, profile_steps=0, name=common["name"] + "-cpu")
                    row["cpu"] = measure(RunConfig(device="cpu", steps=3, **cpu))
            except Exception as e:  # one broken configuration must not hide the others
                row["problems"] = [f"{type(e).__name__}: {e}"]
                row["traceback"] = traceback.format_exc()
            rows.append(row)
            print(f"{modality} {model} {mode}: {'; '.join(row['problems']) or 'ok'} "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)
        budget = args.budget or ("2GiB" if args.device == "cuda" else "32MiB")
        try:
            search = max_batch_check(args.device, args.preset, budget, scratch)
        except Exception as e:
            search = {"budget": budget, "problems": [f"{type(e).__name__}: {e}"], "traceback": traceback.format_exc()}
        print(f"find-max-batch {budget}: {'; '.join(search['problems']) or 'ok'} "
              f"({time.perf_counter() - started:.0f} s)", flush=True)
        try:
            traced = trace_check(args.device, args.preset, scratch)
        except Exception as e:
            traced = {"problems": [f"{type(e).__name__}: {e}"], "traceback": traceback.format_exc()}
        print(f"--trace: {'; '.join(traced['problems']) or 'ok'} (memory snapshot {traced.get('memory_snapshot')}; "
              f"{time.perf_counter() - started:.0f} s)", flush=True)
    failed = [r for r in rows if r["problems"]] + [c for c in (search, traced) if c["problems"]]
    markdown = table(rows, name, args.preset) + (
        f"\nfind-max-batch, budget {search['budget']}: "
        f"{'; '.join(search['problems']) or 'ok'}; tried {search.get('max_batch', {}).get('tried')}\n"
        f"\n--trace: {'; '.join(traced['problems']) or 'ok'}; memory snapshot {traced.get('memory_snapshot')} "
        f"({traced.get('memory_snapshot_bytes')} bytes)\n")
    write_reference(Path(args.out), "gpu_check", name, {
        "schema": "gimbench.gpu_check/2", "device_name": name, "preset": args.preset, "batch_size": args.batch_size,
        "steps": args.steps, "seconds": time.perf_counter() - started, "runs": rows, "max_batch": search,
        "trace": traced, "passed": not failed}, markdown)
    print(f"{'all checks passed' if not failed else 'CHECKS FAILED'}")
    return 1 if failed else 0


def write_reference(out: Path, stem: str, name: str, document: dict, markdown: str) -> None:
    """``<out>/<stem>-<device name>.json`` and ``.md``; prints the markdown and where both went."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-")
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / f"{stem}-{slug}.json", document)
    (out / f"{stem}-{slug}.md").write_text(markdown)
    print(markdown)
    print(f"wrote {out}/{stem}-{slug}.json and .md")


if __name__ == "__main__":
    sys.exit(main())
