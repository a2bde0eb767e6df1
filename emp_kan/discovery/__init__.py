"""One discovery run: its settings, the routes a KAN is trained in, each method's pruning and
symbolic stage, the choice among candidates and the report."""
