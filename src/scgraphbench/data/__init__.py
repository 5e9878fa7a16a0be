"""Datasets: download, prepare, and the prepared-AnnData contract every later stage reads."""
