from __future__ import annotations

from conftest import VIDEOS, needs_shared

from curate.config.sections import CurateConfig
from scripts.common.synth import bad_inputs, still_frames, textured_image, write_video
from stages.probe import ProbeStage


def probe(path, **overrides):
    config = CurateConfig.model_validate({"probe": overrides}) if overrides else CurateConfig()
    return ProbeStage.from_config(config).probe_one(str(path), 0)


@needs_shared
def test_rotation_metadata_gives_portrait_display_size():
    row = probe(VIDEOS / "PySceneDetect/issue-134-rotate.mp4")
    assert row["ok"]
    assert (row["width"], row["height"]) == (544, 1280)
    assert (row["coded_width"], row["coded_height"]) == (1280, 544)


@needs_shared
def test_non_square_pixels_widen_the_display():
    row = probe(VIDEOS / "PySceneDetect/issue-195-aspect-ratio.mp4")
    assert (row["width"], row["height"]) == (1024, 576)  # 704 * 16/11


@needs_shared
def test_too_short_source_is_rejected_with_detail():
    row = probe(VIDEOS / "test-files/test.mov")
    assert not row["ok"] and row["reason"] == "too_short"
    assert "0.50 s" in row["detail"]


def test_low_resolution_floor(tmp_path):
    path = write_video(tmp_path / "small.mp4", still_frames(textured_image(1), 125, (120, 160)))
    row = probe(path, min_short_side=144)
    assert row["reason"] == "low_resolution" and "120" in row["detail"]


def test_huge_frame_size_rejected_before_decoding(tmp_path):
    path = write_video(tmp_path / "v.mp4", still_frames(textured_image(1), 125))
    row = probe(path, max_pixels=1000)
    assert row["reason"] == "unreadable" and "max_pixels" in row["detail"]


def test_bad_files_each_get_a_reason(tmp_path):
    expected = bad_inputs(tmp_path)
    for name, reason in expected.items():
        row = probe(tmp_path / name)
        assert not row["ok"], name
        assert row["reason"] == reason, (name, row["detail"])
        assert row["detail"], name


def test_missing_file_is_unreadable(tmp_path):
    row = probe(tmp_path / "does-not-exist.mp4")
    assert row["reason"] == "unreadable"


def test_decoder_threads_follow_the_worker_cpu_share(tmp_path, monkeypatch):
    """Ray sets OMP_NUM_THREADS from an actor's CPUs: its decoders use that many threads
    unless ``analyze.decode_threads`` says otherwise; outside Ray FFmpeg chooses (0)."""
    from curate.media.video import open_video

    path = tmp_path / "a.mp4"
    write_video(path, still_frames(textured_image(1), 5))
    for env, threads, expected in [("1", 0, 1), ("3", 0, 3), ("1", 2, 2), (None, 0, 0)]:
        if env is None:
            monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        else:
            monkeypatch.setenv("OMP_NUM_THREADS", env)
        container, stream = open_video(str(path), threads)
        assert stream.codec_context.thread_count == expected, (env, threads)
        container.close()
