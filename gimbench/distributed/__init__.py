"""Scale-out on torch.distributed: data-parallel runs, module-parallel GIM and pipelined CPC.

Processes are started by torchrun (``gimbench run --nproc N`` starts it); ``world`` reads what torchrun
set and joins the process group. Nothing here moves tensors by any other means than torch.distributed.

Loading this package registers its engines (``ENGINES``), by the mode a method's description names: the
variants that spread modules over processes (``--gim-mode module-parallel``, ``--pipeline gpipe|1f1b``) are
described in ``gimbench.strategies``, which never imports this package; their engines build their strategies.
"""

from gimbench.distributed import data_parallel, spread_engine  # noqa: F401  (registers their engines)
