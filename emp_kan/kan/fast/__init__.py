"""The fast training path: pykan's KAN trained with compiled loops and a flat optimiser."""
