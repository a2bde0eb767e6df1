"""The names of the importance scores (:mod:`emp_kan.kan.scores` computes them), importable
without torch so that the settings table can offer them."""

from __future__ import annotations

__all__ = ["EDGE_SCORES", "NODE_SCORES"]

EDGE_SCORES = ("attribution", "activation", "coefficient")
NODE_SCORES = ("attribution", "min_in_out", "max_in_out")
