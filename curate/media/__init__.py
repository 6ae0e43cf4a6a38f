"""Decoding: PyAV with scaling and repaired timestamps, NVDEC, the sandbox process that decodes
untrusted inputs, and image helpers."""
