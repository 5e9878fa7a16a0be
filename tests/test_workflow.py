"""Workflow-side contracts that must agree with the package."""

from __future__ import annotations

import sys


def test_catalog_agrees_with_the_family_classes() -> None:
    """Snakemake reads the torch-free catalog; every family's class binds to its row and
    accepts exactly the parameters the row declares (the constructor gets them all)."""
    import inspect

    from scgraphbench.models.catalog import BUILTIN
    from scgraphbench.models.registry import get_family

    for name, spec in BUILTIN.items():
        cls = get_family(name)
        assert cls.family == name and cls.spec is spec, name
        sig = inspect.signature(cls.__init__)
        if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
            continue  # forwards to a base whose signature is checked through the instance
        named = {p for p in sig.parameters if p not in ("self", "ctx")}
        assert named == {p.name for p in spec.params}, (name, named)


def test_the_plan_imports_no_torch() -> None:
    import subprocess
    from pathlib import Path

    code = ("import sys, yaml; from scgraphbench.plan import build_plan; "
            "build_plan(yaml.safe_load(open('config/config.yaml'))); "
            "print('torch' in sys.modules, 'pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).parents[1]).stdout.split()
    assert out == ["False", "False"]
