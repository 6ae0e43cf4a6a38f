"""What every captioner backend is: :class:`Captioner` (``caption(clips)`` returns one
:class:`CaptionOutcome` per clip, never raising for one bad clip), and the :class:`Secret` that
carries an API key to the caption actors."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from curate.caption.structured import ClipInfo


@dataclass
class CaptionOutcome:
    """A captioner's answer for one clip: text fields, or the error that stopped it."""

    fields: dict[str, str | None] | None = None
    error: str | None = None
    note: str | None = None


class Captioner(ABC):
    """Loaded once per caption actor; ``caption`` must not raise for one bad clip."""

    name: str

    @abstractmethod
    def caption(self, clips: list[ClipInfo]) -> list[CaptionOutcome]:
        """One outcome per clip, in order."""


class Secret:
    """An API key on its way to the caption actors: never shown by ``repr`` or ``str``."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__
