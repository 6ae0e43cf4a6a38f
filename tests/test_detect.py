"""Keyframe detectors with their real weights: NudeNet (sensitive content, faces) and the
generic YOLO-family stage, on real footage; start-up checks; their tier gates."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import VIDEOS, needs_shared

from curate import contract, schema
from curate.config import ConfigError
from curate.config.sections import CurateConfig
from curate.media.imaging import from_jpeg
from curate.models.onnx import session
from curate.models.yolo import Detection
from curate.signals.nsfw import NUDENET_LABELS, NsfwDetector, nsfw_values
from curate.signals.objects import ObjectDetector
from stages.analyze import AnalyzeStage
from stages.detect import DetectStage
from stages.probe import ProbeStage
from stages.tiers import assign_tiers

NUDENET_MODEL = str(Path(importlib.util.find_spec("nudenet").origin).parent / "320n.onnx")
FACES = ["FACE_FEMALE", "FACE_MALE"]


def nudenet_detector(detect):
    """NudeNet's YOLO runner as ``detect`` configures it."""
    return NsfwDetector.load(detect.nsfw, detect.device).model


def objects_detector(detect):
    return ObjectDetector.load(detect.objects, detect.device).model


def config(**detect) -> CurateConfig:
    return CurateConfig.model_validate(
        {"analyze": {"text": {"detector": "morphology"}}, "detect": detect}
    )


def detected(name: str, cfg: CurateConfig) -> list[dict]:
    probed = ProbeStage.from_config(cfg).probe_one(str(VIDEOS / name), 0)
    analyze = AnalyzeStage.from_config(cfg)
    row = schema.from_rows([analyze.analyze_one(probed)], analyze.schema)
    return DetectStage.from_config(cfg)(row).to_pylist()[0]["clips"]


@needs_shared
def test_nudenet_finds_faces_in_real_footage_and_none_in_a_still_life():
    cfg = config()
    speaker = detected("face_recognition/short_hamilton_clip.mp4", cfg)
    assert speaker and all(c["faces"] >= 1 and c["face_share"] > 0.01 for c in speaker)
    bottles = detected("sample-videos/bottle-detection.mp4", cfg)
    assert all(c["faces"] == 0 and c["face_share"] == 0 for c in bottles)
    for clip in speaker + bottles:
        assert clip["nsfw_score"] < 0.2 and clip["nsfw_classes"] == []


@needs_shared
def test_a_yolo_family_model_from_config_gives_the_subject_share():
    # NudeNet's file is a real YOLOv8 model: configured as a generic detector, faces are
    # the subjects.
    objects = {"model": NUDENET_MODEL, "classes": NUDENET_LABELS, "subjects": FACES}
    cfg = config(nsfw={"enabled": False}, objects=objects)
    DetectStage.check(cfg)
    clips = detected("face_recognition/short_hamilton_clip.mp4", cfg)
    assert all(c["subject_share"] > 0.01 and "FACE_MALE" in c["objects"] for c in clips)
    assert all(c["nsfw_score"] is None for c in clips)  # NudeNet itself is off
    bottles = detected("sample-videos/bottle-detection.mp4", cfg)
    assert all(c["subject_share"] == 0 for c in bottles)


def test_missing_or_mismatched_models_stop_the_run_naming_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"detect\.nsfw\.model"):
        DetectStage.check(config(nsfw={"model": str(tmp_path / "none.onnx")}))
    with pytest.raises(ConfigError, match=r"detect\.objects\.model"):
        DetectStage.check(config(objects={"model": str(tmp_path / "none.onnx")}))
    with pytest.raises(ConfigError, match=r"detect\.objects\.model: the model scores 18"):
        DetectStage.check(config(objects={"model": NUDENET_MODEL, "classes": ["person"]}))
    with pytest.raises(ConfigError, match=r"detect\.objects\.subjects"):
        objects = {"model": NUDENET_MODEL, "classes": NUDENET_LABELS, "subjects": ["dog"]}
        DetectStage.check(config(objects=objects))


def test_keyframes_are_read_at_the_configured_size():
    # NudeNet's file takes any size: 640 unless the config says otherwise.
    assert nudenet_detector(config().detect).size == 640
    assert nudenet_detector(config(nsfw={"input_size": 320}).detect).size == 320
    objects = {"model": NUDENET_MODEL, "classes": NUDENET_LABELS}
    assert objects_detector(config(objects=objects).detect).size == 640
    with pytest.raises(ValueError, match=r"input_size"):
        config(nsfw={"input_size": 300})


def test_a_model_with_a_fixed_input_size_is_read_at_that_size(monkeypatch):
    # The same model as if exported with a fixed 320 px input.
    real = session(NUDENET_MODEL, "cpu", "detect.nsfw.model")

    class Fixed:
        def __getattr__(self, name: str):
            return getattr(real, name)

        def get_inputs(self):
            (spec,) = real.get_inputs()
            return [SimpleNamespace(name=spec.name, shape=[1, 3, 320, 320])]

    monkeypatch.setattr("curate.models.yolo.session", lambda *args: Fixed())
    assert nudenet_detector(config().detect).size == 320
    with pytest.raises(ConfigError, match=r"detect\.nsfw\.input_size: .* reads 320 px"):
        nudenet_detector(config(nsfw={"input_size": 640}).detect)


def test_nsfw_values_count_only_sensitive_parts_and_confident_faces():
    found = [
        [
            Detection("FEMALE_BREAST_EXPOSED", 0.7, (0.1, 0.1, 0.3, 0.3)),
            Detection("FEET_EXPOSED", 0.9, (0.5, 0.8, 0.6, 0.9)),
            Detection("FACE_FEMALE", 0.8, (0.4, 0.1, 0.6, 0.4)),
        ],
        [Detection("FACE_MALE", 0.3, (0.0, 0.0, 1.0, 1.0))],  # under the threshold
    ]
    values = nsfw_values(found, threshold=0.4)
    assert values["nsfw_score"] == 0.7 and values["nsfw_classes"] == ["FEMALE_BREAST_EXPOSED"]
    assert values["faces"] == 1 and abs(values["face_share"] - 0.06) < 1e-9


def test_detection_gates_reject_with_their_reasons():
    rows = []
    for i, (nsfw, faces, share, subject) in enumerate(
        [
            (0.9, 0, 0.0, 0.5),
            (0.0, 5, 0.02, 0.5),
            (0.0, 1, 0.6, 0.5),
            (0.0, 0, 0.0, 0.01),
            (0.1, 1, 0.05, 0.4),
        ]
    ):
        rows.append(
            {
                "clip_id": f"c{i}",
                "source": "s",
                "start_s": 0.0,
                "end_s": 5.0,
                "duration_s": 5.0,
                "width": 1280,
                "height": 720,
                "nsfw_score": nsfw,
                "faces": faces,
                "face_share": share,
                "subject_share": subject,
            }
        )
    gates = {"max_nsfw": 0.5, "max_faces": 3, "max_face_share": 0.5, "min_subject_share": 0.05}
    cfg = CurateConfig.model_validate({"tiers": [{"name": "t", "gates": gates}]})
    result = assign_tiers(schema.from_rows(rows, contract.ANALYSIS), cfg.tiers)
    assert [r["reason"] for r in result.rejects] == [
        "nsfw",
        "faces",
        "face_close_up",
        "small_subject",
    ]
    assert np.flatnonzero(result.passed[0]).tolist() == [4]


@needs_shared
def test_a_free_size_model_reads_a_wide_keyframe_without_square_padding():
    # Rectangular input (padded to the stride only) costs 40 % less on a 16:9 keyframe and
    # finds the same faces as the square input of the same side.
    cfg = config()
    probed = ProbeStage.from_config(cfg).probe_one(str(VIDEOS / "opencv-for-python/faces.mp4"), 0)
    analyze = AnalyzeStage.from_config(cfg)
    clip = analyze.analyze_one(probed)["clips"][0]
    keyframes = [from_jpeg(k) for k in clip["keyframes"]]
    rect = nudenet_detector(cfg.detect)
    square = nudenet_detector(cfg.detect)
    square.square = True
    h, w = keyframes[0].shape[:2]
    assert w > h and rect.letterbox(keyframes[0])[0].shape == (1, 3, 384, 640)
    assert square.letterbox(keyframes[0])[0].shape == (1, 3, 640, 640)
    for frame in keyframes:
        found = rect.detect(frame, 0.4)
        expected = square.detect(frame, 0.4)
        assert [d.label for d in found] == [d.label for d in expected]
        for d, e in zip(found, expected):
            assert abs(d.score - e.score) < 0.05
            assert np.allclose(d.box, e.box, atol=0.01)
    assert any(d.label in FACES for frame in keyframes for d in rect.detect(frame, 0.4))


@needs_shared
def test_keyframes_read_in_batches_give_each_keyframe_its_own_detections():
    # Keyframes of two sizes (two input shapes) in one call: each image's detections are the
    # ones it gets alone, boxes in its own proportions.
    cfg = config()
    analyze = AnalyzeStage.from_config(cfg)
    keyframes = []
    for name in ("opencv-for-python/faces.mp4", "co-tracker/teddy.mp4"):
        probed = ProbeStage.from_config(cfg).probe_one(str(VIDEOS / name), 0)
        clip = analyze.analyze_one(probed)["clips"][0]
        keyframes += [from_jpeg(k) for k in clip["keyframes"]]
    detector = nudenet_detector(cfg.detect)
    assert len({detector.letterbox(k)[0].shape for k in keyframes}) == 2
    batched = detector.detect_many(keyframes, 0.2)
    assert any(batched)
    for frame, found in zip(keyframes, batched):
        alone = detector.detect(frame, 0.2)
        assert [d.label for d in found] == [d.label for d in alone]
        for d, e in zip(found, alone):
            assert abs(d.score - e.score) < 1e-4
            assert np.allclose(d.box, e.box, atol=1e-4)
