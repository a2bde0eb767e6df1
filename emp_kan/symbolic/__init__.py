"""From splines to a formula: edge fits (edge_fit), additive terms (formula_terms), the
search over the pruned graph (search) and the exactness check (recovery)."""
