"""On-screen text: drawn text raises ``text_ratio`` far above the same clips without it, and
text-heavy real footage is rejected by the default config."""

from __future__ import annotations

from types import SimpleNamespace

import av
import cv2
import numpy as np
import pytest
from conftest import ROOT, VIDEOS, needs_shared

from curate import contract, schema
from curate.config import ConfigError
from curate.config.loading import load_config
from curate.config.sections import CurateConfig
from curate.media.imaging import from_jpeg, jpeg
from curate.signals import text as text_signal
from curate.signals.ocr import OcrTextDetector
from curate.signals.text import (
    MorphologyTextDetector,
    TextConfig,
    TextSignal,
    clip_samples,
    coverage,
    overlay_text,
)
from scripts.common.synth import (
    TEXT_KINDS,
    camera_motion_frames,
    draw_text,
    real_frames,
    textured_image,
    write_video,
)
from stages.analyze import AnalyzeStage
from stages.detect import DetectStage
from stages.probe import ProbeStage
from stages.tiers import assign_tiers


def analyse(path, config=None):
    """The clips of ``path`` after the analyze and detect stages (OCR runs in the latter)."""
    config = config or CurateConfig()
    probed = ProbeStage.from_config(config).probe_one(str(path), 0)
    analyze = AnalyzeStage.from_config(config)
    row = schema.from_rows([analyze.analyze_one(probed)], analyze.schema)
    return DetectStage.from_config(config)(row).to_pylist()[0]["clips"]


def clip_frames(image, kind: str | None, seed: int):
    """5 s of a slow pan over a real frame, with text fixed on screen when ``kind`` is set."""
    for frame in camera_motion_frames(image, "pan_right", 0.5, n=125, size=(360, 640), seed=seed):
        yield draw_text(frame, kind, seed) if kind else frame


@needs_shared
def test_drawn_text_separates_from_the_same_clips_without(tmp_path):
    images = real_frames(VIDEOS, count=3)
    without, with_text = [], {}
    for i, image in enumerate(images):
        path = write_video(tmp_path / f"plain{i}.mp4", clip_frames(image, None, i))
        without += [c["text_ratio"] for c in analyse(path)]
        for kind in TEXT_KINDS:
            path = write_video(tmp_path / f"{kind}{i}.mp4", clip_frames(image, kind, i))
            with_text[f"{kind}{i}"] = [c["text_ratio"] for c in analyse(path)]
    print("without text:", np.round(without, 4))
    print("with text:", {k: np.round(v, 4).tolist() for k, v in with_text.items()})
    assert len(with_text) >= 10
    lowest = min(min(v) for v in with_text.values())
    assert lowest > max(without), f"with text {lowest:.4f} <= without {max(without):.4f}"


@needs_shared
def test_detector_boxes_cover_the_drawn_text():
    image = cv2.resize(real_frames(VIDEOS, count=1)[0], (455, 256), interpolation=cv2.INTER_AREA)
    gray = cv2.cvtColor(draw_text(image, "subtitle", seed=1), cv2.COLOR_RGB2GRAY)
    boxes, _ = MorphologyTextDetector().detect(gray)
    band = boxes[boxes[:, 1] > 0.75 * 256]
    print(boxes)
    # Nearly all detected text lies in the subtitle band at the bottom of the frame.
    assert coverage(band, gray.shape) > 0.01
    assert coverage(band, gray.shape) > 0.8 * coverage(boxes, gray.shape)


@needs_shared
def test_echo_is_rejected_as_text_heavy_by_the_default_config():
    config = load_config(ROOT / "configs" / "default.yaml")
    clips = analyse(VIDEOS / "mediaelement-files" / "echo-hereweare.webm", config)
    assert clips
    result = assign_tiers(schema.from_rows(clips, contract.ANALYSIS), config.tiers)
    assert not result.passed[0].any()
    assert {r["reason"] for r in result.rejects} == {"text_heavy"}


@needs_shared
@pytest.mark.parametrize(
    "name",
    [
        "sam2/05_default_juggle.mp4",
        "learning-area/rabbit.webm",
        "co-tracker/paragliding-launch.mp4",
    ],
)
def test_textless_real_footage_passes_the_text_gate(name):
    config = load_config(ROOT / "configs" / "default.yaml")
    clips = analyse(VIDEOS / name, config)
    limit = config.tiers[0].gates.max_text
    assert all(c["text_ratio"] <= limit for c in clips), [c["text_ratio"] for c in clips]


@needs_shared
@pytest.mark.parametrize("kind", ["subtitle 2%", "copyright over black", "title over black"])
def test_ocr_finds_small_subtitles_and_text_over_black_and_reads_them(tmp_path, kind):
    from scripts.common.synth import text_case_frames

    image = real_frames(VIDEOS, count=1)[0]
    path = write_video(tmp_path / "t.mp4", text_case_frames(kind, image, seed=3))
    (clip,) = analyse(path)
    plain = write_video(tmp_path / "p.mp4", text_case_frames("plain", image, seed=3))
    (clean,) = analyse(plain)
    assert clip["text_ratio"] > 0.002 > clean["text_ratio"]
    assert clip["text_content"] and clean["text_content"] is None
    if kind == "copyright over black":
        assert "rights" in clip["text_content"].lower()


@needs_shared
@pytest.mark.parametrize("angle", [-30, 25])
def test_ocr_reads_a_diagonal_line_straightened(angle):
    """A stock site's word written across the picture at an angle, at 35 % opacity: its
    upright box is mostly empty, so the line is scored and read in its own rectangle."""
    image = cv2.cvtColor(
        cv2.resize(real_frames(VIDEOS, count=1)[0], (960, 540)), cv2.COLOR_RGB2GRAY
    )
    mask = np.zeros((540, 960), np.uint8)
    cv2.putText(mask, "stockfootage", (280, 290), cv2.FONT_HERSHEY_DUPLEX, 1.6, 255, 3, cv2.LINE_AA)
    mask = cv2.warpAffine(mask, cv2.getRotationMatrix2D((480, 270), angle, 1.0), (960, 540))
    alpha = 0.35 * mask.astype(np.float32) / 255
    frame = (image * (1 - alpha) + 255 * alpha).astype(np.uint8)
    ocr = OcrTextDetector(CurateConfig().analyze.text.ocr)
    assert any("stock" in t.lower() for t in ocr.detect(frame)[1]), ocr.detect(frame)[1]
    assert not any("stock" in t.lower() for t in ocr.detect(image)[1])


@needs_shared
def test_ocr_parts_big_lines_set_so_close_that_they_touch():
    """The kinetic-typography promo sets "WE ARE" over "HERE TO" so close that a letter of
    one reaches the other in the detector's map: one region too tall for a line, which is
    cut between them, and both lines are read, frame after frame."""
    ocr = OcrTextDetector(CurateConfig().analyze.text.ocr)
    with av.open(str(VIDEOS / "mediaelement-files/echo-hereweare.webm")) as container:
        container.seek(39_000_000)
        frames = [
            f.to_ndarray(format="gray")
            for f in container.decode(video=0)
            if 39.2 <= float(f.pts * f.time_base) <= 40.0
        ]
    readings = [" ".join(ocr.detect(gray)[1]).replace(" ", "") for gray in frames]
    assert len(frames) >= 8
    assert sum("HERE" in r and "ARE" in r for r in readings) >= 0.75 * len(frames), readings


@pytest.mark.parametrize("blur", [0, 8])
def test_ocr_reads_a_word_that_fills_much_of_the_frame(blur):
    """A title card's word 40 % of the frame high, sharp or blurred by a zoom: its region is
    taller than a line may be, and its core is taken as the line and read."""
    frame = np.full((540, 960), 40, np.uint8)
    cv2.putText(frame, "echo", (120, 380), cv2.FONT_HERSHEY_DUPLEX, 9.0, 230, 27, cv2.LINE_AA)
    if blur:
        frame = cv2.GaussianBlur(frame, (0, 0), blur)
    boxes, readings = OcrTextDetector(CurateConfig().analyze.text.ocr).detect(frame)
    assert readings == ["echo"], readings
    assert (boxes[0, 3] - boxes[0, 1]) > 0.4 * 540


@needs_shared
def test_scene_text_moving_with_the_camera_is_not_overlay_text(tmp_path):
    from scripts.common.synth import text_case_frames

    image = real_frames(VIDEOS, count=1)[0]
    frames = text_case_frames("text moving with the scene", image, seed=2)
    (clip,) = analyse(write_video(tmp_path / "s.mp4", frames))
    assert clip["text_ratio"] < 0.002


def _written(picture: np.ndarray, lines: list[tuple[str, int, int]]) -> np.ndarray:
    """``picture`` with white ``(words, x, y)`` lines written over it."""
    out = picture.copy()
    for words, x, y in lines:
        cv2.putText(out, words, (x, y), cv2.FONT_HERSHEY_DUPLEX, 1.1, 255, 2, cv2.LINE_AA)
    return out


def _shifted(picture: np.ndarray, dx: float) -> np.ndarray:
    """``picture`` panned ``dx`` pixels to the left (a fraction of a pixel interpolated)."""
    turn = np.float32([[1, 0, -dx], [0, 1, 0]])
    return cv2.warpAffine(picture, turn, (picture.shape[1], picture.shape[0]))


def _through_jpeg(picture: np.ndarray) -> np.ndarray:
    """``picture`` as the detect stage sees a sampled frame: a JPEG at quality 90."""
    return from_jpeg(jpeg(picture, 90), gray=True)


def _labelled(picture: np.ndarray, label: str, x: int, y: int) -> np.ndarray:
    """``picture`` with a detection label: white words on a black plate."""
    out = picture.copy()
    cv2.rectangle(out, (x - 6, y - 30), (x + 17 * len(label), y + 10), 0, -1)
    return _written(out, [(label, x, y)])


@needs_shared
def test_text_moving_on_the_screen_counts_and_text_carried_by_the_camera_does_not():
    """A sample and the frame a quarter second later: credits rolling over black or over a
    pan, words sliding over a still picture, a label whose words change in place and one
    that jumps with its box while the camera pans (read alone or joined to another) are on
    the screen; words painted on a picture the camera pans over are not."""
    photo = cv2.cvtColor(
        cv2.resize(real_frames(VIDEOS, count=1)[0], (1100, 620)), cv2.COLOR_RGB2GRAY
    )
    still = photo[40:580, 70:1030]
    black = np.zeros_like(still)
    credits = [("Directed by Ada Lovelace", 250, 260), ("Music by Clara Schumann", 250, 320)]
    rolled = [(w, x, y - 30) for w, x, y in credits]
    scene = _written(photo, [("GRAND HOTEL PARADISE", 300, 300)])
    bakery = _written(photo, [("Main Street Bakery", 300, 300)])
    pairs = {
        "credits rolling": (_written(black, credits), _written(black, rolled), True),
        "words sliding over a still": (
            _written(still, [("Summer Sale Tonight", 200, 250)]),
            _written(still, [("Summer Sale Tonight", 236, 250)]),
            True,
        ),
        "credits rolling over a pan": (
            _written(still, credits),
            _written(photo[40:580, 94:1054], rolled),
            True,
        ),
        "label changing in place": (
            _written(still, [("person: 0.82 walking", 120, 80)]),
            _written(still, [("bicycle: 0.55 riding", 120, 80)]),
            True,
        ),
        "label jumping with its box over a pan": (
            _labelled(still, "person: 0.53 standing", 120, 80),
            _labelled(photo[40:580, 94:1054], "person: 0.6127 sit: 0.58", 220, 200),
            True,
        ),
        # Cut by the frame's edge, it keeps its right end when read joined to a new label.
        "label jumping and read joined to the one beside it": (
            _labelled(still, "person: 0.5341 standing", 640, 140),
            _labelled(
                _labelled(photo[40:580, 94:1054], "person: 0.47", 446, 120),
                "person: 0.5819025 sitting",
                650,
                120,
            ),
            True,
        ),
        "scene text panned past": (scene[40:580, 70:1030], scene[40:580, 94:1054], False),
        # A pan by a fraction of a pixel more, through JPEG: the detector's boxes wander.
        "shop sign panned past": (
            _through_jpeg(bakery[40:580, 70:1030]),
            _through_jpeg(_shifted(bakery, 24.4)[40:580, 70:1030]),
            False,
        ),
    }
    ocr = OcrTextDetector(CurateConfig().analyze.text.ocr)
    for name, (frame, confirm, is_text) in pairs.items():
        ratio, _, lines = overlay_text(ocr, frame, confirm)
        assert lines, name  # every case has a line to judge
        assert (ratio > 0) == is_text, (name, ratio, lines)


def test_a_sign_the_camera_reveals_more_of_has_not_jumped():
    """A sign cut by the frame's right edge while the camera pans: a quarter second later it
    is read longer, its right end still at the frame's edge. Its letters not found again (as
    blur would make it), the shift from the right ends is no move of the picture, but the one
    from the left ends is: scene text, not a label that jumped."""
    world = cv2.cvtColor(textured_image(3, 700, 1200), cv2.COLOR_RGB2GRAY)
    cv2.putText(world, "PARKING ENTRANCE", (700, 240), cv2.FONT_HERSHEY_SIMPLEX, 1.2, 255, 3)
    frame = np.ascontiguousarray(world[100:640, 100:1060])
    confirm = np.ascontiguousarray(world[108:648, 160:1120])  # panned by (-60, -8)
    box = np.array([[600, 105, 960, 150]])
    again = (np.array([[540, 97, 960, 142]]), ["PARKING ENTRANCE LEVEL 2"])
    assert not text_signal.jumped(frame, confirm, box, 0, "PARKING ENTRANCE", again)
    # Had the picture stood still, the line would have moved on its own: a label.
    assert text_signal.jumped(frame, frame, box, 0, "PARKING ENTRANCE", again)


def test_missing_ocr_models_stop_the_run_naming_the_key(tmp_path):
    missing = str(tmp_path / "none.onnx")
    for key in ("weights", "recogniser"):
        config = CurateConfig.model_validate({"analyze": {"text": {"ocr": {key: missing}}}})
        with pytest.raises(ConfigError, match=rf"analyze\.text\.ocr\.{key}"):
            AnalyzeStage.check(config)


def test_a_clip_reads_at_most_its_cap_of_sampled_frames_spread_over_it():
    times = np.arange(0.0, 16.0, 2.0)  # a 16 s clip sampled at 0.5 fps: 8 samples
    assert clip_samples(times, 0.0, 16.0).tolist() == list(range(8))
    # The samples nearest 1/6, 1/2 and 5/6 of the way through (2.7 s, 8 s, 13.3 s).
    assert clip_samples(times, 0.0, 16.0, at_most=3).tolist() == [1, 4, 7]
    assert clip_samples(times, 4.0, 8.0, at_most=3).tolist() == [2, 3]


@pytest.mark.parametrize("min_clip_s", [1.0, 2.0, 4.0])
def test_the_shortest_clip_reads_two_frames_spread_over_it_never_only_its_first(min_clip_s):
    signal = TextSignal(TextConfig(detector="morphology"), min_clip_s)
    blank = np.zeros((36, 64), np.uint8)
    for t in np.arange(0.0, 30.0, 1 / 30):  # a 30 fps source, fed as the decode pass does
        frame = SimpleNamespace(time=t, gray=blank)
        if signal.wants(frame):
            signal.update(frame)
    sampled = signal.finish().times
    for start in np.arange(0.0, 30.0 - min_clip_s, 0.1):
        read = clip_samples(sampled, start, start + min_clip_s, at_most=2)
        assert len(read) == 2, start
        assert sampled[read[1]] - sampled[read[0]] >= min_clip_s / 3 - 1 / 30
        assert sampled[read].max() >= start + min_clip_s / 2 - 1e-9, start


def test_ocr_reads_only_the_capped_frames_of_each_clip(tmp_path, monkeypatch):
    # 12 s of a pan with a subtitle: five or six samples in its clip, of which OCR reads three
    # (and the stack of the source's samples four times for watermarks: their median as it
    # is and equalised, their low frame equalised, the median's corners).
    frames = camera_motion_frames(
        np.full((400, 700, 3), 90, np.uint8), "pan_right", 0.5, n=300, size=(360, 640), seed=0
    )
    path = write_video(tmp_path / "subtitle.mp4", (draw_text(f, "subtitle", 0) for f in frames))
    calls = []
    original = OcrTextDetector.detect

    def counted(self, gray):
        if gray.any():  # not the blank frame the stage loads its models with
            calls.append(gray.shape)
        return original(self, gray)

    monkeypatch.setattr(OcrTextDetector, "detect", counted)
    (clip,) = analyse(path)
    assert len(calls) == 3 + 4 and clip["text_ratio"] > 0.005
    calls.clear()
    (every,) = analyse(path, load_config(None, ["analyze.text.ocr.max_frames_per_clip=null"]))
    assert len(calls) >= 5 + 4 and every["text_ratio"] > 0.005
