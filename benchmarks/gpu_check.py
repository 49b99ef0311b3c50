"""GPU check: paper presets on one CUDA device, every method, memory and time per module.

    python benchmarks/gpu_check.py                      # on a machine with a GPU, < 8 min on one H100
    python benchmarks/gpu_check.py --device cpu --preset tiny --steps 8   # a dry run of the script itself
    python benchmarks/gpu_check.py --device cpu --modality audio --batch-size 16 --steps 8   # paper sizes, CPU

Runs audio depth 6 and vision depth 3 for ``cpc`` and the three ``gim`` modes, prints one table, and
writes JSON (default ``reports/reference/gpu_check-<device name>.json``). For every configuration it
puts the CUDA caching allocator's peak next to the tensor tracker's peak of the same steps, and, with
``--cpu-compare``, next to the tracker's peak of the same configuration trained on the CPU.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from gimbench import RunConfig, run
from gimbench.results import write_json_atomic

REFERENCE_DEPTHS = {"audio": 6, "vision": 3}
METHODS = (("cpc", "per-module"), ("gim", "per-module"), ("gim", "summed"), ("gim", "sequential"))
MIB = 2**20


def measure(cfg: RunConfig) -> dict:
    """One run's step and per-module figures."""
    result = run(cfg).to_json()
    step = result["step"]
    keep = ("time_ms", "time_ms_unprofiled", "timer_overhead", "samples_per_second", "peak_memory_bytes",
            "tracked_peak_bytes", "resident_bytes", "floor_bytes", "peak_over_floor", "nvml_used_bytes", "nvml_note")
    return {
        "memory_backend": result["memory_backend"],
        "step": {k: step.get(k) for k in keep},
        "modules": [{"name": m["name"], "time_ms": m.get("time_ms"), "memory": m.get("memory")}
                    for m in result["modules"]],
        "environment": result["environment"],
    }


def _mib(value: int | None) -> str:
    return "-" if value is None else f"{value / MIB:.0f}"


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    p.add_argument("--preset", default="paper", choices=("paper", "tiny"))
    p.add_argument("--steps", type=int, default=24, help="steps per configuration")
    p.add_argument("--modality", default="both", choices=("both", "audio", "vision"))
    p.add_argument("--batch-size", type=int, default=None, help="override the preset's batch size")
    p.add_argument("--cpu-compare", action="store_true", help="also track each configuration on the CPU")
    p.add_argument("--out", default=None, help="JSON path (default reports/reference/gpu_check-<device>.json)")
    return p.parse_args()


def main() -> int:
    args = parse()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; use --device cpu --preset tiny for a dry run", file=sys.stderr)
        return 2
    console = Console(width=170)
    name = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    rows, started = [], time.perf_counter()
    modalities = REFERENCE_DEPTHS if args.modality == "both" else {args.modality: REFERENCE_DEPTHS[args.modality]}
    configs = [(modality, depth, *method) for modality, depth in modalities.items() for method in METHODS]
    with tempfile.TemporaryDirectory() as scratch:
        for modality, depth, model, mode in configs:
            common = dict(model=model, gim_mode=mode, modality=modality, depth=depth, preset=args.preset, quiet=True,
                          out=scratch, warmup_steps=min(3, args.steps // 4), memory_steps=1,
                          profile_steps=max(1, (args.steps - 4) // 2), batch_size=args.batch_size)
            row = {"modality": modality, "depth": depth, "model": model, "gim_mode": mode,
                   "device": measure(RunConfig(device=args.device, steps=args.steps, **common))}
            if args.cpu_compare and args.device == "cuda":
                cpu = dict(common, warmup_steps=1, profile_steps=0)
                row["cpu"] = measure(RunConfig(device="cpu", steps=2, **cpu))
            rows.append(row)
            console.print(f"done {modality} {model} {mode} ({time.perf_counter() - started:.0f} s)")
    table = Table(title=f"gimbench GPU check on {name}, preset {args.preset}")
    for column in ("config", "backend", "step peak MiB", "tracked MiB", "cpu tracked MiB", "floor MiB",
                   "peak/floor", "NVML used MiB", "step ms", "samples/s"):
        table.add_column(column, justify="left" if column in ("config", "backend") else "right")
    for r in rows:
        s = r["device"]["step"]
        cpu = r.get("cpu", {}).get("step", {}).get("tracked_peak_bytes")
        ratio = "-" if s["peak_over_floor"] is None else f"{s['peak_over_floor']:.2f}"
        table.add_row(f"{r['modality']} d{r['depth']} {r['model']} {r['gim_mode'] if r['model'] == 'gim' else ''}",
                      r["device"]["memory_backend"], _mib(s["peak_memory_bytes"]), _mib(s["tracked_peak_bytes"]),
                      _mib(cpu), _mib(s["floor_bytes"]), ratio, _mib(s["nvml_used_bytes"]), f"{s['time_ms']:.1f}",
                      f"{s['samples_per_second']:.1f}")
    console.print(table)
    out = Path(args.out or f"reports/reference/gpu_check-{re.sub(r'[^A-Za-z0-9]+', '-', name).strip('-')}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out, {"schema": "gimbench.gpu_check/1", "device_name": name, "preset": args.preset,
                            "batch_size": args.batch_size, "steps": args.steps,
                            "seconds": time.perf_counter() - started, "runs": rows})
    console.print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
