"""The reference runs whose final parameters a refactor must not change.

Each is a short tiny-preset CPU run through the Python API; its ``final_parameter_checksum`` (sha256 over every
trained parameter) is printed as JSON, and, with ``--check FILE``, compared against a recorded set:

    PYTHONPATH=. python benchmarks/reference_checksums.py > /tmp/now.json
    PYTHONPATH=. python benchmarks/reference_checksums.py --check docs/results/reference-checksums.json

The values are those of this machine's kind (CPU, torch 2.11, deterministic kernels); another CPU or library
version may round differently, so the recorded file states where it was made.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile

from gimbench import RunConfig, run

RUNS = {
    "gim per-module audio d6": dict(model="gim", modality="audio", depth=6),
    "gim summed audio d6": dict(model="gim", gim_mode="summed", modality="audio", depth=6),
    "gim sequential audio d6": dict(model="gim", gim_mode="sequential", modality="audio", depth=6),
    "cpc audio d6": dict(model="cpc", modality="audio", depth=6),
    "gim per-module vision d3": dict(model="gim", modality="vision", depth=3),
    "cpc vision d3": dict(model="cpc", modality="vision", depth=3),
    "gim modules 2 audio d6": dict(model="gim", modality="audio", depth=6, modules=2),
    "greedy-supervised audio d6": dict(model="greedy-supervised", modality="audio", depth=6),
    "supervised vision d3": dict(model="supervised", modality="vision", depth=3),
}
COMMON = dict(preset="tiny", device="cpu", steps=12, warmup_steps=1, profile_steps=2, memory_steps=1,
              batch_size=4, seed=0, quiet=True, probe=False)


def checksums() -> dict[str, str]:
    """Each reference run's final parameter checksum, in a temporary folder."""
    with tempfile.TemporaryDirectory() as out:
        return {name: run(RunConfig(**COMMON, **options, out=out, name=f"ref{i}")).final_parameter_checksum
                for i, (name, options) in enumerate(RUNS.items())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", help="a JSON file of recorded checksums to compare with")
    args = parser.parse_args()
    now = checksums()
    if not args.check:
        print(json.dumps(now, indent=1))
        return 0
    with open(args.check) as f:
        recorded = json.load(f)["checksums"]
    changed = [name for name in RUNS if recorded.get(name) != now[name]]
    for name in RUNS:
        print(f"{'CHANGED' if name in changed else 'same   '} {name}: {now[name][:16]}")
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
