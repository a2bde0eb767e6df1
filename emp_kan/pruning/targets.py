"""What a pruner may remove and how it ranks, by name: importable without numpy or torch so
that the settings table can offer them."""

from __future__ import annotations

__all__ = ["SCOPES", "TARGETS"]

TARGETS = ("edges", "nodes", "both")
SCOPES = ("layer", "global")
