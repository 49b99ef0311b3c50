"""gimbench: memory and time of greedy, gradient-isolated training (GIM) versus end-to-end CPC."""

from gimbench.config import ConfigError, RunConfig
from gimbench.report import terminal as _terminal  # noqa: F401  (RunResult renders with rich)
from gimbench.results.schema import RunResult
from gimbench.runs.failures import RunEnded
from gimbench.runs.resume import resume
from gimbench.runs.run import run

__all__ = ["ConfigError", "RunConfig", "RunEnded", "RunResult", "resume", "run"]
__version__ = "0.1.0"
