from __future__ import annotations

import av
import numpy as np
import pytest
from conftest import VIDEOS, needs_shared
from synth import pan_frames, textured_image, write_video

from curate.config import CurateConfig
from curate.exporting import clip_relpath
from stages.export import ExportStage


def decode_all(path):
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames = [f.to_ndarray(format="gray") for f in c.decode(s)]
        return frames, float(s.average_rate), (s.codec_context.width, s.codec_context.height)


def job(clip_id, start, end, short_side=None, fps=None, key="k"):
    return {
        "clip_id": clip_id,
        "export_key": key,
        "start_s": start,
        "end_s": end,
        "short_side": short_side,
        "fps": fps,
    }


@pytest.fixture(scope="module")
def counting_video(tmp_path_factory):
    """25 fps video whose frame k has brightness 2*k, so exported frames are identifiable."""
    path = tmp_path_factory.mktemp("v") / "count.mp4"
    frames = (np.full((240, 320, 3), 2 * k, np.uint8) for k in range(120))
    return write_video(path, frames, fps=25, crf=0)


def test_exact_frame_boundaries_and_duration(tmp_path, counting_video):
    stage = ExportStage.from_config(CurateConfig(), output=str(tmp_path))
    rows = stage.export_source({"source": str(counting_video), "jobs": [job("ab12", 1.0, 3.0)]})
    assert rows[0].get("error") is None, rows
    frames, fps, _ = decode_all(tmp_path / rows[0]["clip_path"])
    assert rows[0]["clip_path"] == clip_relpath("k", "ab12")
    assert fps == 25 and len(frames) == 50  # 2.0 s
    first, last = frames[0].mean() / 2, frames[-1].mean() / 2
    assert round(first) == 25 and round(last) == 74  # frames 25..74 inclusive


def test_target_fps_and_size(tmp_path, counting_video):
    stage = ExportStage.from_config(CurateConfig(), output=str(tmp_path))
    rows = stage.export_source(
        {"source": str(counting_video), "jobs": [job("cd34", 0.4, 4.4, short_side=120, fps=10)]}
    )
    frames, fps, size = decode_all(tmp_path / rows[0]["clip_path"])
    assert fps == 10 and size == (160, 120)
    assert abs(len(frames) - 40) <= 1  # 4.0 s at 10 fps


def test_inline_mode_returns_bytes(tmp_path, counting_video):
    config = CurateConfig.model_validate({"export": {"mode": "inline"}})
    rows = ExportStage.from_config(config, output=str(tmp_path)).export_source(
        {"source": str(counting_video), "jobs": [job("ef56", 0.0, 1.0)]}
    )
    data = rows[0]["video"]
    assert data[4:8] == b"ftyp" and rows[0].get("clip_path") is None
    assert not list(tmp_path.rglob("*.mp4"))


def test_unreadable_source_fails_every_job(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"nope")
    rows = ExportStage.from_config(CurateConfig(), output=str(tmp_path)).export_source(
        {"source": str(bad), "jobs": [job("a", 0, 1), job("b", 1, 2)]}
    )
    assert [r["error"] is not None for r in rows] == [True, True]


@needs_shared
def test_rotated_source_exports_upright(tmp_path):
    rows = ExportStage.from_config(CurateConfig(), output=str(tmp_path)).export_source(
        {
            "source": str(VIDEOS / "PySceneDetect/issue-134-rotate.mp4"),
            "jobs": [job("r1", 4.0, 6.0, short_side=272)],
        }
    )
    _frames, _, size = decode_all(tmp_path / rows[0]["clip_path"])
    assert size == (272, 640)


def test_pan_video_roundtrip(tmp_path):
    src = write_video(tmp_path / "pan.mp4", pan_frames(textured_image(9), 100, 2.0), fps=25)
    rows = ExportStage.from_config(CurateConfig(), output=str(tmp_path)).export_source(
        {"source": str(src), "jobs": [job("p1", 0.0, 4.0)]}
    )
    frames, _fps, size = decode_all(tmp_path / rows[0]["clip_path"])
    assert size == (640, 360) and len(frames) == 100
