"""The typed records of results.json serialise to the keys the contract has always had."""

from __future__ import annotations

from dataclasses import asdict

from gimbench.results.schema import Failure, MaxBatch, ModuleResult, RankRow, StepResult, Try


def test_a_failure_is_its_reason_message_step_and_details_in_one_flat_block():
    failure = Failure("interrupted", "stopped", 7, {"signal": "SIGINT", "resume_command": "gimbench run --resume x"})
    assert list(failure.to_json()) == ["reason", "message", "step", "signal", "resume_command"]
    assert failure.to_json()["signal"] == "SIGINT"


def test_a_rank_row_flattens_its_step_and_its_modes_extras():
    step = StepResult(10.0, 9.0, 0.1, 400.0, 1.0, 0.5, 3, 4, memory={"peak_memory_bytes": 5})
    module = ModuleResult(0, "conv1", 12, {"first": 2.4, "last": 2.0, "history": [2.4, 2.0]})
    row = RankRow(1, "cpu", [0], step, [module], 0.25, {"split": {"by": "count"}}).to_json()
    assert row["samples_per_s"] == 400.0 and row["step"]["peak_memory_bytes"] == 5 and "memory" not in row["step"]
    assert row["module_rows"] == [asdict(module)] and row["split"] == {"by": "count"} and row["idle_fraction"] == 0.25


def test_the_max_batch_block_reads_back_as_written():
    found = MaxBatch(2**30, 16, 900, "cpu-allocator", [Try(16, 900, True), Try(32, None, False)])
    assert MaxBatch.from_json(asdict(found)) == found


def test_a_run_result_renders_itself_with_rich_as_the_run_summary(tmp_path):
    import io

    from rich.console import Console

    from gimbench import RunConfig, run

    result = run(RunConfig(preset="tiny", device="cpu", depth=1, steps=2, warmup_steps=0, profile_steps=1,
                           memory_steps=1, probe=False, quiet=True, out=str(tmp_path)))
    console = Console(file=io.StringIO(), width=100)
    console.print(result)
    assert console.file.getvalue().startswith("gimbench run gim (per-module)") and "conv1" in console.file.getvalue()
    # 2 steps hold the unprofiled step and the memory-tracked one; the summary says the timed one did not fit.
    said = " ".join(console.file.getvalue().split())
    assert "timed steps: 0 of the 1 asked for (--profile-steps) fit in 2 steps" in said
