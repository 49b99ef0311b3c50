"""gimbench: memory and time of greedy, gradient-isolated training (GIM) versus end-to-end CPC."""

from gimbench.config import ConfigError, RunConfig
from gimbench.failures import RunEnded
from gimbench.results import RunResult
from gimbench.resume import resume
from gimbench.run import run

__all__ = ["ConfigError", "RunConfig", "RunEnded", "RunResult", "resume", "run"]
__version__ = "0.1.0"
