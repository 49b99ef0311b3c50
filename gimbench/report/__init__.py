"""Everything that renders results: terminal tables, progress, HTML pages, plots and bench-compare."""
