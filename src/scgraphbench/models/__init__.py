"""Model families. Each file registers one or more families with ``@register(name)``."""

from scgraphbench.models.registry import ModelContext, available, get_family, register

__all__ = ["ModelContext", "available", "get_family", "register"]
