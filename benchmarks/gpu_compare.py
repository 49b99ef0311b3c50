"""The memory half of ``gimbench compare`` on a GPU: each row's step peak and time against plain CPC.

    PYTHONPATH=. python3 benchmarks/gpu_compare.py             # on a machine with a GPU, after gpu_check.py
    python benchmarks/gpu_compare.py --device cpu --preset tiny --out /tmp/check   # a dry run on the CPU

Runs ``gimbench compare --no-probe`` for audio (depth 6, batch 16) and vision (depth 3, batch 8): the settings
of the README's headline table, so the GPU figures sit beside the CPU ones. Every row is a fresh process (the
sweep runner). The comparison folders (with checkpoints) stay in a scratch folder; what is kept is a summary per
row, written to ``<out>/compare-<device>.json`` and ``.md`` (default ``reports/reference/``). Exits 1 if a row
did not complete.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from gpu_check import write_reference  # the script's own folder is on sys.path

SETTINGS = {"audio": (6, 16), "vision": (3, 8)}  # depth, batch at the paper preset
# One round: the memory half needs each row's peak once (a second round would time it only, with no peak).
PROFILE = ["--no-probe", "--steps", "6", "--warmup-steps", "1", "--profile-steps", "2", "--memory-steps", "1",
           "--rounds", "1"]
MIB = 2**20


def compare(modality: str, device: str, preset: str, scratch: Path) -> dict:
    """One modality's comparison: its command, and per row the step peak and time with their ratios to cpc."""
    depth, batch = SETTINGS[modality]
    folder = scratch / f"compare-{modality}"
    command = ["gimbench", "compare", "--modality", modality, "--preset", preset, "--device", device,
               "--depth", str(depth), *(["--batch-size", str(batch)] if preset == "paper" else []), *PROFILE,
               "--quiet", "--out", str(folder)]
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", *command], capture_output=True, text=True)
    found = {"command": " ".join(command[:-2]), "exit_code": done.returncode,
             "seconds": time.perf_counter() - started, "rows": [], "problems": []}
    if not (folder / "sweep.json").is_file():
        found["problems"].append(f"no sweep.json: {done.stderr.strip().splitlines()[-1:] or done.returncode}")
        return found
    records = json.loads((folder / "sweep.json").read_text())["runs"]
    base = next((r for r in records if r["label"] == "cpc" and r["status"] == "complete"), None)
    for r in records:
        row = {"row": r["label"], "status": r["status"], "error": r.get("error")}
        if r["status"] == "complete":
            results = json.loads((folder / r["folder"] / "results.json").read_text())
            row |= {"peak_memory_bytes": r["peak_memory_bytes"], "step_time_ms": r["step_time_ms"],
                    "timed_steps": results["step"]["timed_steps"], "memory_backend": results["memory_backend"],
                    "nvml_used_bytes": results["step"].get("nvml_used_bytes"),
                    "reserved_peak_bytes": results["step"].get("reserved_peak_bytes")}
            if base is not None:
                row["x_cpc_peak"] = r["peak_memory_bytes"] / base["peak_memory_bytes"]
                row["x_cpc_time"] = r["step_time_ms"] / base["step_time_ms"]
        else:
            found["problems"].append(f"{r['label']}: {r['status']}: {r.get('error')}")
        found["rows"].append(row)
    return found


def markdown(found: dict, name: str) -> str:
    lines = [f"# `gimbench compare` memory half on {name}", ""]
    for modality, part in found.items():
        lines += [f"## {modality}: `{part['command']}` ({part['seconds']:.0f} s)", "",
                  "| row | backend | step peak MiB | x cpc | step ms | x cpc time | timed steps | reserved MiB |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in part["rows"]:
            if r["status"] != "complete":
                lines.append(f"| {r['row']} | {r['status']}: {r['error']} | | | | | | |")
                continue
            reserved = r.get("reserved_peak_bytes")
            lines.append(f"| {r['row']} | {r['memory_backend']} | {r['peak_memory_bytes'] / MIB:.1f} | "
                         f"{r.get('x_cpc_peak', float('nan')):.2f} | {r['step_time_ms']:.1f} | "
                         f"{r.get('x_cpc_time', float('nan')):.2f} | {r['timed_steps']} | "
                         f"{'-' if reserved is None else f'{reserved / MIB:.1f}'} |")
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    p.add_argument("--preset", default="paper", choices=("paper", "tiny"))
    p.add_argument("--out", default="reports/reference", help="folder for the JSON and markdown summary")
    args = p.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_compare: no CUDA device here; use --device cpu --preset tiny for a dry run", file=sys.stderr)
        return 2
    name = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    with tempfile.TemporaryDirectory() as scratch:
        found = {}
        for modality in SETTINGS:
            found[modality] = compare(modality, args.device, args.preset, Path(scratch))
            print(f"{modality}: {'; '.join(found[modality]['problems']) or 'ok'} "
                  f"({found[modality]['seconds']:.0f} s)", flush=True)
    failed = any(part["problems"] for part in found.values())
    write_reference(Path(args.out), "compare", name, {"schema": "gimbench.gpu_compare/1", "device_name": name,
                                                      "preset": args.preset, "comparisons": found,
                                                      "passed": not failed}, markdown(found, name))
    print("all rows complete" if not failed else "ROWS FAILED")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
