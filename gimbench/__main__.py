import sys

try:
    from gimbench.cli import entry
except KeyboardInterrupt:  # Ctrl-C while torch is still importing: nothing has been written yet
    sys.exit(130)

entry()
