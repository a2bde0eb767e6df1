"""Problems to discover a law in: Feynman equations, a formula with ranges, a CSV; the rows'
split and label noise; the formula grammar."""
