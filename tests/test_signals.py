"""The signal registry: config blocks, implementations, columns, gates and the README's table
agree."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from curate import contract
from curate.config.sections import AnalyzeConfig, DetectConfig, Gates
from curate.contract import ALL_GATES, FRAME_SIGNALS, build_signals
from curate.gates import BASE_GATES
from curate.media.video import DecodedFrame
from curate.signals import SIGNALS, FrameSignal


def test_every_signal_has_its_block_in_its_section():
    analyze, detect = AnalyzeConfig(), DetectConfig()
    for signal in SIGNALS:
        section = {"analyze": analyze, "detect": detect}[signal.section]
        assert type(getattr(section, signal.name)) is signal.config, signal
    assert [type(s) for s in build_signals(analyze)] == list(FRAME_SIGNALS)
    assert all(issubclass(t, FrameSignal) for t in FRAME_SIGNALS)


def test_clashing_declarations_are_refused(monkeypatch):
    class Clash(FrameSignal):
        name = "short_side"  # an analyze setting of its own
        fields = (pa.field("tier", pa.string()),)  # a column the pipeline fills

        def update(self, frame):
            pass

        def finish(self):
            return None

    with pytest.raises(TypeError, match="short_side") as e:
        contract.check_declarations((*SIGNALS, Clash))
    assert "tier" in str(e.value)


def test_readme_lists_every_signal():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    table = readme.split("### Signals and their gates", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(analyze|detect)\.(\w+)` \|", table, flags=re.M)
    assert rows == [(s.section, s.name) for s in SIGNALS]


def test_every_configurable_gate_is_declared_once():
    keys = [g.key for g in ALL_GATES]
    assert len(keys) == len(set(keys))
    assert set(keys) == set(Gates.model_fields)
    assert ALL_GATES[: len(BASE_GATES)] == BASE_GATES
    # Phase 2 holds the columns every gate reads.
    assert {c for g in ALL_GATES for c in g.columns} <= set(contract.index_columns())


def test_schema_and_vocabulary_are_assembled_from_the_signals():
    names = contract.ANALYSIS.names
    for signal in FRAME_SIGNALS:
        for field in signal.fields:
            assert contract.ANALYSIS.field(field.name).type == field.type
        assert all(g.reason in contract.REJECT_REASONS for g in signal.gates)
    assert len(names) == len(set(names))
    assert "keyframes" not in contract.TIER.names and "clip_path" in contract.TIER.names


def test_reject_rows_keep_the_vocabulary():
    row = contract.reject_row("a.mp4", "tiers", "blurry", "sharpness 3 fails", clip_id="c")
    assert row["reason"] == "blurry" and row["start_s"] is None
    with pytest.raises(ValueError, match="'ugly'"):
        contract.reject_row("a.mp4", "tiers", "ugly", "")


def test_signals_fill_exactly_their_fields():
    """Every signal, fed real frames, returns exactly its declared columns for a window."""
    from curate.signals import ClipWindow

    rng = np.random.default_rng(0)
    signals = build_signals(AnalyzeConfig())
    for i in range(60):
        yuv = rng.integers(0, 256, (96 * 3 // 2, 128), dtype=np.uint8)
        gray = np.ascontiguousarray(yuv[:96])
        small = np.ascontiguousarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
        frame = DecodedFrame(i, i / 25, gray, small, yuv, 0)
        for s in signals:
            if s.wants(frame):
                s.update(frame)
    window = ClipWindow(0, 0, 60, 0.0, 2.4, 0.0)
    for s in signals:
        series = s.finish()
        values = s.clip_values(series, window)
        # A signal that hands its frames to the detect stage (OCR) fills its columns there.
        handed_over = any(v is not None for v in s.source_values(series).values())
        assert set(values) == (set() if handed_over else {f.name for f in s.fields}), s.name
        assert set(s.source_values(series)) <= {f.name for f in s.source_fields}, s.name
