"""Model files: the one a config key points at, or the one an installed package ships."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from curate.config import ConfigError


def model_file(configured: str | None, key: str, package: str, name: str, install: str) -> Path:
    """``configured`` (the value of ``key``) when set, else ``name`` inside ``package``.
    Raises :class:`ConfigError` naming ``key``, or saying ``install`` when the package is
    missing, so a run stops at start-up instead of on its first source."""
    if configured is not None:
        path = Path(configured).expanduser()
        if not path.is_file():
            raise ConfigError(f"{key}: no file at {path}")
        return path
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(install)
    path = Path(next(iter(spec.submodule_search_locations))) / name
    if not path.is_file():
        raise ConfigError(
            f"{key}: the {package} package has no {name} (reinstall it or point this key at "
            "the file)"
        )
    return path
