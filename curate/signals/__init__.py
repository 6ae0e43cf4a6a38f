"""The signals, one module each, and their registry: :data:`SIGNALS`.

A signal declares everything about itself in its module (``curate.signals.base.Signal``): its
config block, its ``analysis`` columns, its tier gates with the types of their thresholds and
the scores ``inspect`` and the report summarise. ``curate.contract`` builds the config
sections, the schemas, the gate list and the reject vocabulary from the tuple below; its order
is the order in which signals run, their columns appear and their gates are checked. Adding a
signal is its module, a line here and its test (see ``docs/architecture.md``).
"""

from __future__ import annotations

from curate.signals.base import (
    ClipWindow,
    FrameSignal,
    KeyframeDetector,
    SampledSignal,
    Signal,
    samples_in,
)
from curate.signals.borders import BorderSignal
from curate.signals.brightness import BrightnessSignal
from curate.signals.colorfulness import ColorfulnessSignal
from curate.signals.fingerprint import FingerprintSignal
from curate.signals.flow import FlowSignal
from curate.signals.keyframes import KeyframeSignal
from curate.signals.motion_pattern import MotionPatternSignal
from curate.signals.nsfw import NsfwDetector
from curate.signals.objects import ObjectDetector
from curate.signals.sharpness import SharpnessSignal
from curate.signals.shots import ShotSignal
from curate.signals.text import TextSignal
from curate.signals.watermark import WatermarkSignal

SIGNALS: tuple[type[Signal], ...] = (
    ShotSignal,
    SharpnessSignal,
    FlowSignal,
    MotionPatternSignal,
    KeyframeSignal,
    TextSignal,
    WatermarkSignal,
    BorderSignal,
    BrightnessSignal,
    ColorfulnessSignal,
    FingerprintSignal,
    NsfwDetector,
    ObjectDetector,
)
"""Every signal, in the order their columns and gates appear: per-frame signals run in this
order in the decode pass (block ``analyze.<name>``), keyframe detectors in the detect stage
(block ``detect.<name>``)."""

__all__ = [
    "SIGNALS",
    "ClipWindow",
    "FrameSignal",
    "KeyframeDetector",
    "SampledSignal",
    "Signal",
    "samples_in",
]
