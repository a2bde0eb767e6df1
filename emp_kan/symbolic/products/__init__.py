"""The product search: a power law times one function of one input or monomial, fitted to the
data as given, and its compiled loops."""
