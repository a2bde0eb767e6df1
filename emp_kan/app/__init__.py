"""The edges where side effects live: the ``emp-kan`` command line, the Dask bench and the
report folder writer."""
