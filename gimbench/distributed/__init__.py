"""Scale-out on torch.distributed: data-parallel runs, module-parallel GIM and pipelined CPC.

Processes are started by torchrun (``gimbench run --nproc N`` starts it); ``world`` reads what torchrun
set and joins the process group. Nothing here moves tensors by any other means than torch.distributed.

Loading this package registers the strategies that spread modules over processes: ``--gim-mode
module-parallel`` and ``--pipeline gpipe|1f1b`` (``gimbench.strategies`` never imports it).
"""

from gimbench.distributed import module_parallel, pipelined_cpc  # noqa: F401  (registers their strategies)
