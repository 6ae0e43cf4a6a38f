"""Helpers the scripts share: running ``curate`` as a subprocess, synthetic media, timing and
the paths of this checkout and of the shared test footage next to it."""
