"""``--where`` filters: ``column OP value`` clauses joined by ``and``, parsed without ``eval``
into a ``pyarrow.compute`` expression that ``pyarrow.dataset`` pushes down to the scan.

Examples: ``sharpness < 50``, ``orientation = 'portrait' and duration_s >= 8``,
``caption is null``.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc

from curate.hints import did_you_mean

OPERATORS: dict[str, Callable[[pc.Expression, object], pc.Expression]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "=": operator.eq,
    "==": operator.eq,
    "!=": operator.ne,
}
"""Comparison operators a clause may use."""

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<op><=|>=|!=|==|=|<|>)
      | (?P<str>'[^']*'|"[^"]*")
      | (?P<num>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
      | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)


class WhereError(ValueError):
    """The filter text cannot be parsed or does not fit the table's columns."""


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise WhereError(f"--where: cannot parse at {text[pos:].strip()!r}")
        kind = m.lastgroup
        tokens.append((kind, m.group(kind)))
        pos = m.end()
    return tokens


def _field(name: str, schema: pa.Schema) -> pa.Field:
    index = schema.get_field_index(name)
    if index >= 0:
        return schema.field(index)
    hint = did_you_mean(name, schema.names)
    raise WhereError(f"--where: unknown column {name!r}{hint}; columns: {', '.join(schema.names)}")


def _value(field: pa.Field, kind: str, text: str) -> pa.Scalar:
    t = field.type
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        if kind != "num":
            raise WhereError(f"--where: {field.name} is numeric, got {text!r}")
        number = float(text)
        return pa.scalar(int(number) if pa.types.is_integer(t) and number.is_integer() else number)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        # A bare word is taken as a string, so `orientation = portrait` works unquoted.
        return pa.scalar(text[1:-1] if kind == "str" else text, pa.string())
    raise WhereError(f"--where: cannot compare column {field.name} of type {t}")


def parse_where(text: str, schema: pa.Schema) -> pc.Expression:
    """The conjunction of the clauses in ``text`` as a dataset filter over ``schema``."""
    tokens = _tokens(text)
    if not tokens:
        raise WhereError("--where is empty")
    clauses: list[pc.Expression] = []
    i = 0
    while True:
        if i >= len(tokens) or tokens[i][0] != "word":
            raise WhereError(f"--where: expected a column name in {text!r}")
        field = _field(tokens[i][1], schema)
        column = pc.field(field.name)
        rest = [v.lower() if k == "word" else v for k, v in tokens[i + 1 : i + 4]]
        if rest[:3] == ["is", "not", "null"]:
            clauses.append(column.is_valid())
            i += 4
        elif rest[:2] == ["is", "null"]:
            clauses.append(column.is_null())
            i += 3
        elif (
            len(rest) >= 2
            and tokens[i + 1][0] == "op"
            and tokens[i + 2][0] in ("num", "str", "word")
        ):
            value = _value(field, tokens[i + 2][0], tokens[i + 2][1])
            clauses.append(OPERATORS[tokens[i + 1][1]](column, value))
            i += 3
        else:
            raise WhereError(
                f"--where: expected `{field.name} OP value` (OP one of "
                f"{' '.join(OPERATORS)}) or `{field.name} is [not] null` in {text!r}"
            )
        if i == len(tokens):
            break
        if tokens[i][0] != "word" or tokens[i][1].lower() != "and":
            raise WhereError(f"--where: clauses must be joined by `and` in {text!r}")
        i += 1
    expression = clauses[0]
    for clause in clauses[1:]:
        expression = expression & clause
    return expression
