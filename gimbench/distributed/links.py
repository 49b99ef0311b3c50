"""Splitting a spread rank's waiting into transfer and waiting on its peers, as far as it can be measured.

A rank's step wall time is compute (``BusyClock.busy``), time inside point-to-point sends, receives and
their waits (``BusyClock.transfer``: measured), and the rest (bookkeeping: the pipeline schedule's own
work, splitting micro-batches, the stop board). A blocking wait on a receive lasts as long as the peer is
late plus the transfer itself, and gloo (or NCCL) does not say which part was which. So the transfer is
estimated from a ping: once, at the start of the run, each pair of neighbouring ranks sends a message of
the size they exchange back and forth (one round not counted, then ``ROUNDS``); half the median round trip
is the one-way time of one such message between two ranks that are both waiting for it. A step's transfer
is then its messages times that time, capped by the time the rank actually spent inside the calls (a
transfer that overlapped compute, as an ``isend`` or a receive posted early does, costs the rank nothing);
the rest of the time inside the calls is waiting on the peer.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.distributed as dist

from gimbench.profiling.busy import BusyClock

ROUNDS = 5  # timed round trips per link (after one not counted)


def ping(peer: int, nbytes: int, lead: bool, device: torch.device, sync) -> dict:
    """The one-way time of an ``nbytes`` message between this rank and ``peer`` (both call it, one with
    ``lead``): half the median of ``ROUNDS`` round trips timed by the lead, which sends its figure over."""
    buffer = torch.zeros(max(1, -(-nbytes // 4)), dtype=torch.float32, device=device)
    trips = []
    for _ in range(ROUNDS + 1):
        if lead:
            sync()
            start = time.perf_counter()
            dist.send(buffer, peer)
            dist.recv(buffer, peer)
            sync()
            trips.append(time.perf_counter() - start)
        else:
            dist.recv(buffer, peer)
            dist.send(buffer, peer)
    one_way = torch.tensor([statistics.median(trips[1:]) / 2 if lead else 0.0], dtype=torch.float64, device=device)
    if lead:
        dist.send(one_way, peer)
    else:
        dist.recv(one_way, peer)
    return {"peer": peer, "bytes": 4 * buffer.numel(), "one_way_ms": 1e3 * float(one_way.item()), "round_trips": ROUNDS}


def ping_links(clock: BusyClock, rank: int, sizes: dict[int, int], device: torch.device) -> None:
    """Ping every peer in ``sizes`` (peer -> message bytes) that has no figure yet, into ``clock.links``; the
    time it takes is set aside from the step. Both ends of a link must call this, links in a common order:
    a rank pings its lower neighbours first, so along a chain no rank waits on one that waits on it."""
    start = time.perf_counter()
    for peer in sorted(sizes, key=lambda p: (min(p, rank), max(p, rank))):
        if peer not in clock.links:
            clock.links[peer] = ping(peer, sizes[peer], lead=rank < peer, device=device, sync=clock.sync)
    clock.set_aside(time.perf_counter() - start)


@contextmanager
def timed_pipeline_transfers(clock: BusyClock) -> Iterator[None]:
    """Inside, the pipeline schedules' point-to-point calls (``torch.distributed.pipelining.schedules``'
    ``_batch_p2p``, which posts a batch of sends and receives, and ``_wait_batch_p2p``, which waits on them)
    count as ``clock.transfer`` time and their messages are counted. Private functions of torch: where a
    torch version lacks them, nothing is timed and ``clock.transfers_measured`` stays false."""
    from torch.distributed.pipelining import schedules

    post, wait = getattr(schedules, "_batch_p2p", None), getattr(schedules, "_wait_batch_p2p", None)
    if post is None or wait is None:
        yield
        return

    def timed_post(ops, *args, **kwargs):
        for op in ops:
            clock.message(op.peer, op.tensor.numel() * op.tensor.element_size())
        with clock.transfer():
            return post(ops, *args, **kwargs)

    def timed_wait(works, *args, **kwargs):
        with clock.transfer():
            return wait(works, *args, **kwargs)

    clock.transfers_measured = True
    schedules._batch_p2p, schedules._wait_batch_p2p = timed_post, timed_wait
    try:
        yield
    finally:
        schedules._batch_p2p, schedules._wait_batch_p2p = post, wait


def link_sizes(clock: BusyClock) -> dict[int, int]:
    """Per peer, the largest message counted so far (the size its ping uses: an upper bound for smaller ones)."""
    sizes: dict[int, int] = {}
    for step in clock.messages:
        for peer, nbytes in step:
            sizes[peer] = max(sizes.get(peer, 0), nbytes)
    return sizes


NOT_SPLIT = {"comm_fraction": None, "transfer_fraction": None, "wait_fraction": None, "links": None}


def timeline(clock: BusyClock, wall: list[float], skip: int) -> dict:
    """This rank's step split into shares of its wall time (steps after the first ``skip``, where there are
    more; time set aside for the ping left out): ``idle_fraction`` (not computing), ``comm_fraction``
    (inside sends, receives and their waits: measured), ``transfer_fraction`` (of that, the estimated
    transfer) and ``wait_fraction`` (the rest of it: waiting on the peer); ``links``: the ping's figures
    per peer, with the messages per step. A share that cannot be given is ``None``."""
    n = min(len(wall), len(clock.steps))
    steps = range(skip, n) if n > skip else range(n)
    total = sum(wall[i] - clock.aside[i] for i in steps)
    if total <= 0:
        return {"idle_fraction": None, **NOT_SPLIT}
    busy = sum(clock.steps[i] for i in steps)
    shares: dict = {"idle_fraction": max(0.0, 1 - busy / total), **NOT_SPLIT}
    if not clock.transfers_measured:
        return shares
    comm = sum(clock.transfers[i] for i in steps)
    shares["comm_fraction"] = min(1.0, comm / total)
    if not clock.links:
        return shares
    counts: dict[int, int] = {}
    for i in steps:
        for (peer, _), n in clock.messages[i].items():
            counts[peer] = counts.get(peer, 0) + n
    shares["links"] = [link | {"messages_per_step": counts.get(peer, 0) / len(steps)}
                       for peer, link in sorted(clock.links.items())]
    if any(peer not in clock.links for i in steps for peer, _ in clock.messages[i]):
        return shares
    transfer = sum(min(clock.transfers[i], sum(n * clock.links[peer]["one_way_ms"] / 1e3
                                               for (peer, _), n in clock.messages[i].items())) for i in steps)
    shares["transfer_fraction"] = min(1.0, transfer / total)
    shares["wait_fraction"] = max(0.0, shares["comm_fraction"] - shares["transfer_fraction"])
    return shares
