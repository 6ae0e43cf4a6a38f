"""Sequencing a run: Ray sessions and actor pools, the stage and phase-2 step contracts and
their registry, phase 1 (streaming, journal), phase 2, phase 3 (captioning, export planning),
the tables a run writes, the funnel, timings and progress."""
