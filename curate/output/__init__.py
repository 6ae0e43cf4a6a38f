"""A run's output and how it is read: the ``manifest.json`` record, the Parquet tables, the
``inspect`` summary, the ``validate`` checks, the ``--where`` filter and the text a run
prints at its end.

Nothing here needs more than pyarrow and the standard library, so ``curate inspect`` (through
``scripts/inspect_shards.py``) runs where only pyarrow is installed; this package imports
nothing on its own.
"""
