"""Everything that knows pykan: the adapter (the one module that imports ``kan``), scores and
the topology of masks and live nodes."""
