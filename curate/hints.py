"""Wording shared by error messages: one way to suggest the name a user probably meant, for
unknown config keys and unknown columns alike. Standard library only (``curate inspect`` runs
where only pyarrow is installed)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the choice closest to a misspelt ``name``, or ``""`` when
    none is close: one wording for unknown columns and unknown config keys."""
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
