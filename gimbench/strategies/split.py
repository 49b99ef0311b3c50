"""``--modules K --split``: which contiguous layers make each gradient-isolated module.

``even`` cuts by layer count (``gimbench.models.cuts.even_groups``). ``balanced`` cuts where the largest
module's peak memory is the smallest contiguous cuts allow (InfoPro balances its local modules the same way),
from one measured step per layer (``gimbench.profiling.layer_costs``: ``kept[l]``, the activation bytes layer l's
forward keeps for backward, and ``peak[l]``, its step peak). The cost model: a module of layers i..j peaks at
about ``kept[i] + ... + kept[j-1] + peak[j]``: its top layer's step with the graphs of the layers below it in the
module still alive until its backward. The counts are tensor bytes (deterministic for a configuration), so a
resumed run, or a network rebuilt after module-parallel training, gets the same cut.
"""

from __future__ import annotations

from itertools import accumulate

from gimbench.models.cuts import min_max_groups


def balanced_layers(kept: list[int], peak: list[int], modules: int) -> list[list[int]]:
    """The layers of each of ``modules`` modules whose largest modelled peak (see above) is the smallest."""
    prefix = [0, *accumulate(kept)]
    return min_max_groups(len(kept), modules, lambda first, end: prefix[end - 1] - prefix[first] + peak[end - 1])
