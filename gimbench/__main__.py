"""``python -m gimbench`` and the ``gimbench`` command: signal handling first, then the (slow) imports, then
``gimbench.cli.entry``. A signal while torch is still importing ends in one line and 128 + the signal, never a
traceback; nothing has been written then."""

import sys

from gimbench.runs.stopping import ended_by, until_run


def start() -> None:
    until_run()
    try:
        from gimbench.cli import entry
    except KeyboardInterrupt as interrupt:
        line, code = ended_by(interrupt)
        sys.stderr.write(line)
        sys.exit(code)
    entry()


if __name__ == "__main__":
    start()
