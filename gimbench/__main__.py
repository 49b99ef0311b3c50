import sys

try:
    from gimbench.cli import main
except KeyboardInterrupt:  # Ctrl-C while torch is still importing: nothing has been written yet
    sys.exit(130)

sys.exit(main())
