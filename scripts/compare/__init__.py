"""The parts of ``scripts/compare_outputs.py``: comparing tables and clip files of two output
folders, and running the before and after code to get them."""
