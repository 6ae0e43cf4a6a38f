"""The config reference: every key of the config with its type, default and description, read
from the models themselves (``curate config``), so a new signal's block and gates appear in it
without an edit here."""

from __future__ import annotations

import json
import types
from collections.abc import Iterator
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from curate.config.errors import is_model, members, plain
from curate.config.sections import CurateConfig
from curate.gates import Percentile


def type_text(annotation: Any) -> str:
    """A key's type in words: ``number | percentile | null``, ``one of: a, b``."""
    alternatives = (
        get_args(annotation)
        if get_origin(annotation) in (Union, types.UnionType)
        else (annotation,)
    )
    words = []
    for alternative in alternatives:
        if alternative == Percentile:
            words.append("percentile")
            continue
        member = plain(alternative)
        if member is type(None):
            words.append("null")
        elif get_origin(member) is Literal:
            words.append("one of: " + ", ".join(map(str, get_args(member))))
        else:
            name = getattr(get_origin(member) or member, "__name__", str(member))
            words.append({"float": "number", "int": "integer", "str": "string"}.get(name, name))
    return " | ".join(dict.fromkeys(words))


def _default(field: Any, holder: BaseModel | None, name: str) -> Any:
    """A key's default: its value in the enclosing block's default (``ray.probe`` defaults
    to 0.1 CPUs where ``StageResources`` says 0.5), else the field's own."""
    if holder is not None:
        return getattr(holder, name)
    if field.default_factory is not None:
        return field.default_factory()
    return field.default


def _default_text(value: Any) -> str:
    if value is PydanticUndefined:
        return "required"
    return json.dumps(value, default=str)


def entries(
    model: type[BaseModel] = CurateConfig, prefix: str = "", holder: BaseModel | None = None
) -> Iterator[tuple[str, ...]]:
    """``(key, type, default, description)`` of every leaf key under ``model`` (whose default
    instance is ``holder``, where there is one), depth first in declaration order; list items
    are ``key[]``, a captioner's keys are listed per backend."""
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        annotation = field.annotation
        default = _default(field, holder, name)
        if get_origin(annotation) is list:
            branches = [m for m in members(plain(get_args(annotation)[0])) if is_model(m)]
            for branch in branches:
                tag = branch.model_fields.get("backend")
                label = f" ({'/'.join(get_args(tag.annotation))})" if len(branches) > 1 else ""
                yield from entries(branch, f"{key}[]{label}.")
            if branches:
                continue
        if is_model(plain(annotation)):
            block = default if isinstance(default, BaseModel) else None
            if default is None:  # an optional block, off unless given
                yield key, "block | null", "null", field.description or ""
            yield from entries(plain(annotation), f"{key}.", block)
            continue
        yield key, type_text(annotation), _default_text(default), field.description or ""


def reference_text() -> str:
    """The reference as text: one key per line, its type and default, its description under
    it."""
    lines = []
    for key, kind, default, description in entries():
        shown = f"  (default {default})"
        lines.append(f"{key}: {kind}{shown}")
        if description:
            lines.append(f"    {description}")
    return "\n".join(lines) + "\n"
