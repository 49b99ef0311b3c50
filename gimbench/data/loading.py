"""Training batches through a ``DataLoader``: worker processes (``--workers``), pinned memory on CUDA.

Every source draws its batches with ``source.batch(batch_size, generator)``. Without workers the batches
come from the trainer's generator, seeded with ``--seed`` (the same batches as calling the source
directly); its state is the data position a checkpoint saves, so a resumed run draws exactly the batches
an uninterrupted one would. With ``--workers N`` each worker draws from its own generator seeded with
(seed, worker id, the step the stream starts at), and the loader hands batches out round-robin, so a run
is reproducible for a given seed and worker count; a resumed run then draws fresh batches, not the ones
the uninterrupted run would have drawn (exact resume needs ``--workers 0``). Skips a worker
counts (an utterance that fails to decode) travel back with its batches into the source's ``skips``.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from gimbench.data.corpus import Batch
from gimbench.data.problems import DataError, Skips

PREFETCH = 4  # batches queued per worker


def worker_seed(seed: int, worker: int, start: int = 0) -> int:
    """A seed for worker ``worker`` of a run seeded with ``seed`` whose stream starts at step ``start``,
    independent of the other workers'."""
    return int(np.random.SeedSequence([seed, worker, start]).generate_state(1, dtype=np.uint64)[0] >> 1)


def skips_of(source) -> Skips:
    """The source's skip record; a bare source with only ``batch`` (a test double) never skips: a blank one."""
    skips = getattr(source, "skips", None)
    return Skips() if skips is None else skips


class _Batches(IterableDataset):
    """An endless stream of ``(x, y, skips drained since the last batch, None)``, or ``(.., message)`` once the
    source raised ``DataError`` (a worker's exception would reach the user wrapped in a traceback)."""

    def __init__(self, source, batch_size: int, seed: int, generator: torch.Generator | None, start: int) -> None:
        self.source, self.batch_size, self.seed, self.start = source, batch_size, seed, start
        self.generator = generator  # the in-process stream's; None when workers draw (it does not pickle)
        self.skips = skips_of(source)

    def __iter__(self) -> Iterator[tuple]:
        worker = get_worker_info()
        if worker is None:
            generator = self.generator if self.generator is not None else torch.Generator().manual_seed(self.seed)
        else:
            generator = torch.Generator().manual_seed(worker_seed(self.seed, worker.id, self.start))
        self.skips.drain()  # counted before the stream began (a worker inherits them): not news
        while True:
            try:
                x, y = self.source.batch(self.batch_size, generator)
            except DataError as e:
                yield None, None, self.skips.drain(), str(e)
                return
            yield x, y, self.skips.drain(), None


class BatchStream:
    """Iterator of training batches ``(x, y)``; use as a context manager so worker processes are shut down.

    Args:
        source: A dataset source (``batch``, ``skips``).
        batch_size: Examples per batch.
        seed: The run's seed.
        workers: Loader worker processes; 0 reads in the training process.
        pin: Put batches in pinned (page-locked) memory, for asynchronous copies to a GPU.
        generator: Without workers, the generator to draw from (its state is the data position);
            default: a new one seeded with ``seed``.
        start: The step the stream starts at (seeds the workers of a resumed run).
    """

    def __init__(self, source, batch_size: int, seed: int, workers: int = 0, pin: bool = False,
                 generator: torch.Generator | None = None, start: int = 0) -> None:
        self.source, self.workers = source, workers
        dataset = _Batches(source, batch_size, seed, None if workers else generator, start)
        # The loader draws a base seed for its workers when it starts iterating; from its own generator,
        # not torch's global one, which the losses draw negatives from (a resumed run would be one draw off).
        own = torch.Generator().manual_seed(seed)
        self.loader = DataLoader(dataset, batch_size=None, num_workers=workers, generator=own,
                                 pin_memory=pin, prefetch_factor=PREFETCH if workers else None)
        self._batches: Iterator | None = None

    def __enter__(self) -> BatchStream:
        self._batches = iter(self.loader)
        return self

    def __exit__(self, *exc) -> None:
        self._batches = None  # the loader's iterator shuts its workers down when it is released

    def __iter__(self) -> BatchStream:
        return self

    def __next__(self) -> Batch:
        if self._batches is None:
            raise RuntimeError("use BatchStream as a context manager")
        x, y, skipped, error = next(self._batches)
        if self.workers:  # a worker's skips were counted in its copy of the source; count them here too
            skips_of(self.source).merge(skipped)
        if error is not None:
            raise DataError(error)
        return Batch(x, y)
