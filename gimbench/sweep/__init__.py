"""``gimbench sweep``: every combination of comma-listed run options, each run in a fresh process."""
