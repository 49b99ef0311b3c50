"""Scale-out on torch.distributed: data-parallel runs, module-parallel GIM and pipelined CPC.

Processes are started by torchrun (``gimbench run --nproc N`` starts it); ``world`` reads what torchrun
set and joins the process group. Nothing here moves tensors by any other means than torch.distributed.
"""
