"""The benchmark suite in benchmarks/ runs, stores memory figures, and bench-compare catches growth."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gimbench.cli import main

pytestmark = pytest.mark.slow  # every test reads a benchmark run started with pytest in a subprocess

ROOT = Path(__file__).resolve().parents[1]
SUBSET = "gim-per-module-audio-d3 or cpc-vision-d1"


def case_ids() -> list[str]:
    """The ids of every case benchmarks/test_training_step.py defines, read from its ``CASES``."""
    spec = importlib.util.spec_from_file_location("training_step", ROOT / "benchmarks" / "test_training_step.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return [case.id for case in module.CASES]


def pytest_benchmarks(*args: str) -> subprocess.CompletedProcess:
    # Not an xdist worker's variables: pytest-benchmark reads them as "xdist is on" and disables itself.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")} | {"OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "pytest", "benchmarks/test_training_step.py", "-q", "-p", "no:cacheprovider"]
    return subprocess.run([*command, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_suite_collects_and_runs_in_disable_mode():
    """Every case collects; each method on both modalities at depth 1, and sequential GIM's cycle over
    three modules, run one untimed step after their memory-tracked ones (the suite itself asserts
    positive step and module peaks)."""
    done = pytest_benchmarks("--benchmark-disable", "-k", "d1 or gim-sequential-audio-d3", "-rp")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    cases = case_ids()
    chosen = {c for c in cases if "d1" in c or "gim-sequential-audio-d3" in c}  # what -k selects
    assert {c.rsplit("-", 1)[0] for c in chosen} == {c.rsplit("-", 1)[0] for c in cases}  # every method, modality
    passed = set(re.findall(r"^PASSED \S+::test_training_step\[(\S+)\]$", done.stdout, re.MULTILINE))
    deselected = int(re.search(r"(\d+) deselected", done.stdout).group(1))
    assert passed == chosen and len(passed) + deselected == len(cases)  # each chosen case ran; none failed to collect
    summary = done.stdout.split("memory per training step", 1)[1]
    assert "test_training_step[cpc-audio-d1]" in summary and "floor" in summary


@pytest.fixture(scope="module")
def suite_json(tmp_path_factory) -> Path:
    """A real benchmark JSON of two cases, one round each (--benchmark-disable writes no JSON)."""
    path = tmp_path_factory.mktemp("bench") / "bench.json"
    done = pytest_benchmarks("-k", SUBSET, "--benchmark-only", "--benchmark-min-rounds=1", "--benchmark-max-time=0",
                             "--benchmark-warmup=off", f"--benchmark-json={path}")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return path


def test_extra_info_carries_memory_and_machine_info_the_device(suite_json):
    doc = json.loads(suite_json.read_text())
    assert len(doc["benchmarks"]) == 2
    for bench in doc["benchmarks"]:
        info = bench["extra_info"]
        assert info["memory_backend"] == "cpu-allocator" and info["step_peak_bytes"] > 0
        assert len(info["module_peak_bytes"]) == info["depth"] and all(p > 0 for p in info["module_peak_bytes"])
        assert max(info["module_peak_bytes"]) <= info["step_peak_bytes"]
    machine = doc["machine_info"]
    assert machine["torch_version"] and "cuda_version" in machine and machine["device_name"]


def doctored(source: Path, target: Path, change) -> Path:
    doc = json.loads(source.read_text())
    change(doc["benchmarks"][0]["extra_info"])
    target.write_text(json.dumps(doc))
    return target


def compare(capsys, old: Path, new: Path, *options: str) -> tuple[int, str, str]:
    code = main(["bench-compare", str(old), str(new), *options])
    out, err = capsys.readouterr()
    return code, out, err


def test_bench_compare_passes_on_the_same_file(suite_json, capsys):
    code, out, err = compare(capsys, suite_json, suite_json, "--max-increase", "0%")
    assert code == 0 and "ok" in out and "REGRESSION" not in out and err == ""


def test_bench_compare_fails_on_a_larger_step_or_module_peak(suite_json, tmp_path, capsys):
    def grow_step(info):
        info["step_peak_bytes"] = int(info["step_peak_bytes"] * 1.2)

    def grow_module(info):
        info["module_peak_bytes"][-1] = int(info["module_peak_bytes"][-1] * 1.2)

    for grow in (grow_step, grow_module):
        new = doctored(suite_json, tmp_path / "new.json", grow)
        code, out, err = compare(capsys, suite_json, new, "--max-increase", "10%")
        assert code == 1 and "REGRESSION" in out and err.startswith("gimbench: memory regression: 1 of 2")
        name = json.loads(new.read_text())["benchmarks"][0]["name"]
        regressed = next(line for line in out.splitlines() if "REGRESSION" in line)
        assert name in regressed and name in err and err.count("\n") == 1
        if grow is grow_module:
            assert f"module {json.loads(new.read_text())['benchmarks'][0]['extra_info']['module_names'][-1]} " in err
        assert compare(capsys, suite_json, new, "--max-increase", "25")[0] == 0


@pytest.mark.parametrize("content,message", [
    (None, "does not exist"), ("{not json", "not valid JSON"), ('{"machine_info": {}}', "not a pytest-benchmark"),
    ('{"benchmarks": [{"name": "x", "extra_info": {}}]}', "no benchmark with memory figures"),
])
def test_bench_compare_bad_files_are_one_line_errors(suite_json, tmp_path, capsys, content, message):
    bad = tmp_path / "bad.json"
    if content is not None:
        bad.write_text(content)
    code, _, err = compare(capsys, suite_json, bad)
    assert code == 2 and message in err and err.count("\n") == 1


def test_bench_compare_bad_percentage_and_other_backend(suite_json, tmp_path, capsys):
    code, _, err = compare(capsys, suite_json, suite_json, "--max-increase", "ten")
    assert code == 2 and "--max-increase" in err and err.count("\n") == 1
    other = doctored(suite_json, tmp_path / "cuda.json", lambda info: info.update(memory_backend="cuda-allocator"))
    code, _, err = compare(capsys, suite_json, other)
    assert code == 2 and "not comparable" in err and err.count("\n") == 1

