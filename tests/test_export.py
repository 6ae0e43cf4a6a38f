from __future__ import annotations

import av
import numpy as np
import pytest
from conftest import VIDEOS, needs_shared

from curate.config import ConfigError
from curate.config.sections import CurateConfig
from curate.run.exporting import clip_relpath, export_stats
from scripts.common.synth import pan_frames, textured_image, write_video
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


def packets(path, start=0.0, end=float("inf")):
    """Payloads of the video packets shown in [start, end), in decode order."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return [
            bytes(p)
            for p in c.demux(s)
            if p.size and start - 1e-4 <= p.pts * s.time_base < end - 1e-4
        ]


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b) ** 2)
    return 10 * np.log10(255**2 / mse) if mse else np.inf


@pytest.fixture(scope="module")
def counting_video(tmp_path_factory):
    """25 fps video whose frame k has brightness 2*k, so exported frames are identifiable."""
    path = tmp_path_factory.mktemp("v") / "count.mp4"
    frames = (np.full((240, 320, 3), 2 * k, np.uint8) for k in range(120))
    return write_video(path, frames, fps=25, crf=0)


@pytest.fixture(scope="module")
def keyed_video(tmp_path_factory):
    """As ``counting_video``, with a keyframe every second and B-frames between."""
    path = tmp_path_factory.mktemp("v") / "keyed.mp4"
    with av.open(str(path), "w", format="mp4") as out:
        s = out.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 320, 240, "yuv420p"
        s.options = {"crf": "10", "preset": "veryfast", "x264-params": "keyint=25:scenecut=0"}
        for k in range(125):
            image = np.full((240, 320, 3), 2 * k, np.uint8)
            image[100:140, (k * 3) % 280 :][:, :40] = 255  # motion: B-frames get used
            out.mux(s.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(s.encode(None))
    return path


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
    # The default preset keeps the picture: at least 38 dB against every source frame.
    source, _, _ = decode_all(src)
    assert min(psnr(a, b) for a, b in zip(frames, source, strict=True)) >= 38


def test_codec_copy_cuts_packets_exactly_or_reencodes(tmp_path, keyed_video):
    config = CurateConfig.model_validate({"export": {"codec": "copy"}})
    stage = ExportStage.from_config(config, output=str(tmp_path))
    jobs = [
        job("c1", 1.0, 3.0),  # on keyframes at both ends
        job("c2", 2.0, 3.52),  # on a keyframe, ends mid-GOP
        job("c3", 2.0, 2.28),  # ends where a frame past it is decoded before one inside
        job("e1", 1.2, 3.0),  # starts between keyframes
        job("e2", 4.0, 5.0, short_side=120),  # scaled
    ]
    rows = {
        r["clip_id"]: r for r in stage.export_source({"source": str(keyed_video), "jobs": jobs})
    }
    assert rows["c1"]["export_method"] == "copy"
    assert rows["e1"]["export_method"] == rows["e2"]["export_method"] == "libx264"
    clip = tmp_path / rows["c1"]["clip_path"]
    assert packets(clip) == packets(keyed_video, 1.0, 3.0)  # bit-exact
    with av.open(str(clip)) as c:
        times = [f.time for f in c.decode(video=0)]
    assert len(times) == 50 and abs(times[0]) < 1e-3 and abs(times[-1] - 49 / 25) < 1e-3
    # Copied where the B-frames allow a cut at the end, re-encoded otherwise: the same frames.
    source, _, _ = decode_all(keyed_video)
    for clip_id, last in (("c2", 87), ("c3", 56)):
        frames, fps, _ = decode_all(tmp_path / rows[clip_id]["clip_path"])
        near = [int(np.argmin([np.abs(f - s.astype(int)).mean() for s in source])) for f in frames]
        assert (
            fps == 25 and near == list(range(50, last + 1)) and rows[clip_id]["frames"] == len(near)
        )


def test_export_stats_in_manifest_form():
    keys = ("export_method", "frames", "decode_s", "encode_s", "export_s")
    rows = [
        dict(zip(keys, ("copy", 50, 0.01, 0.02, 0.05), strict=True)),
        dict(zip(keys, ("libx264", 150, 0.5, 1.0, 1.5), strict=True)),
    ]
    stats = export_stats(rows)
    assert stats == {
        "decode_s": 0.51,
        "encode_s": 1.02,
        "frames": 200,
        "frames_per_second": 129.0,
        "clips": 2,
        "copied": 1,
        "busy_s": 1.55,
    }


def test_encoder_auto_falls_back_and_nvenc_fails_at_start_up(tmp_path):
    # This machine has no NVENC (no GPU; an H100 has none either).
    assert ExportStage.from_config(CurateConfig(), output=str(tmp_path)).encoder == "libx264"
    nvenc = CurateConfig.model_validate({"export": {"encoder": "h264_nvenc"}})
    with pytest.raises(ConfigError, match=r"export\.encoder"):
        ExportStage.check(nvenc)
    with pytest.raises(ConfigError, match=r"export\.encoder"):
        ExportStage.from_config(nvenc, output=str(tmp_path))
