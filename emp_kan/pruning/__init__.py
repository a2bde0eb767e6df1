"""Pruning: the rules (scores in, keep masks out) and the round loop that applies them
between training rounds."""
