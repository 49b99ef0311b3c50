"""FLOPs per (module, phase), counted once on a warm-up step, and the device's reference rate to compare with.

``FlopMeter`` runs one whole training step under ``torch.utils.flop_counter.FlopCounterMode`` and books the
count's growth inside each ``meter.phase`` (and each slice of ``meter.backward``) to that (module, phase), the
same marks the timers use. The step is a warm-up step: never timed, never memory-tracked, and counting changes
no value computed (FlopCounterMode runs the operators and reads their shapes; ``tests/test_flops.py`` and the
reference checksums, ``benchmarks/reference_checksums.py``, check it).

What is counted: FlopCounterMode's own formulas, 2 FLOPs per multiply-add of ``mm``, ``addmm``, ``bmm``,
``baddbmm`` (einsum and Linear reach these), convolutions forward and backward (the input's gradient only where
autograd asks for it), and attention kernels. On the CPU a GRU runs as matmuls per time step, so its input and
hidden projections are counted. Added here (``FORMULAS``), by formula from the operator's shapes:

- ``addmm_``, the in-place matmul of the sparse local gradient (``strategies/sparse.py``, a custom autograd
  function and gradients by hand): its backward sums a conv's weight gradient with it, 2 x C_out x (kernel x C_in)
  per output position the loss reads, only those positions; its loss phase the InfoNCE predictor's;
- cuDNN's fused RNN on CUDA (``_cudnn_rnn``, one kernel that FlopCounterMode has no formula for): 2 FLOPs per
  weight per input token forward; backward the same for the gradients of the inputs and hidden states, and the
  same again for the weights' where asked (the usual 2:1 of backward to forward, not a kernel count).

Not counted: elementwise work (activations, the GRU's gates, normalisation, InfoNCE's log-softmax, the loss's
gathers and the optimizer's Adam update: the optimizer phase counts 0), reductions (a bias's gradient, the sparse
loss's positive scores by ``linalg.vecdot``, a multiply and a sum where the dense loss's einsum is a counted
``bmm``) and copies. These are few FLOPs beside the matmuls and convolutions but may take real time: the achieved rate
divides matmul/convolution FLOPs by all of a phase's time.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch.utils.flop_counter import FlopCounterMode

from gimbench.device import clock, empty_cache
from gimbench.profiling.meter import IntervalMeter, Key

COMPUTE = ("forward", "loss", "backward")  # the phases a module's FLOPs and its achieved rate cover
aten = torch.ops.aten


def _addmm_(self_shape, a_shape, b_shape, *args, out_shape=None, **kwargs) -> int:
    """``self.addmm_(a, b)``: (n, k) @ (k, m), as ``addmm``."""
    return 2 * a_shape[0] * a_shape[1] * b_shape[1]


def _rnn_forward(input_shape, weight_shapes, *args, out_shape=None, **kwargs) -> int:
    """2 FLOPs per weight of every layer and direction per input token (biases and gates aside)."""
    tokens = 1
    for size in input_shape[:-1]:
        tokens *= size
    return 2 * tokens * sum(s[0] * s[1] for s in weight_shapes if len(s) == 2)


def _rnn_backward(input_shape, weight_shapes, *args, out_shape=None, **kwargs) -> int:
    """The gradients of inputs and hidden states cost a forward; the weights' another, where asked
    (``output_mask``, the last argument: input, hx, cx, weights)."""
    forward = _rnn_forward(input_shape, weight_shapes)
    return forward * (1 + bool(args[-1][3]))


FORMULAS = {aten.addmm_: _addmm_, aten._cudnn_rnn: _rnn_forward, aten._cudnn_rnn_backward: _rnn_backward}


class FlopMeter(IntervalMeter):
    """Counts one step's FLOPs per (module, phase) into ``counts``; ``total`` is the whole step's count (what
    happened outside every phase is the difference)."""

    def __init__(self) -> None:
        self.counts: dict[Key, int] = {}
        self.total = 0
        self._counter: FlopCounterMode | None = None
        self._start = 0

    @contextmanager
    def step(self) -> Iterator[None]:
        self.counts, self.total = {}, 0
        with FlopCounterMode(display=False, custom_mapping=FORMULAS) as counter:
            self._counter = counter
            try:
                yield
            finally:
                self.total, self._counter = counter.get_total_flops(), None

    def _begin(self) -> None:
        self._start = self._counter.get_total_flops()

    def _end(self, key: Key) -> None:
        self.counts[key] = self.counts.get(key, 0) + self._counter.get_total_flops() - self._start


def phase_counts(counts: dict[Key, int], k: int) -> dict[str, int] | None:
    """Module k's FLOPs per compute phase; ``None`` where the counted step ran nothing of it."""
    if not any(m == k for m, _ in counts):
        return None
    return {phase: counts.get((k, phase), 0) for phase in COMPUTE}


def same_work(counts: dict[Key, int], steps: list[dict[Key, float]]) -> list[dict[Key, float]]:
    """The timed steps that ran the (module, phase) intervals the counted step ran: under a schedule whose work
    changes between steps (``sequential``) only those did the counted work."""
    return [s for s in steps if set(s) == set(counts)]


def rate(flops: int | None, seconds: list[float], reference: float | None) -> dict:
    """``flops`` with the rate achieved over the median of ``seconds`` and its share of ``reference``."""
    median = statistics.median(seconds) if seconds else 0.0
    achieved = flops / median if flops is not None and median > 0 else None
    fraction = achieved / reference if achieved is not None and reference else None
    return {"flops": flops, "achieved_flops_per_s": achieved, "flops_fraction": fraction}


REFERENCE_SIZE = 2048  # n of the n x n x n matmul
# The tiny preset's, whose runs (and tests) last seconds: a 2048 product takes ~0.1 s on 2 quiet CPU cores, a 512 one
# 1/64th of that; its operands fit in the cores' caches, so it runs near their peak too (not below 2048's).
SMALL_REFERENCE_SIZE = 512
REPEATS = 5


def reference_size(preset: str) -> int:
    """The reference matmul's n for a run at ``preset`` (smaller at tiny, whose runs last seconds)."""
    return SMALL_REFERENCE_SIZE if preset == "tiny" else REFERENCE_SIZE


def matmul_rate(device: torch.device, size: int, dtype: torch.dtype = torch.float32) -> float:
    """FLOP/s of an n x n by n x n matmul on ``device``: the median of ``REPEATS`` products after one
    unmeasured one. Its operands come from a generator of its own, so training's random streams are untouched."""
    generator = torch.Generator(device=device).manual_seed(0)
    a, b = (torch.randn(size, size, generator=generator, device=device, dtype=dtype) for _ in range(2))
    now = clock(device)  # reads after the device's queued work is done
    torch.mm(a, b)
    seconds = []
    for _ in range(REPEATS):
        start = now()
        torch.mm(a, b)
        seconds.append(now() - start)
    return 2 * size**3 / statistics.median(seconds)


@contextmanager
def tf32(allowed: bool) -> Iterator[None]:
    """CUDA matmuls may use TF32 inside (or not), as before after."""
    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = allowed
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


def reference_rate(device: torch.device, size: int = REFERENCE_SIZE) -> dict:
    """The environment's ``reference_flops_per_s`` and ``reference_matmul`` (size, rates, which one is the
    reference). CPU: fp32. CUDA: fp32 with TF32 off and on, and bf16; the reference is TF32's where the run may
    use TF32 (cuDNN convolutions do by default, matmuls where the float32 matmul precision allows it), else
    fp32's: the fastest the run's own precision allows, so its fraction is never flattered."""
    if device.type != "cuda":
        rates, used = {"fp32": matmul_rate(device, size)}, "fp32"
    else:
        with tf32(False):
            fp32 = matmul_rate(device, size)
        with tf32(True):
            tf = matmul_rate(device, size)
        rates = {"fp32": fp32, "tf32": tf, "bf16": matmul_rate(device, size, torch.bfloat16)}
        used = "tf32" if torch.backends.cudnn.allow_tf32 or torch.backends.cuda.matmul.allow_tf32 else "fp32"
        empty_cache(device)  # the operands' blocks: not the run's memory
    return {"reference_flops_per_s": rates[used],
            "reference_matmul": {"size": size, "repeats": REPEATS, "precision": used, "flops_per_s": rates}}
