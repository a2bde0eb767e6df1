"""Pictures of a KAN: the graph (networkx, GraphML) and the matplotlib plots."""
