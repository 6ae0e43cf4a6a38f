"""The sections of a run's config, and :class:`CurateConfig` that holds them. ``analyze``,
``detect`` and a tier's ``gates`` are assembled from the registered signals
(``curate.contract``); every other section is declared here."""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import Field, StringConstraints, ValidationInfo, field_validator, model_validator

from curate.config import Model
from curate.contract import ALL_GATES, AnalyzeConfig, DetectConfig, Gates

Media = Literal["video", "image"]


class ProbeConfig(Model):
    min_short_side: int = Field(144, ge=1, description="Inputs below this short side are rejected.")
    max_pixels: int = Field(
        8192 * 8192,
        ge=1,
        description="Inputs with more pixels per frame are rejected as unreadable.",
    )


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
    it, so a poison input costs at most its own ``rejects`` row (see ``curate.media.sandbox``)."""

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


class FrameHashConfig(Model):
    """Copies found by aligning the clips' frame hashes (``analyze.fingerprint``) in time."""

    enabled: bool = True
    max_distance: int = Field(
        64, ge=0, le=128, description="Hamming distance (of 256 bits) of two matching frames."
    )
    min_frames: int = Field(3, ge=1, description="Matched frames on one time mapping, at least.")
    min_share: float = Field(
        0.3,
        ge=0,
        le=1,
        description="...and at least this share of the shorter clip's hashed frames.",
    )
    tolerance_s: float = Field(
        0.6, gt=0, description="How far a matched frame may lie off the fitted time mapping."
    )


class VerifyConfig(Model):
    """Copies confirmed by local features: ORB keypoints of the clips' keyframes and a RANSAC
    similarity transform (survives crops, bars, picture-in-picture, logos, mirroring)."""

    enabled: bool = True
    max_pairs: int = Field(
        100_000,
        ge=0,
        description="Candidate pairs verified at most (the most similar first); each costs "
        "about 40 ms of CPU.",
    )
    min_inliers: int = Field(20, ge=4, description="Keypoint matches agreeing on the transform.")
    min_coverage: float = Field(
        0.05,
        ge=0,
        le=1,
        description="Share of each keyframe's area the inliers must span, so a shared logo or "
        "caption alone is no match.",
    )


class DedupConfig(Model):
    enabled: bool = True
    threshold: float = Field(
        0.95,
        gt=0,
        le=1,
        description="Cosine similarity at which the embeddings alone make a duplicate.",
    )
    candidate_threshold: float = Field(
        0.4,
        gt=0,
        le=1,
        description="Cosine similarity from which a pair is a candidate for the frame-hash "
        "and keypoint checks.",
    )
    max_candidates: int = Field(
        5, ge=1, description="Candidates per clip at most: its most similar clips."
    )
    frame_hash: FrameHashConfig = FrameHashConfig()
    verify: VerifyConfig = VerifyConfig()
    kmeans: KMeansConfig = KMeansConfig(k=256, min_cluster_size=1000)
    max_cluster_size: int = Field(
        20_000, ge=2, description="Larger clusters are split so no task is quadratic in them."
    )
    boundary_margin: float | None = Field(
        None,
        ge=0,
        description="A clip whose second-nearest K-means centroid is within this cosine of "
        "the nearest is compared in both clusters too, so a copy that fell on the other side "
        "of a boundary is still found (e.g. 0.01; null: nearest cluster only).",
    )
    same_source: bool = Field(
        False,
        description="Also compare clips of the same source. Off: windows of one video are "
        "different moments, and the per-source cap limits how many of them a tier keeps.",
    )
    cross_media: bool = Field(
        False,
        description="Also compare images with video clips. Off: a photo and a video showing "
        "the same thing are both kept (image and video tiers train different stages).",
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


class TierExport(Model):
    crop_borders: bool = Field(
        False, description="Crop measured bars off exported clips and images."
    )
    short_side: int | None = Field(
        None, ge=16, description="Exported short side; never upscales (images: re-encoded)."
    )
    fps: float | None = Field(
        None, gt=0, description="Exported frame rate; null keeps the source's (video only)."
    )


class TierConfig(Model):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    media: Media = Field(
        "video",
        description="What the tier holds: video clips or images. Tiers of one kind are "
        "nested among themselves, loosest first.",
    )
    gates: Gates = Gates()
    export: TierExport = TierExport()

    @model_validator(mode="after")
    def _gates_apply(self) -> TierConfig:
        """An image tier cannot gate on what an image does not have (motion, duration)."""
        if self.media == "image":
            for gate in ALL_GATES:
                if "image" not in gate.media and getattr(self.gates, gate.key) not in (None, False):
                    raise ValueError(
                        f"gates.{gate.key} does not apply to images (tier {self.name!r} has "
                        "media: image); remove it from this tier"
                    )
            if self.export.fps is not None:
                raise ValueError(f"export.fps does not apply to images (tier {self.name!r})")
        return self


class ExportConfig(Model):
    mode: Literal["files", "inline", "reference"] = Field(
        "files",
        description="files: clip files under clips/, referenced by clip_path; inline: clip "
        "bytes in the video column; reference: the source and span only. Image tiers hold "
        "their images inline (the image column) in files and inline mode, their source path "
        "in reference mode.",
    )
    image_format: Literal["original", "jpeg", "png", "webp"] = Field(
        "original",
        description="How images go into image tiers: original keeps the file's bytes (unless "
        "the tier scales or crops it: then it is re-encoded in its own format where Pillow "
        "writes it, else JPEG); jpeg, png, webp re-encode every image.",
    )
    image_quality: int = Field(
        90, ge=1, le=100, description="JPEG and WebP quality of re-encoded images."
    )
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
        default_factory=lambda: [
            TierConfig(name="default"),
            TierConfig(name="images", media="image"),
        ],
        min_length=1,
    )
    media: list[Media] | None = Field(
        None,
        min_length=1,
        validate_default=True,
        description="The kinds of input curated: a folder or glob is walked for their "
        "extensions, other inputs of another kind are left out. null: the kinds the tiers "
        "hold (a config with video tiers only reads no images).",
    )
    caption: CaptionConfig = CaptionConfig()
    export: ExportConfig = ExportConfig()
    output: OutputConfig = OutputConfig()
    ray: RayConfig = RayConfig()

    @field_validator("media")
    @classmethod
    def _media_has_tiers(cls, media: list[str] | None, info: ValidationInfo) -> list[str]:
        """The kinds the tiers hold by default; a kind curated with no tier to go to would
        only be read to be rejected."""
        held = [m for m in get_args(Media) if any(t.media == m for t in info.data.get("tiers", []))]
        if media is None:
            return held
        for kind in media:
            if kind not in held:
                raise ValueError(f"{kind} is curated but no tier has media: {kind}; add one")
        return list(dict.fromkeys(media))

    @model_validator(mode="after")
    def _unique_tiers(self) -> CurateConfig:
        names = [t.name for t in self.tiers]
        if len(set(names)) != len(names):
            raise ValueError(f"tier names must be unique, got {names}")
        return self
