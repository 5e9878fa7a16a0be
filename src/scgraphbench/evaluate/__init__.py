"""Metrics as pure functions of arrays, separate from training (as GEARS does)."""
