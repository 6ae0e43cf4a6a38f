"""Validation errors as one line per offending key, by its dotted path as written in the YAML
(``analyze.flow.fps: Input should be greater than 0``), with the closest known key for a
misspelt one."""

from __future__ import annotations

import types
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from curate.config.sections import CurateConfig
from curate.gates import Percentile
from curate.hints import did_you_mean


def members(annotation: Any) -> tuple[Any, ...]:
    """The alternatives of a union annotation (``annotation`` alone when it is none)."""
    if get_origin(annotation) in (Union, types.UnionType):
        return get_args(annotation)
    return (annotation,)


def plain(annotation: Any) -> Any:
    """``annotation`` without ``Annotated`` metadata and without an optional ``None``."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    alternatives = [m for m in members(annotation) if m is not type(None)]
    return alternatives[0] if len(alternatives) == 1 else annotation


def is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _branch(union: Any, tag: str) -> type[BaseModel] | None:
    """The model of a discriminated ``union`` whose discriminator value is ``tag`` (pydantic
    puts it in error locations: a captioner's ``openai``)."""
    for member in members(union):
        if is_model(member) and any(
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
        node = plain(node)
        if is_model(node):
            holder, field = node, node.model_fields.get(str(part))
            node = field.annotation if field else None
        elif isinstance(part, int) and get_origin(node) is list:
            holder, node = None, get_args(node)[0]
        elif get_origin(node) is dict:
            holder, node = None, get_args(node)[1]
        elif isinstance(part, str) and len(members(node)) > 1:
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
        keys = list(holder.model_fields)
        hint = did_you_mean(str(key), keys)
        return f"unknown key{hint}" if hint else f"unknown key; expected one of {', '.join(keys)}"
    if Percentile in members(annotation):
        value = error["input"]
        if not _is_number(value):
            return f"expected a number or {PERCENTILE_HINT}, got {value!r}"
        if not error["type"].startswith("string_"):
            return f"{error['msg']}, got {value!r} (or {PERCENTILE_HINT})"
        return ""  # a number is no string: the numeric alternative says what is wrong
    return error["msg"]


def format_errors(err: ValidationError) -> str:
    lines: dict[str, None] = {}  # an ordered set: a gate's alternatives make one line
    for e in err.errors():
        path, annotation, holder = _locate(e["loc"])
        problem = _problem(e, annotation, holder, path[-1] if path else "")
        if problem:
            lines[f"  {'.'.join(map(str, path)) or '<root>'}: {problem}"] = None
    return "invalid configuration:\n" + "\n".join(lines)
