"""Speed benchmarks of closedloop against plain per-step loops: ``python -m benchmarks``."""
