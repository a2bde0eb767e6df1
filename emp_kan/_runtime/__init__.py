"""The machinery under every stage: atomic file writes, numba's compiled-code cache, forked
processes, shared work between the methods, and thread and RNG guards."""
