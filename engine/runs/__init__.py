"""Runs and their history: the run service (start, rerun, resume, cancel), runs executing in this
process, rerun planning, the memory of recent runs, the run tree and diffs."""
