"""The results contract (results.json) and writing files so that a crash never leaves half of one."""
