"""Drain: prove a backend (or one job name in it) empty before the next step. What remains, as values; the check
that adds it up into a verdict with warnings; waiting for a quiet period; stray enqueues dated from the routing log."""
