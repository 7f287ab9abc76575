"""Per-paper specs (reported numbers, setup, deviations), probes and figures."""
