"""``gimbench report``: run and sweep folders side by side, in the terminal and as a self-contained HTML report."""
