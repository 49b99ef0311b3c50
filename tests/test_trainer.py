"""The one training loop: built from parts, told everything at construction, resumable, steppable."""

from __future__ import annotations

import torch
from conftest import tiny

from gimbench.data import make_source
from gimbench.trainer import Parts, Trainer

CPU = torch.device("cpu")


def trainer_of(steps: int = 4, **callbacks) -> Trainer:
    cfg, network, strategy = tiny("gim", "audio", depth=2, steps=steps, batch_size=4)
    parts = Parts(network, strategy, make_source(cfg), strategy.make_optimizers(network), CPU)
    return Trainer(parts, cfg.batch_size, cfg.seed, **callbacks)


def test_fit_hears_every_step_and_batch_and_stops_when_asked():
    heard, batches = [], []
    stop_after = 3
    trainer = trainer_of(on_step=heard.append, after_batch=lambda step, x, y: batches.append((step, len(x))),
                         should_stop=lambda: len(heard) >= stop_after)
    history = trainer.fit(10)
    assert [r.step for r in heard] == [0, 1, 2] and trainer.step == 3 and len(history.seconds) == 3
    assert batches == [(0, 4), (1, 4), (2, 4)] and all(r.seconds > 0 and r.batch_size == 4 for r in heard)


def test_a_restored_trainer_continues_as_if_it_never_stopped():
    whole = trainer_of()
    whole.fit(4)
    first = trainer_of()
    first.fit(2)
    resumed = trainer_of()
    resumed.network.load_state_dict(first.network.state_dict())
    for mine, theirs in zip(resumed.optimizers, first.optimizers, strict=True):
        mine.load_state_dict(theirs.state_dict())
    resumed.restore(first.step, first.history, first.generator.get_state())
    resumed.fit(4)
    assert resumed.history.losses[:2] == whole.history.losses[:2] and len(resumed.history.losses) == 4
    assert resumed.history.losses[2:] == whole.history.losses[2:]


def test_rewind_makes_a_step_number_the_next_one():
    seen = []
    trainer = trainer_of(on_step=lambda record: seen.append(record.step))
    trainer.fit(2)
    trainer.rewind(0)
    trainer.fit(1)
    assert seen == [0, 1, 0]
