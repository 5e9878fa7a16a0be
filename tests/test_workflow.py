"""Workflow-side tables that must agree with the package."""

from __future__ import annotations


def test_task_table_agrees_with_the_families() -> None:
    """Snakemake reads models.tasks without importing torch; it must match the classes."""
    from scgraphbench.models.registry import available, get_family
    from scgraphbench.models.tasks import TASKS, family_tasks

    for name in available():
        assert tuple(getattr(get_family(name), "tasks", TASKS)) == family_tasks(name), name
