"""The config reference: every key of the config with its type, default and description, read
from the models themselves (``curate config``), so a new signal's block and gates appear in it
without an edit here."""

from __future__ import annotations

import json
import types
from collections.abc import Iterator
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from curate.config.sections import CurateConfig
from curate.gates import Percentile


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _members(annotation: Any) -> tuple[Any, ...]:
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) in (Union, types.UnionType):
        return tuple(m for a in get_args(annotation) for m in _members(a))
    return (annotation,)


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
        (member,) = _members(alternative)
        if member is type(None):
            words.append("null")
        elif get_origin(member) is Literal:
            words.append("one of: " + ", ".join(map(str, get_args(member))))
        else:
            name = getattr(get_origin(member) or member, "__name__", str(member))
            words.append({"float": "number", "int": "integer", "str": "string"}.get(name, name))
    return " | ".join(dict.fromkeys(words))


def _default_text(field: Any) -> str:
    if field.default_factory is not None:
        value = field.default_factory()
    elif field.default is PydanticUndefined:
        return "required"
    else:
        value = field.default
    if isinstance(value, BaseModel):
        return ""
    return json.dumps(value, default=str)


def entries(model: type[BaseModel] = CurateConfig, prefix: str = "") -> Iterator[tuple[str, ...]]:
    """``(key, type, default, description)`` of every leaf key under ``model``, depth first in
    declaration order; list items are ``key[]``, a captioner's keys are listed per backend."""
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        annotation = field.annotation
        if get_origin(annotation) is list:
            item = get_args(annotation)[0]
            branches = [m for m in _members(item) if _is_model(m)]
            for branch in branches:
                tag = branch.model_fields.get("backend")
                label = f" ({'/'.join(get_args(tag.annotation))})" if len(branches) > 1 else ""
                yield from entries(branch, f"{key}[]{label}.")
            if branches:
                continue
        plain = [m for m in _members(annotation) if m is not type(None)]
        if len(plain) == 1 and _is_model(plain[0]):
            yield from entries(plain[0], f"{key}.")
            continue
        yield key, type_text(annotation), _default_text(field), field.description or ""


def reference_text() -> str:
    """The reference as text: one key per line, its type and default, its description under
    it."""
    lines = []
    for key, kind, default, description in entries():
        shown = f"  (default {default})" if default else ""
        lines.append(f"{key}: {kind}{shown}")
        if description:
            lines.append(f"    {description}")
    return "\n".join(lines) + "\n"
