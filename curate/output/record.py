"""``manifest.json``, the record of a finished run, as one typed model.

Written by the pipeline, read by ``inspect``, ``report``, ``validate`` and ``retier``: one
model keeps writer and readers on the same keys. It round-trips today's manifests exactly
(same keys, same order, same values) and reads those of older runs, whose missing keys take
the defaults below. Keys the model does not declare are kept, in order, in ``extra``.

Plain dataclasses, not pydantic: ``curate inspect`` (through ``scripts/inspect_shards.py``)
must run where only pyarrow is installed, so this module needs nothing but pyarrow and the
standard library.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa

from curate import schema
from curate.storage import Store, is_uri

FILE = "manifest.json"
"""The manifest's name inside an output folder."""


class InspectError(ValueError):
    """The folder is not a (readable) curate output, or the request does not fit it."""


class ManifestError(InspectError):
    """Manifest content that does not fit the model; ``path`` names the offending key."""

    def __init__(self, message: str, path: tuple[str, ...] = ()) -> None:
        self.message, self.path = message, path
        super().__init__(f"{'.'.join(path)}: {message}" if path else message)

    def within(self, key: str) -> ManifestError:
        """The same problem, one level further out (``key`` holds the offending value)."""
        return ManifestError(self.message, (key, *self.path))


def open_output(output: Store | str | os.PathLike) -> Store:
    """An output location as a ``Store``. A local path is normalised as ``pathlib`` would, so
    messages name it as before; a URI is kept as given."""
    if isinstance(output, Store):
        return output
    text = os.fspath(output)
    try:
        return Store(text if is_uri(text) else str(Path(text)))
    except (OSError, ValueError, pa.ArrowException) as e:
        raise InspectError(f"cannot open {text}: {e}") from e


# Value checks: each takes the JSON value, returns it (never converted, so a manifest
# round-trips byte for byte) or raises ManifestError.

Parse = Callable[[Any], Any]
T = TypeVar("T")


def _kind(value: object) -> str:
    return f"{type(value).__name__} {value!r}"[:80]


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ManifestError(f"expected a whole number, got {_kind(value)}")
    return value


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ManifestError(f"expected a number, got {_kind(value)}")
    return value


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise ManifestError(f"expected a string, got {_kind(value)}")
    return value


def _optional(parse: Parse) -> Parse:
    return lambda value: None if value is None else parse(value)


def _mapping(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ManifestError(f"expected an object, got {_kind(value)}")
    return dict(value)


def _dict_of(parse: Parse) -> Parse:
    """An object whose every value ``parse`` accepts."""

    def check(value: Any) -> dict[str, Any]:
        out = {}
        for key, item in _mapping(value).items():
            try:
                out[str(key)] = parse(item)
            except ManifestError as e:
                raise e.within(str(key)) from None
        return out

    return check


def _str_list(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise ManifestError(f"expected a list, got {_kind(value)}")
    for i, item in enumerate(value):
        try:
            _str(item)
        except ManifestError as e:
            raise e.within(str(i)) from None
    return list(value)


def _model(cls: type[T]) -> Parse:
    """A sub-model, given as one or as its JSON object."""
    return lambda value: value if isinstance(value, cls) else cls.from_json_dict(value)


def _to_json(value: Any) -> Any:
    """A JSON-ready copy: models as their objects, containers copied."""
    if hasattr(value, "to_json_dict"):
        return value.to_json_dict()
    if isinstance(value, Mapping):
        return {k: _to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_json(v) for v in value]
    return value


def _meta(parse: Parse, key: str | None = None) -> dict[str, Any]:
    """A model field's metadata: its value check and, where the JSON key is no identifier
    (``in``), the key."""
    return {"parse": parse, "key": key}


@dataclass(kw_only=True)
class Record:
    """A JSON object with declared keys (checked on construction; a sub-model may be given as
    its plain dict) and any others kept in ``extra``, written after the declared ones."""

    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def _declared(cls) -> list[dataclasses.Field]:
        return [f for f in dataclasses.fields(cls) if f.name != "extra"]

    def __post_init__(self) -> None:
        for f in self._declared():
            value = getattr(self, f.name)
            if value is None and f.default is None:
                continue
            try:
                setattr(self, f.name, f.metadata["parse"](value))
            except ManifestError as e:
                raise e.within(f.metadata["key"] or f.name) from None
        self.extra = _mapping(self.extra)

    @classmethod
    def from_json_dict(cls: type[R], data: Any) -> R:
        """The model of a JSON object; missing keys take their defaults."""
        names = {f.metadata["key"] or f.name: f.name for f in cls._declared()}
        known, extra = {}, {}
        for key, value in _mapping(data).items():
            if key in names:
                known[names[key]] = value
            else:
                extra[key] = value
        return cls(**known, extra=extra)

    def to_json_dict(self) -> dict[str, Any]:
        out = {
            f.metadata["key"] or f.name: _to_json(getattr(self, f.name)) for f in self._declared()
        }
        return out | _to_json(self.extra)

    def get(self, key: str, default: Any = None) -> Any:
        """The value under a JSON key, declared or extra (``default`` when absent)."""
        for f in self._declared():
            if (f.metadata["key"] or f.name) == key:
                return getattr(self, f.name)
        return self.extra.get(key, default)


R = TypeVar("R", bound=Record)


@dataclass(kw_only=True)
class Inputs(Record):
    """The ``--input`` values as given, and how many sources they expanded to."""

    given: list[str] = field(default_factory=list, metadata=_meta(_str_list))
    discovered: int | None = field(default=None, metadata=_meta(_int))


@dataclass(kw_only=True)
class RunInfo(Record):
    """How many invocations the run took (more than one after a resume), and how many
    sources an earlier invocation had finished."""

    invocations: int = field(default=1, metadata=_meta(_int))
    sources_done_before: int = field(default=0, metadata=_meta(_int))


@dataclass(kw_only=True)
class FunnelStage(Record):
    """One stage's rows in and out and its rejects by reason; stage-specific keys
    (``shots``, ``thresholds``, ``clusters_before``, ...) are in ``extra``."""

    in_: int | None = field(default=None, metadata=_meta(_int, "in"))
    out: int | None = field(default=None, metadata=_meta(_int))
    rejected: dict[str, int] = field(default_factory=dict, metadata=_meta(_dict_of(_int)))


@dataclass(kw_only=True)
class TierSize(Record):
    """A tier's rows (clips, or images in an image tier) and hours (0 for images)."""

    clips: int = field(default=0, metadata=_meta(_int))
    hours: float = field(default=0.0, metadata=_meta(_number))
    media: str = field(default="video", metadata=_meta(_str))


@dataclass(kw_only=True)
class Timing:
    """Wall seconds per phase (``total_s`` among them), then per-stage statistics: in JSON
    the phase keys come first and ``stages`` last."""

    seconds: dict[str, float] = field(default_factory=dict)
    stages: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.seconds = _dict_of(_number)(self.seconds)
        try:
            self.stages = _mapping(self.stages)
        except ManifestError as e:
            raise e.within("stages") from None

    @property
    def total_s(self) -> float | None:
        return self.seconds.get("total_s")

    @classmethod
    def from_json_dict(cls, data: Any) -> Timing:
        data = _mapping(data)
        seconds = {k: v for k, v in data.items() if k != "stages"}
        return cls(seconds=seconds, stages=data.get("stages", {}))

    def to_json_dict(self) -> dict[str, Any]:
        return {**self.seconds, "stages": _to_json(self.stages)}


@dataclass(kw_only=True)
class Versions:
    """The Python version, then the version of each recorded package (``None`` when it is not
    installed); in JSON one flat object."""

    python: str | None = None
    packages: dict[str, str | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        try:
            self.python = _optional(_str)(self.python)
        except ManifestError as e:
            raise e.within("python") from None
        self.packages = _dict_of(_optional(_str))(self.packages)

    @classmethod
    def from_json_dict(cls, data: Any) -> Versions:
        data = _mapping(data)
        packages = {k: v for k, v in data.items() if k != "python"}
        return cls(python=data.get("python"), packages=packages)

    def to_json_dict(self) -> dict[str, Any]:
        return {"python": self.python, **self.packages}


@dataclass(kw_only=True)
class Manifest(Record):
    """A run's ``manifest.json``. Construct it with keyword arguments named like the JSON
    keys; sub-models may be given as plain dicts (``funnel=self.funnel``)."""

    curate_version: str | None = field(default=None, metadata=_meta(_optional(_str)))
    created_unix: float | None = field(default=None, metadata=_meta(_optional(_number)))
    inputs: Inputs = field(default_factory=Inputs, metadata=_meta(_model(Inputs)))
    run: RunInfo = field(default_factory=RunInfo, metadata=_meta(_model(RunInfo)))
    embedding_model: str | None = field(default=None, metadata=_meta(_optional(_str)))
    funnel: dict[str, FunnelStage] = field(
        default_factory=dict, metadata=_meta(_dict_of(_model(FunnelStage)))
    )
    tiers: dict[str, TierSize] = field(
        default_factory=dict, metadata=_meta(_dict_of(_model(TierSize)))
    )
    rejects: dict[str, int] = field(default_factory=dict, metadata=_meta(_dict_of(_int)))
    timing: Timing = field(default_factory=Timing, metadata=_meta(_model(Timing)))
    config: dict[str, Any] = field(default_factory=dict, metadata=_meta(_mapping))
    versions: Versions = field(default_factory=Versions, metadata=_meta(_model(Versions)))
    signal_columns: dict[str, str] | None = field(
        default=None, metadata=_meta(_optional(_dict_of(_str)))
    )
    """The ``analysis`` columns the run's signals declared, name -> Arrow type, in order:
    the run's own output contract, readable without the signals' code."""
    score_columns: list[str] | None = field(default=None, metadata=_meta(_optional(_str_list)))
    """The numeric columns ``inspect`` and the report summarise, as the run's signals declared
    them (``curate.contract.SCORE_COLUMNS``)."""
    video_only_columns: list[str] | None = field(default=None, metadata=_meta(_optional(_str_list)))
    """Of :attr:`signal_columns`, those of signals that do not measure images (null on image
    rows, left out of image tiers)."""

    @property
    def signal_fields(self) -> tuple[pa.Field, ...]:
        """:attr:`signal_columns` as Arrow fields (a run that did not record them has those
        of the version before the record existed)."""
        return schema.fields_from_json(self.signal_columns or schema.LEGACY_SIGNAL_COLUMNS)

    @property
    def image_signal_fields(self) -> tuple[pa.Field, ...]:
        """The signal columns an image tier holds."""
        video_only = set(self.video_only_columns or ())
        return tuple(f for f in self.signal_fields if f.name not in video_only)

    @property
    def scores(self) -> tuple[str, ...]:
        """:attr:`score_columns` (a run that did not record them has those of the version
        before the record existed)."""
        return tuple(self.score_columns or schema.LEGACY_SCORE_COLUMNS)

    @property
    def tier_names(self) -> list[str]:
        """The run's tiers, loosest first (from the resolved config)."""
        tiers = self.config.get("tiers")
        if not isinstance(tiers, list) or not all(
            isinstance(t, Mapping) and isinstance(t.get("name"), str) for t in tiers
        ):
            raise ManifestError("records no list of named tiers", ("config", "tiers"))
        return [t["name"] for t in tiers]

    def tier_media(self, tier: str) -> str:
        """``video`` or ``image``: what ``tier`` holds (``video`` for a run before images)."""
        for t in self.config.get("tiers") or []:
            if isinstance(t, Mapping) and t.get("name") == tier:
                return t.get("media") or "video"
        return "video"

    def stage(self, name: str) -> FunnelStage:
        """The funnel entry of a stage; an empty one when the run did not record it."""
        return self.funnel.get(name) or FunnelStage()

    @property
    def thresholds(self) -> dict[str, dict[str, float]]:
        """Each tier's resolved gate thresholds, as the tier stage recorded them."""
        return self.stage("tiers").get("thresholds") or {}

    def percentile_gates(self, tier: str) -> dict[str, str]:
        """The gates of ``tier`` configured as a percentile (``p30``), by key: their
        :attr:`thresholds` are the values those resolved to in this run."""
        for t in self.config.get("tiers") or []:
            if isinstance(t, Mapping) and t.get("name") == tier:
                gates = t.get("gates") or {}
                return {k: v for k, v in gates.items() if isinstance(v, str)}
        return {}

    @property
    def embedding_dim(self) -> int | None:
        """The configured embedding width (``None`` when the config does not say)."""
        embed = self.config.get("embed")
        return embed.get("dim") if isinstance(embed, Mapping) else None

    @classmethod
    def read(cls, output: Store | str | os.PathLike) -> Manifest:
        """The manifest of an output folder (local or a URI); an ``InspectError`` that says
        what is wrong when there is none or it cannot be read."""
        store = open_output(output)
        where = store.display(FILE)
        try:
            found = store.is_dir() and store.is_file(FILE)
        except OSError as e:  # an object store that refuses the listing, ...
            raise InspectError(f"cannot read {store}: {e}") from e
        if not found:
            if not store.is_dir():
                raise InspectError(f"{store} is not a folder")
            raise InspectError(f"{store} holds no {FILE}: not a finished curate run")
        try:
            data = json.loads(store.read_bytes(FILE))
        except (OSError, ValueError) as e:
            raise InspectError(f"cannot read {where}: {e}") from e
        try:
            manifest = cls.from_json_dict(data)
            manifest.tier_names  # noqa: B018 (every reader needs them: check once, here)
        except ManifestError as e:
            raise InspectError(f"cannot read {where}: {e}") from e
        return manifest

    def write(self, store: Store) -> None:
        """Write ``manifest.json`` into ``store`` (atomically, as every store write)."""
        store.write_json(FILE, self.to_json_dict())
