"""Rich renderables for results; the CLI and report layer are the only places that print."""

from __future__ import annotations

from pathlib import Path

from rich.console import Group
from rich.table import Table
from rich.text import Text

from gimbench.profiling.meter import PHASES
from gimbench.profiling.resident import KINDS, PARTS
from gimbench.profiling.tracker import CATEGORIES
from gimbench.report.cells import MIB, Fitted, in_unit, mib, num, titled_table, unit
from gimbench.results.schema import RENDERERS, MaxBatch, RunResult, StepResult


def time_table(result: RunResult) -> Table:
    """Per module: parameters, loss, and median ms per phase (IQR of the total)."""
    table = titled_table("Modules: parameters (with the module's loss head), local gradient (sparse: from the "
                         "positions the loss reads), loss, and time (median ms over timed steps)",
                         ["#", "module", "parameters", "grad", "loss first", "loss last", *PHASES, "total", "IQR"])
    for m in result.modules:
        t, iqr = m.time_ms or {}, m.time_ms_iqr or {}
        table.add_row(str(m.index), m.name, f"{m.parameters:,}", m.local_grad or "-", num(m.loss["first"]),
                      num(m.loss["last"]),
                      *(num(t.get(p), ".1f") for p in (*PHASES, "total")), num(iqr.get("total"), ".1f"))
    return table


def share(fraction: float | None) -> str:
    """A fraction of the reference rate as a percentage (``-`` where none was measured)."""
    return "-" if fraction is None else f"{100 * fraction:.1f}%"


def gflop(value: float | None) -> str:
    return "-" if value is None else f"{value / 1e9:.3g}"


def reference_words(environment: dict) -> str:
    """``fp32 matmul 2048^3 at 189.0 GFLOP/s``: the reference rate and how it was measured."""
    ref, rate = environment.get("reference_matmul"), environment.get("reference_flops_per_s")
    if not ref or rate is None:
        return "no reference rate measured"
    return (f"{ref['precision']} matmul {ref['size']}^3 at {rate / 1e9:.1f} "
            "GFLOP/s")


def compute_table(result: RunResult) -> Table:
    """Per module and for the step: FLOPs counted on one warm-up step (forward, loss, backward), the rate they
    ran at over their median time, and its share of the device's reference rate (``util``)."""
    table = titled_table(f"Modules: GFLOP a step (matmuls and convolutions, counted on one warm-up step), "
                         f"achieved GFLOP/s over the median forward + loss + backward time, util: share of the "
                         f"reference ({reference_words(result.environment)})",
                         ["#", "module", "forward", "loss", "backward", "GFLOP", "GFLOP/s", "util"])
    for m in result.modules:
        phases = m.flops_by_phase or {}
        table.add_row(str(m.index), m.name, *(gflop(phases.get(p)) for p in ("forward", "loss", "backward")),
                      gflop(m.flops), gflop(m.achieved_flops_per_s), share(m.flops_fraction))
    s = result.step
    table.add_row("", "step", "", "", "", gflop(s.flops), gflop(s.achieved_flops_per_s), share(s.flops_fraction),
                  style="bold")
    return table


MEMORY_COLUMNS = (*(f"{c}_bytes" for c in CATEGORIES), "untracked_bytes", "own_activation_bytes", "alone_peak_bytes")


def memory_table(result: RunResult) -> Table:
    """Per module: the peak while it was processed and what was live then (KiB or MiB, ``cells.unit``)."""
    name, scale = unit([(m.memory or {}).get(k) for m in result.modules for k in ("peak_bytes", *MEMORY_COLUMNS)])
    table = titled_table(f"Modules: peak memory and what was live at it ({name}, {result.memory_backend})",
                   ["#", "module", "peak", "in phase", *CATEGORIES, "untracked", "own activations", "alone"])
    for m in result.modules:
        mem = m.memory or {}
        table.add_row(str(m.index), m.name, in_unit(mem.get("peak_bytes"), scale), mem.get("peak_phase", "-"),
                      *(in_unit(mem.get(k), scale) for k in MEMORY_COLUMNS))
    return table


def resident_table(result: RunResult) -> Table:
    """Per module: what its encoder part and its loss head keep resident (KiB or MiB; gradients while a step
    runs)."""
    keys = [f"{part}_{kind}_bytes" for part in PARTS for kind in KINDS]
    name, scale = unit([(m.memory or {}).get(k) for m in result.modules for k in keys])
    columns = [f"{part} {short}" for part in ("enc", "head") for short in ("par", "grad", "opt")]
    table = titled_table(f"Resident per module, encoder vs loss head ({name})", ["#", "module", *columns])
    for m in result.modules:
        mem = m.memory or {}
        table.add_row(str(m.index), m.name, *(in_unit(mem.get(k), scale) for k in keys))
    return table


def _wait_share(wait: dict) -> str:
    return f" ({100 * wait['share']:.0f}% of step wall time)" if wait else ""


def noise_call(s: StepResult) -> str:
    """Whether the timed and unprofiled steps' medians differ by more than the steps' spread: noise only where the
    bootstrap interval of their ratio holds 0."""
    if s.timer_overhead_interval is None:
        return "timed vs unprofiled steps; too few steps to tell it from noise"
    low, high = s.timer_overhead_interval
    verdict = "within noise" if low <= 0 <= high else "beyond noise"
    return f"timed vs unprofiled steps, 95% interval {100 * low:+.1f}..{100 * high:+.1f}%: {verdict}"


def step_text(result: RunResult) -> Text:
    """Whole-step time and memory in two lines."""
    s, mem = result.step, result.step.memory
    overhead = "" if s.timer_overhead is None else f" · timers {100 * s.timer_overhead:+.1f}% ({noise_call(s)})"
    unprofiled = "" if s.time_ms_unprofiled is None else f" · unprofiled {s.time_ms_unprofiled:.1f} ms"
    data = f"data {num(s.data_ms, '.1f')} ms{_wait_share(s.data_wait_ms)} · run {result.wall_seconds:.0f} s"
    if s.time_ms is None:
        lines = [f"step: no time ({s.time_note}) · {data}"]
    else:
        kind = "timed" if s.timed_steps else "unprofiled"
        lines = [f"step: {s.time_ms:.1f} ms {kind} (IQR {s.time_ms_iqr:.1f}){unprofiled}{overhead} · "
                 f"{s.samples_per_second:.1f} samples/s · {data}"]
    if s.flops is not None:
        lines.append(f"compute: {gflop(s.flops)} GFLOP a step at {gflop(s.achieved_flops_per_s)} GFLOP/s, "
                     f"{share(s.flops_fraction)} of {reference_words(result.environment)}")
    asked = result.config.get("profile_steps") or 0
    if s.timed_steps < asked and result.steps_completed:
        lines.append(f"timed steps: {s.timed_steps} of the {asked} asked for (--profile-steps) fit in "
                     f"{result.steps_completed} steps after warm-up and memory-tracked ones")
    skipped = result.data.get("skipped") or {}
    if skipped:
        counts = ", ".join(f"{reason} {entry['count']}" for reason, entry in skipped.items())
        lines.append(f"data left out: {counts} (paths in results.json data.skipped)")
    if mem.get("peak_memory_bytes") is not None:
        ratio = num(mem.get("peak_over_floor"), ".2f")
        rss = mib(mem.get("rss_peak_bytes"))
        lines.append(f"step memory ({result.memory_backend}): peak {mib(mem['peak_memory_bytes'])} MiB "
                     f"(tensors {mib(mem.get('tracked_peak_bytes'))}, untracked {mib(mem.get('untracked_bytes'))}) · "
                     f"resident before step {mib(mem['resident_bytes'])} MiB · greedy floor "
                     f"{mib(mem['floor_bytes'])} MiB · peak/floor {ratio} · process peak RSS {rss} MiB (the whole "
                     f"process: interpreter, torch, data; not the step's allocations)")
    return Text("\n".join(lines))


def probe_table(probe: dict, names: list[str]) -> Table:
    """Per module, the test accuracy of each probe task; chance in the last row."""
    tasks = list(probe)
    table = titled_table("Linear probes on frozen features (test accuracy)", ["#", "module", *tasks])
    for k, name in enumerate(names):
        table.add_row(str(k), name, *(f"{100 * probe[t]['per_module'][k]:.1f}%" for t in tasks))
    table.add_row("", "chance (most frequent label)", *(f"{100 * probe[t]['chance']:.1f}%" for t in tasks),
                  style="dim")
    return table


def paper_table(document: dict) -> Table:
    """``gimbench table``: one row per method, last-module accuracy per task, the paper's beside it."""
    tasks = list(document["rows"][0]["accuracy"]) if document["rows"] else []
    columns = ["method", *tasks, *(f"paper {t}" for t in tasks), "run folder"]
    table = titled_table(f"Probe accuracy at the last module, {document['modality']} (paper columns: "
                   f"published, on the paper's data)", columns)
    table.columns[0].justify = "left"
    for row in document["rows"]:
        paper = document["paper"].get(row["method"], {})
        folder = row["run"]
        table.add_row(row["method"], *(f"{100 * row['accuracy'][t]:.1f}%" for t in tasks),
                      *(f"{paper[t]:.1f}%" if t in paper else "-" for t in tasks),
                      f"[link=file://{Path(folder).resolve()}]{folder}[/link]")
    if document["rows"]:
        chance = document["rows"][0]["chance"]
        table.add_row("chance", *(f"{100 * chance[t]:.1f}%" for t in tasks), *("" for _ in tasks), "", style="dim")
    return table


def module_span(modules: list[int]) -> str:
    """``0-2`` for a contiguous run of module indices, else the indices listed."""
    if len(modules) > 1 and modules == list(range(modules[0], modules[-1] + 1)):
        return f"{modules[0]}-{modules[-1]}"
    return ",".join(map(str, modules))


def _share(value: float | None) -> str:
    """A share as a percentage: one decimal below 10%, so small transfer shares do not read as nothing."""
    return "-" if value is None else f"{100 * value:.1f}%" if value < 0.1 else f"{100 * value:.0f}%"


def _pings(links: list[dict] | None) -> str:
    """``peer: ms`` of each link's ping, e.g. ``0: 0.169 2: 0.201``."""
    return " ".join(f"{link['peer']}: {link['one_way_ms']:.3g}" for link in links) if links else "-"


RANKS_TITLE = ("Ranks side by side (idle: share of the step not computing; xfer: transfer in it, estimated as "
               "messages x ping; wait: the rest of its time in sends and receives; ping: one-way ms of a message to "
               "each neighbour, measured at start; MiB)")


def ranks_table(runs: list[tuple[str, dict, str]]) -> Table | None:
    """One row per rank of every run given as (label, its ``distributed`` block, its memory backend): the
    rank's modules, samples/s, step time, idle (bubble) share of the step, the estimated transfer and the
    waiting on peers in it, the ping of each link, and step peak memory; ``None`` when there is no run. Where
    the locking measurement reads: module-parallel GIM next to pipelined CPC."""
    if not runs:
        return None
    table = titled_table(RANKS_TITLE, ["run", "mode", "rank", "device", "modules", "samples/s", "step ms", "idle",
                                       "xfer", "wait", "ping ms", "peak", "resident", "memory measured by"])
    table.columns[0].justify = "left"
    for label, block, backend in runs:
        for row in block["ranks"]:
            step, idle = row.get("step") or {}, row.get("idle_fraction")
            table.add_row(label, block["mode"], str(row["rank"]), str(row["device"]), module_span(row["modules"]),
                          num(row.get("samples_per_s"), ".1f"), num(step.get("time_ms"), ".1f"),
                          "-" if idle is None else f"{100 * idle:.0f}%", _share(row.get("transfer_fraction")),
                          _share(row.get("wait_fraction")), _pings(row.get("links")),
                          mib(step.get("peak_memory_bytes")), mib(step.get("resident_bytes")), backend)
    return table


def run_summary(result: RunResult) -> Group:
    """The end-of-run summary: configuration line, module tables, step figures, where files went."""
    cfg, env = result.config, result.environment
    mode = f" ({cfg['gim_mode']})" if cfg["model"] == "gim" else ""
    head = Text.assemble(
        ("gimbench run ", "bold"), f"{cfg['model']}{mode} · {cfg['modality']} · depth {cfg['depth']} · ",
        f"preset {cfg['preset']} · batch {cfg['batch_size']} · {cfg['steps']} steps · ",
        f"{cfg.get('precision', 'fp32')} · {cfg.get('optimizer', 'adam')}",
        f" lr {cfg['lr']:g} · " if isinstance(cfg.get("lr"), int | float) else " · ",
        f"{env['device']} ({env.get('device_name', 'unnamed')})",
    )
    where = Text(f"results: {result.folder}/results.json", style="dim")
    parts = [head, Fitted(time_table(result), 2), Fitted(compute_table(result), 2), Fitted(memory_table(result), 2),
             Fitted(resident_table(result), 2), step_text(result)]
    if result.max_batch is not None:
        parts.append(max_batch_summary(result.max_batch))
    if result.distributed:
        parts.append(Fitted(ranks_table([(f"{cfg['model']}{mode}", result.distributed, result.memory_backend)])))
    if result.probe:
        parts.append(Fitted(probe_table(result.probe, [m.name for m in result.modules]), 2))
    return Group(*parts, where)


def max_batch_summary(found: MaxBatch) -> Group:
    """The batch-size search's answer and every size it tried."""
    head = Text(f"largest batch within {found.budget_bytes / MIB:.1f} MiB: {found.batch_size} "
                f"(step peak {found.peak_bytes / MIB:.1f} MiB, {found.backend})", style="bold")
    table = Table(title="Batch sizes tried", title_justify="left")
    for column in ("batch size", "step peak MiB", "fits"):
        table.add_column(column, justify="right")
    for t in sorted(found.tried, key=lambda t: t.batch_size):
        peak = "out of memory" if t.peak_bytes is None else f"{t.peak_bytes / MIB:.1f}"
        table.add_row(str(t.batch_size), peak, Text("yes", "green") if t.fits else Text("no", "red"))
    return Group(head, table)


RENDERERS["run"] = run_summary  # ``rich.print(result)`` draws a RunResult with it
