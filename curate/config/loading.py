"""Reading a config: a YAML file (or the defaults), then ``--set KEY=VALUE`` overrides, then
validation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from curate.config import ConfigError
from curate.config.errors import format_errors
from curate.config.sections import CurateConfig


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
    if "media" not in data:
        # Derived from the tiers unless given: re-derived from the tiers as overridden.
        merged.pop("media")
    for text in overrides:
        apply_override(merged, *parse_override(text))
    return _validate(merged)


def _validate(data: Any) -> CurateConfig:
    try:
        return CurateConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_errors(e)) from None
