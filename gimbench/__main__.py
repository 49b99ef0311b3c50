import sys

from gimbench.cli import main

sys.exit(main())
