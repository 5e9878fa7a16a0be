"""Per-run metrics -> tables, statistics and figures."""
