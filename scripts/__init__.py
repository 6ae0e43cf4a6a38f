"""Benchmarks and evaluations of curate, run as ``python scripts/<name>.py`` from a checkout
with curate installed (``pip install -e .``); shared helpers live in :mod:`scripts.common`."""
