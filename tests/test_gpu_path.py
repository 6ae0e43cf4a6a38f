"""The GPU path as far as a machine without a GPU can exercise it: ``analyze.decoder``, the
start-up checks, the per-source fall-back from NVDEC to the CPU decoder, and how
``device: auto`` is read for torch, onnxruntime and Ray workers."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import av
import pytest

import curate.media.video as video
import curate.models.devices as devices
from curate.config import ConfigError
from curate.config.loading import load_config
from curate.config.sections import CurateConfig
from curate.media.video import probe
from curate.models.devices import (
    check_decoder,
    cluster_driver,
    onnx_device,
    resolve_analyze,
    resolve_decoder,
    torch_device,
)
from curate.models.model_files import model_file
from curate.models.onnx import CUDA_OPTIONS, providers, session
from scripts.common.synth import shots_video
from stages.analyze import AnalyzeStage, analyze_source, decode_series

no_gpu = pytest.mark.skipif(devices.cuda_devices() > 0, reason="needs a machine without a GPU")


@pytest.fixture(autouse=True)
def _local(monkeypatch):
    """A local run unless a test says otherwise."""
    monkeypatch.delenv("RAY_ADDRESS", raising=False)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """Two shots of 5 s: enough for clips, cheap to decode twice."""
    path = tmp_path_factory.mktemp("gpu") / "two_shots.mp4"
    shots_video(path, [125, 125], size=(180, 320))
    return str(path)


# analyze.decoder and its start-up checks -----------------------------------------------------


def test_decoder_setting_is_validated():
    assert CurateConfig().analyze.decoder == "auto"
    assert load_config(None, ["analyze.decoder=nvdec"]).analyze.decoder == "nvdec"
    with pytest.raises(ConfigError, match=r"analyze\.decoder"):
        load_config(None, ["analyze.decoder=cuda"])


@no_gpu
def test_auto_decodes_on_the_cpu_without_a_gpu():
    assert resolve_decoder("auto") == "cpu"
    assert resolve_decoder("cpu") == "cpu"
    cfg = resolve_analyze(CurateConfig().analyze)
    assert cfg.decoder == "cpu"


@no_gpu
def test_nvdec_without_a_gpu_stops_the_run_at_start_up():
    config = load_config(None, ["analyze.decoder=nvdec"])
    with pytest.raises(ConfigError, match=r"^analyze\.decoder: nvdec"):
        AnalyzeStage.check(config)
    # Each analyze worker checks too, as it starts.
    with pytest.raises(ConfigError, match=r"^analyze\.decoder: nvdec"):
        AnalyzeStage.from_config(config)


@no_gpu
def test_a_cluster_driver_leaves_the_gpu_check_to_the_workers(monkeypatch):
    config = load_config(None, ["analyze.decoder=nvdec"])
    monkeypatch.setenv("RAY_ADDRESS", "auto")
    assert cluster_driver()
    AnalyzeStage.check(config)  # this FFmpeg has NVDEC: only the GPU is missing here
    monkeypatch.setattr(video, "nvdec_build_problem", lambda: "built without CUDA")
    with pytest.raises(ConfigError, match=r"analyze\.decoder: nvdec cannot work"):
        check_decoder(config)


# NVDEC refusing a source ----------------------------------------------------------------------


REAL_OPEN = video.open_video


class Refusing:
    """A container opened "on NVDEC" whose decoder gives up on its first packet, as FFmpeg
    does when the GPU lacks the codec or profile (with software fallback off)."""

    def __init__(self, source: str) -> None:
        self.inner, _ = REAL_OPEN(source)

    def decode(self, stream):
        raise av.error.InvalidDataError(1094995529, "hwaccel initialisation returned error")

    def close(self) -> None:
        self.inner.close()


def _nvdec_here(monkeypatch, opener) -> list[str]:
    """Pretend NVDEC works in this process; ``opener(source)`` stands in for opening a source
    on it. Returns the sources opened on the CPU decoder."""
    cpu_opened: list[str] = []

    def open_video(source, threads=0, fast=False, *, hwaccel=None):
        if hwaccel is None:
            cpu_opened.append(source)
            return REAL_OPEN(source, threads, fast)
        return opener(source)

    monkeypatch.setattr(video, "nvdec_problem", lambda: None)
    monkeypatch.setattr(video, "nvdec_accel", lambda: object())
    monkeypatch.setattr(video, "_held_device", lambda: None)
    monkeypatch.setattr(video, "open_video", open_video)
    return cpu_opened


def _refuse_at_open(source):
    raise RuntimeError("Hardware accelerated decode requested but no stream is compatible")


def _no_nvdec_decoder(source):
    return REAL_OPEN(source)  # a stream without a hardware config: is_hwaccel False


def _refuse_first_frame(source):
    container = Refusing(source)
    stream = SimpleNamespace(codec_context=SimpleNamespace(is_hwaccel=True, name="vp8"))
    return container, stream


@pytest.mark.parametrize(
    "opener,why",
    [
        (_refuse_at_open, "no stream is compatible"),
        (_no_nvdec_decoder, "NVDEC has no decoder for h264"),
        (_refuse_first_frame, "hwaccel initialisation returned error"),
    ],
)
def test_a_source_nvdec_refuses_is_analysed_on_the_cpu(clip, monkeypatch, opener, why):
    cfg = CurateConfig().analyze
    info = probe(clip, max_pixels=10**9)
    expected = analyze_source(clip, info, cfg.model_copy(update={"decoder": "cpu"}))
    assert expected["decoder"] == "cpu" and expected["decoder_refused"] is None

    cpu_opened = _nvdec_here(monkeypatch, opener)
    nvdec = cfg.model_copy(update={"decoder": "nvdec"})
    assert resolve_decoder("nvdec") == "nvdec"
    got = analyze_source(clip, info, nvdec)
    assert cpu_opened == [clip]
    assert got.pop("decoder") == "cpu"
    assert why in got.pop("decoder_refused")
    expected.pop("decoder"), expected.pop("decoder_refused")
    got.pop("timing", None), expected.pop("timing", None)
    assert got == expected
    assert got["clips"]


def test_an_nvdec_error_after_the_first_frames_is_a_damaged_tail(clip, monkeypatch, caplog):
    """Frames the signals have seen cannot be taken back: a later error ends the source as on
    the CPU (what decoded is kept), not with a second decode."""

    class DiesLate:
        def __init__(self, source):
            self.inner, self.stream = REAL_OPEN(source)

        def decode(self, stream):
            for i, frame in enumerate(self.inner.decode(self.stream)):
                if i == 60:
                    raise av.error.InvalidDataError(1094995529, "cuvid decode failed")
                yield frame

        def close(self):
            self.inner.close()

    def opener(source):
        return DiesLate(source), SimpleNamespace(codec_context=SimpleNamespace(is_hwaccel=True))

    info = probe(clip, max_pixels=10**9)
    cpu_opened = _nvdec_here(monkeypatch, opener)
    cfg = CurateConfig().analyze.model_copy(update={"decoder": "nvdec"})
    with caplog.at_level(logging.WARNING):
        series = decode_series(clip, info, cfg)
    assert series.decoder == "nvdec" and series.refused is None
    # The frames held back to repair timestamps go with the error, as on the CPU.
    assert series.num_frames == 60 - video.REORDER_DEPTH
    assert not cpu_opened
    assert f"decoding stopped after {series.num_frames} frames" in caplog.text


# device: auto ---------------------------------------------------------------------------------


@no_gpu
def test_auto_runs_models_on_the_cpu_without_a_gpu():
    assert torch_device("auto", "embed.device") == "cpu"
    assert onnx_device("auto", "detect.device") == "cpu"
    assert providers("auto", "detect.device") == ["CPUExecutionProvider"]


@no_gpu
def test_explicit_cuda_without_a_gpu_names_the_key():
    with pytest.raises(ConfigError, match=r"^embed\.device is cuda"):
        torch_device("cuda", "embed.device")
    with pytest.raises(ConfigError, match=r"^detect\.device: cuda requested"):
        onnx_device("cuda", "detect.device")


def test_auto_follows_the_gpu_and_rays_assignment(monkeypatch):
    import onnxruntime as ort
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(devices, "cuda_devices", lambda: 1)
    monkeypatch.setattr(
        ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    assert torch_device("auto", "k") == "cuda"
    assert onnx_device("auto", "k") == "cuda"
    assert providers("auto", "k") == [
        ("CUDAExecutionProvider", CUDA_OPTIONS),
        "CPUExecutionProvider",
    ]
    # A Ray worker that asked for no GPU leaves it to those that did.
    monkeypatch.setattr(devices, "ray_gave_no_gpu", lambda: True)
    assert torch_device("auto", "k") == "cpu"
    assert onnx_device("auto", "k") == "cpu"
    assert resolve_decoder("auto") == "cpu"
    cfg = resolve_analyze(CurateConfig().analyze)
    assert cfg.shots.transnetv2.device == "cpu"
    assert cfg.decoder == "cpu"
    # An explicit setting is taken at its word.
    assert torch_device("cuda", "k") == "cuda"


@pytest.mark.filterwarnings("ignore:Specified provider 'CUDAExecutionProvider'")
def test_a_cuda_provider_that_does_not_start_is_noticed(monkeypatch, caplog):
    """onnxruntime falls back to the CPU silently: an explicit cuda fails, auto warns."""
    path = str(model_file(None, "detect.nsfw.model", "nudenet", "320n.onnx", "needs nudenet"))
    monkeypatch.setattr(devices, "cuda_devices", lambda: 1)
    monkeypatch.setattr("curate.models.onnx.onnx_device", lambda setting, key: "cuda")
    with pytest.raises(ConfigError, match=r"^detect\.device: cuda requested but onnxruntime"):
        session.__wrapped__(path, "cuda", "detect.device")
    with caplog.at_level(logging.WARNING):
        model = session.__wrapped__(path, "auto", "detect.device")
    assert model.get_providers() == ["CPUExecutionProvider"]
    assert "CUDA provider did not start" in caplog.text


def test_ray_workers_without_a_gpu_see_none(ray_local):
    assert not devices.ray_gave_no_gpu()  # the driver

    @ray_local.remote(num_cpus=0.1)
    def asked_for_none() -> tuple[bool, bool]:
        import curate.models.devices

        return curate.models.devices.ray_gave_no_gpu(), curate.models.devices.cluster_driver("auto")

    assert ray_local.get(asked_for_none.remote()) == (True, False)
