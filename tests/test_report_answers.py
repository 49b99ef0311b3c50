"""What a new user saw (#27 item 5): a verdict that answers the GIM question with its cause, timings with their
spread, plots only with data, honest labels and headings for unfinished runs, 80 columns, the trace's memory
track, and the command line's small messages. Results are synthetic results.json documents that pass the schema
validator: the report layer's logic, not a measurement."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from gimbench.cli import main
from gimbench.config import RunConfig
from gimbench.profiling.trace import memory_counters
from gimbench.report import plots
from gimbench.report.collect import Entry, labels, result_from_doc
from gimbench.report.export import answer, overview
from gimbench.report.groups import groups
from gimbench.report.html_tables import comparison_table, failures_table, side_by_side, unfinished_table
from gimbench.report.noise import ratio_text
from gimbench.report.page import cells, render
from gimbench.report.progress import TrainingProgress
from gimbench.report.terminal import resident_table
from gimbench.report.verdict import repeats_table, sentence, verdict_table
from gimbench.results.schemas import RESULTS
from gimbench.results.validate import check
from gimbench.sweep.compare import configurations
from gimbench.trainer import StepRecord

MIB = 2**20


def doc(model: str, peak: float, ms: float, iqr: float = 1.0, *, temporary: float = 1.0, head: int = 0,
        probe: bool = False, **config) -> dict:
    """A complete run's results.json: ``peak`` MiB of which ``temporary`` MiB temporaries at the step peak, step
    time ``ms`` with IQR ``iqr``, ``head`` bytes of loss-head parameters per module; checked by the schema."""
    cfg = RunConfig().to_dict() | {"model": model, "modality": "audio", "preset": "tiny", "depth": 2,
                                   "batch_size": 8, "steps": 20} | config
    memory = {"peak_bytes": int(peak * MIB), "peak_phase": "loss", "encoder_parameter_bytes": 1024,
              "head_parameter_bytes": head}
    modules = [{"index": k, "name": f"conv{k + 1}", "parameters": 10, "memory": memory,
                "loss": {"first": 1.0, "last": 0.5, "history": [1.0, 0.5]}} for k in range(2)]
    step = {"time_ms": ms, "time_ms_unprofiled": ms, "timer_overhead": 0.0, "samples_per_second": 8000 / ms,
            "time_ms_iqr": iqr, "data_ms": 0.1, "timed_steps": 10, "unprofiled_steps": 5,
            "peak_memory_bytes": int(peak * MIB), "floor_bytes": int(peak * MIB),
            "peak_breakdown_bytes": {"parameter": MIB // 4, "temporary": int(temporary * MIB)}}
    document = {"schema": "gimbench.run/1", "status": "complete", "memory_backend": "cpu-allocator", "config": cfg,
                "environment": {"device": "cpu"}, "modules": modules, "step": step,
                "final_parameter_checksum": "0", "wall_seconds": 1.0,
                "probe": {"speaker": {"per_module": [0.5, 0.6], "chance": 0.1}} if probe else None}
    check(document, RESULTS, Path("results.json"))
    return document


def comparison(*rows: dict) -> list[Entry]:
    return [Entry(Path(f"/c/runs/{i:03d}-{d['config']['model']}"), d) for i, d in enumerate(rows, 1)]


def timing_only(document: dict, ms: float) -> dict:
    """``document``'s row as a comparison's later round leaves it (``--no-probe --memory-steps 0``, as a real run
    writes it): step time ``ms``, no step peak, floor or breakdown, no module memory, an empty probe block."""
    memory = ("peak_memory_bytes", "floor_bytes", "peak_breakdown_bytes")
    step = {k: v for k, v in document["step"].items() if k not in memory}
    step |= {"time_ms": ms, "time_ms_unprofiled": ms, "samples_per_second": 8000 / ms}
    again = document | {"step": step, "probe": {}, "modules": [m | {"memory": None} for m in document["modules"]]}
    check(again, RESULTS, Path("results.json"))
    return again


def test_the_verdict_says_gim_saves_nothing_here_and_why():
    entries = comparison(doc("cpc", 4.0, 10, temporary=1.0), doc("gim", 8.0, 20, temporary=6.0, head=MIB))
    line = sentence(groups(entries)[0])
    assert "Best GIM row, gim per-module: 2.00x cpc's peak, no saving at this size" in line
    assert "temporary memory is 6.0 MiB at its peak against 1.0 MiB at cpc's" in line
    assert "loss heads keep 2.00 MiB resident against the encoder's 0.00 MiB" in line


def test_the_verdict_gives_gims_saving_and_its_time_cost_where_it_wins():
    entries = comparison(doc("cpc", 8.0, 10), doc("gim", 2.0, 30))
    line = sentence(groups(entries)[0])
    assert "Best GIM row, gim per-module: 0.25x cpc's peak, saving 6.0 MiB (75%) at 3.0x cpc's step time" in line
    assert "no saving" not in line and "why" not in line


def test_a_noisy_row_is_flagged_in_the_terminal_and_the_page_and_its_ratio_rounded():
    entries = comparison(doc("cpc", 4.0, 45.2, iqr=38.5), doc("gim", 8.0, 1070, iqr=20),
                         doc("cpc", 4.0, 12.0, iqr=0.1, checkpoint_activations=True))
    group = groups(entries)[0]
    table = dict((row[0], row) for row in cells(verdict_table(group))[1:])
    assert table["cpc"][6] == "85%!" and table["gim per-module"][6] == "2%"
    assert table["gim per-module"][7] == "~24x"  # 23.67 with an error of about 10: no decimal to give
    assert "Too noisy to rank by time: cpc (85%)" in sentence(group)
    runs = cells(comparison_table(entries, short=True))
    assert runs[1][6] == "38.5!" and runs[2][6] == "20.0"
    assert "Too noisy to rank by time: cpc (85%)" in render("r", [answer(entries)])


def test_ratio_precision_follows_the_spread():
    quiet, loud = comparison(doc("cpc", 1, 10, iqr=0.01), doc("gim", 1, 37.4, iqr=0.01))
    cell = {c.method: c for c in groups([quiet, loud])[0].cells}
    assert ratio_text(3.74, cell["gim per-module"], cell["cpc"]) == "3.74x"
    wide = comparison(doc("cpc", 1, 10, iqr=2), doc("gim", 1, 37.4, iqr=7))
    cell = {c.method: c for c in groups(wide)[0].cells}
    assert ratio_text(3.74, cell["gim per-module"], cell["cpc"]) == "3.7x"


def test_one_depth_draws_the_labelled_trade_off_and_no_plot_without_data():
    entries = comparison(doc("cpc", 4.0, 10), doc("gim", 8.0, 20))
    names = [f.name for f in overview(entries, []).figures]
    assert names == ["memory-vs-time-1"] and plots.accuracy_vs_memory(entries) is None
    deeper = [*entries, *comparison(doc("cpc", 6.0, 14, depth=4))]
    assert [f.name for f in overview(deeper, []).figures] == ["memory-vs-depth", "time-vs-depth"]
    assert plots.accuracy_vs_memory(comparison(doc("cpc", 4.0, 10, probe=True)))[:4] == b"\x89PNG"


def interrupted(options: dict, status: str = "interrupted") -> Entry:
    """A sweep's row stopped by a signal (or still running): no results, its record's given options
    (``None``/``auto`` unresolved)."""
    record = {"status": status, "options": RunConfig().to_dict() | options, "exit_code": 130, "error": None,
              "log": "logs/004.log", "steps_completed": 7, "resume_command": "gimbench run --resume /c/runs/004"}
    return Entry(Path("/c/runs/004-cpc-accumulate4"), None, record)


def test_an_interrupted_row_has_an_honest_label_and_heading():
    entries = [*comparison(doc("cpc", 4.0, 10), doc("gim", 8.0, 20)),
               interrupted({"model": "cpc", "accumulate": 4, "preset": "tiny", "steps": 20})]
    found = labels(entries)
    assert found == ["cpc · d2", "gim per-module · d2", "cpc accumulate 4"]
    assert failures_table(entries) is None
    table = cells(unfinished_table(entries))
    assert table[0][0] == "run" and table[1][:3] == ["cpc accumulate 4", "interrupted", "7"]
    out = io.StringIO()
    Console(file=out, width=80).print(side_by_side(entries, []))
    assert "Failed runs" not in out.getvalue() and "Runs not finished" in out.getvalue()
    running = interrupted({"model": "gim"}, status="running")
    assert failures_table([running]) is None and cells(unfinished_table([running]))[1][1] == "running"


def test_at_80_columns_nothing_is_cut_mid_word():
    console = Console(file=io.StringIO(), width=80, force_terminal=True, color_system=None)
    progress = TrainingProgress(console, 3000, enabled=True)
    progress.task = progress.bar.add_task("train", total=3000, losses="", rate="")
    progress(StepRecord(1589, [1.234, 2.345, 3.456, 4.567, 5.678, 6.789], 0.0123, 0.001, 8))
    console.print(progress.bar.get_renderable())
    assert "1590/3000" in console.file.getvalue() and "650.4 samples/s" in console.file.getvalue()
    entries = comparison(doc("cpc", 4.0, 10), doc("gim", 8.0, 20), doc("cpc", 4, 11, checkpoint_activations=True))
    out = io.StringIO()
    Console(file=out, width=80).print(side_by_side(entries, []))
    assert "001-cpc" in out.getvalue() and "003-cpc" in out.getvalue() and "/c/runs" in out.getvalue()
    resident = cells(resident_table(result_from_doc(entries[0].doc, entries[0].folder)))
    assert "(KiB)" in resident_table(result_from_doc(entries[0].doc, entries[0].folder)).title
    assert resident[1][2] == "1.0"  # the encoder's 1024 bytes of parameters, not 0.0 MiB


def test_the_trace_gets_a_memory_counter_track():
    events = [{"name": "[memory]", "ph": "i", "pid": 1, "ts": 5.0, "args": {"Total Allocated": 4096,
                                                                           "Device Type": 0}},
              {"name": "aten::mm", "ph": "X", "pid": 1, "ts": 6.0, "dur": 1.0}]
    assert memory_counters(events) == [{"ph": "C", "cat": "gimbench memory", "name": "gimbench memory allocated (cpu)",
                                        "pid": 1, "ts": 5.0, "args": {"bytes": 4096}}]


def test_compare_rounds_alternate_their_order():
    base = RunConfig(steps=3).to_dict()
    labels_ = [c.label for c in configurations(base, {"steps"}, depth=2, rounds=2)]
    assert labels_[:4] == ["cpc", "cpc-checkpoint", "cpc-accumulate2", "cpc-accumulate4"]
    first = labels_[: len(labels_) // 2]
    assert first[-1] == "gim-sgd" and labels_[len(first)] == "gim-sgd-r2" and labels_[-1] == "cpc-r2"
    assert labels_[len(first):] == [f"{label}-r2" for label in reversed(first)]


def test_a_comparisons_later_round_times_the_rows_and_leaves_memory_and_accuracy_to_the_first():
    cpc, gim = doc("cpc", 4.0, 10, temporary=1.0, probe=True), doc("gim", 8.0, 20, temporary=6.0, probe=True)
    cpc["probe"]["speaker"]["per_module"] = [0.3, 0.4]
    # gim's second round listed first (as a resumed comparison may list it): its first round still speaks for it.
    entries = comparison(timing_only(gim, 30), cpc, gim, timing_only(cpc, 12))
    group = groups(entries)[0]
    table = {row[0]: row for row in cells(verdict_table(group))[1:]}
    assert table["cpc"][1:3] == ["2", "4.0"] and table["gim per-module"][1:4] == ["2", "8.0", "2.00x"]
    assert table["cpc"][5] == "11.0" and table["gim per-module"][5] == "25.0"  # step ms: both rounds' mean
    assert table["gim per-module"][4] == "2.00x"  # x floor: round one's floors alone
    assert table["gim per-module"][-1] == "+20.0 pt"  # accuracy: the probed round alone
    assert "temporary memory is 6.0 MiB at its peak against 1.0 MiB at cpc's" in sentence(group)
    assert [c.measured for c in group.cells] == [entries[1], entries[2]]
    repeats = {row[1]: row for row in cells(repeats_table([group]))[1:]}
    assert repeats["cpc"][3:] == ["4.0 (1 of 2 runs)", "11.0 (10.0-12.0)"]
    assert repeats["gim per-module"][3:] == ["8.0 (1 of 2 runs)", "25.0 (20.0-30.0)"]
    assert plots.memory_vs_time(group)[:4] == b"\x89PNG" and plots.module_bars(group)[:4] == b"\x89PNG"


@pytest.mark.parametrize(("argv", "says", "not_said"), [
    (["run", "--stpes", "3"], "did you mean --steps?", None),
    (["run", "--model", "gimm"], "invalid choice: 'gimm'", "comma list"),
    (["run", "--model", "gim,cpc"], "gimbench sweep runs every value of a comma list", None),
    (["report", "/no/such/folder"], "/no/such/folder does not exist", None),
    (["compare", "--rounds", "0"], "--rounds: '0' is not a whole number from 1 up", None),
])
def test_small_messages(argv, says, not_said, capsys):
    assert exit_code(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("gimbench: error:") and says in err and (not_said is None or not_said not in err)


def exit_code(argv: list[str]) -> int:
    """``main``'s exit status, whether it returns it or argparse exits with it."""
    try:
        return main(argv)
    except SystemExit as e:
        return e.code


def test_report_of_a_file_in_a_run_folder_names_the_folder(tmp_path, capsys):
    (tmp_path / "results.json").write_text("{}")
    assert main(["report", str(tmp_path / "results.json")]) == 2
    assert f"give the folder, gimbench report {tmp_path}" in capsys.readouterr().err


def test_compare_help_hides_what_compare_refuses(capsys):
    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    out = capsys.readouterr().out
    assert "--accumulate" not in out.split("Rows:")[0] and "--checkpoint-activations N" not in out
    assert "--model {" not in out and "--rounds N" in out and "--preset" in out
