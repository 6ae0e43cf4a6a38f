"""Watermarks and logos laid over real footage, as stock sites and broadcasters lay them, for the
overlay evaluation and tests: each :class:`Overlay` draws itself over a clip's RGB frames
(alpha-blended, so the picture shows through a semi-transparent mark) and says where it is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

Frames = list[np.ndarray]
Box = tuple[float, float, float, float]
"""``x0, y0, x1, y1`` as shares of the frame's width and height."""

FONT = cv2.FONT_HERSHEY_DUPLEX


@dataclass(frozen=True)
class Overlay:
    name: str
    kind: str
    """What ``watermark_kind`` should say: ``text``, ``logo`` or ``tiled``."""
    draw: Callable[[Frames, float], tuple[Frames, Box]]
    """The frames with the mark laid over them (frame rate given), and the mark's box."""


def blend(frame: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int], alpha: float):
    """``frame`` with ``colour`` laid over it where ``mask`` (0-255) is set, at ``alpha``."""
    a = (mask.astype(np.float32) / 255.0 * alpha)[..., None]
    return (frame * (1 - a) + np.asarray(colour, np.float32) * a).astype(np.uint8)


def text_mask(shape: tuple[int, int], text: str, height: float, centre: tuple[float, float]):
    """A mask of ``text`` whose capitals are ``height`` of the frame high, centred at
    ``centre`` (shares of width and height), and its box."""
    h, w = shape
    scale = height * h / 22.0  # FONT_HERSHEY_DUPLEX capitals are ~22 px at scale 1
    thick = max(1, round(scale * 1.6))
    (tw, th), base = cv2.getTextSize(text, FONT, scale, thick)
    x, y = int(centre[0] * w - tw / 2), int(centre[1] * h + th / 2)
    mask = np.zeros((h, w), np.uint8)
    cv2.putText(mask, text, (x, y), FONT, scale, 255, thick, cv2.LINE_AA)
    box = (x / w, (y - th) / h, (x + tw) / w, (y + base) / h)
    return mask, tuple(float(np.clip(v, 0, 1)) for v in box)


def centred_text(alpha: float, text: str = "stockfootage") -> Overlay:
    """A large stock-site word across the middle of the frame at ``alpha`` opacity."""

    def draw(frames: Frames, fps: float) -> tuple[Frames, Box]:
        mask, box = text_mask(frames[0].shape[:2], text, 0.11, (0.5, 0.5))
        return [blend(f, mask, (255, 255, 255), alpha) for f in frames], box

    return Overlay(f"text centred {round(alpha * 100)}%", "text", draw)


def tiled_text(alpha: float, text: str = "preview") -> Overlay:
    """A stock-site word repeated diagonally over the whole frame at ``alpha`` opacity."""

    def draw(frames: Frames, fps: float) -> tuple[Frames, Box]:
        h, w = frames[0].shape[:2]
        side = int(np.hypot(h, w)) + 2
        canvas = np.zeros((side, side), np.uint8)
        step_y = max(20, int(0.16 * h))
        for row, y in enumerate(range(0, side, step_y)):
            for x in range(-(row % 2) * w // 6, side, w // 3):
                scale = 0.045 * h / 22.0 * 1.4
                cv2.putText(canvas, text, (x, y), FONT, scale, 255, max(1, round(scale * 1.5)))
        turn = cv2.getRotationMatrix2D((side / 2, side / 2), 25, 1.0)
        canvas = cv2.warpAffine(canvas, turn, (side, side))
        mask = canvas[(side - h) // 2 : (side - h) // 2 + h, (side - w) // 2 : (side - w) // 2 + w]
        return [blend(f, mask, (255, 255, 255), alpha) for f in frames], (0.0, 0.0, 1.0, 1.0)

    return Overlay(f"tiled text {round(alpha * 100)}%", "tiled", draw)


def corner_logo(alpha: float) -> Overlay:
    """A broadcaster-style logo in the top-right corner: a red disc with a white numeral and
    outlined letters beside it."""

    def draw(frames: Frames, fps: float) -> tuple[Frames, Box]:
        h, w = frames[0].shape[:2]
        r = max(6, int(0.055 * h))
        cx, cy = int(w - 0.05 * w - 3.4 * r), int(0.06 * h + r)
        disc = np.zeros((h, w), np.uint8)
        cv2.circle(disc, (cx, cy), r, 255, -1, cv2.LINE_AA)
        inner, _ = text_mask((h, w), "9", 1.0 * r / h, (cx / w, cy / h))
        letters, _ = text_mask((h, w), "TV", 1.1 * r / h, ((cx + 2.5 * r) / w, cy / h))
        outline = cv2.dilate(letters, np.ones((3, 3), np.uint8), iterations=max(1, r // 8))
        box = ((cx - r) / w, (cy - r) / h, (cx + 3.8 * r) / w, (cy + r) / h)
        out = []
        for f in frames:
            f = blend(f, disc, (220, 40, 40), alpha)
            f = blend(f, inner, (255, 255, 255), alpha)
            f = blend(f, outline, (20, 20, 20), alpha)
            out.append(blend(f, letters, (255, 255, 255), alpha))
        return out, box

    return Overlay(f"corner logo {round(alpha * 100)}%", "logo", draw)


def corner_url(alpha: float = 0.8, text: str = "www.clipvault.com") -> Overlay:
    """A small URL in the bottom-right corner (capitals 2.5 % of the frame high)."""

    def draw(frames: Frames, fps: float) -> tuple[Frames, Box]:
        h, w = frames[0].shape[:2]
        mask, box = text_mask((h, w), text, 0.025, (0.5, 0.5))
        bw = box[2] - box[0]
        shift = np.float32([[1, 0, (0.97 - bw / 2 - 0.5) * w], [0, 1, 0.43 * h]])
        mask = cv2.warpAffine(mask, shift, (w, h))
        dx, dy = 0.97 - bw / 2 - 0.5, 0.43
        box = (box[0] + dx, box[1] + dy, box[2] + dx, box[3] + dy)
        return [blend(f, mask, (255, 255, 255), alpha) for f in frames], box

    return Overlay("small URL", "text", draw)


def bouncing_text(alpha: float = 0.35, text: str = "stockclips") -> Overlay:
    """A stock-site word that drifts across the frame and bounces off its edges (a quarter of
    the frame's width per second)."""

    def draw(frames: Frames, fps: float) -> tuple[Frames, Box]:
        h, w = frames[0].shape[:2]
        mask, box = text_mask((h, w), text, 0.08, (0.5, 0.5))
        bw, bh = box[2] - box[0], box[3] - box[1]
        pos, vel = np.array([0.2, 0.3]), np.array([0.25, 0.15]) / fps
        out = []
        lo, hi = np.array([bw / 2, bh / 2]), np.array([1 - bw / 2, 1 - bh / 2])
        for f in frames:
            pos = pos + vel
            vel = np.where((pos < lo) | (pos > hi), -vel, vel)
            pos = np.clip(pos, lo, hi)
            shift = np.float32([[1, 0, (pos[0] - 0.5) * w], [0, 1, (pos[1] - 0.5) * h]])
            out.append(blend(f, cv2.warpAffine(mask, shift, (w, h)), (255, 255, 255), alpha))
        return out, (0.0, 0.0, 1.0, 1.0)

    return Overlay("bouncing text", "text", draw)


def app_mark(alpha: float = 0.7, lines: tuple[str, str] = ("TikTok", "@clipmaker")) -> Overlay:
    """A short-video app's mark: its name over the uploader's handle, white with a dark shadow,
    in the top-left corner for the first half of the clip and the bottom-right one after, as
    the app moves it."""

    def draw(frames: Frames, fps: float) -> tuple[Frames, Box]:
        h, w = frames[0].shape[:2]
        corners = []
        for top, y in ((True, 0.08), (False, 0.86)):
            masks = [text_mask((h, w), t, 0.035, (0.5, y + 0.06 * k)) for k, t in enumerate(lines)]
            mask = np.maximum(masks[0][0], masks[1][0])
            x0, x1 = min(b[0] for _, b in masks), max(b[2] for _, b in masks)
            dx = (0.03 - x0 if top else 0.97 - x1) * w  # against the left or the right edge
            mask = cv2.warpAffine(mask, np.float32([[1, 0, dx], [0, 1, 0]]), (w, h))
            shadow = cv2.warpAffine(mask, np.float32([[1, 0, 2], [0, 1, 2]]), (w, h))
            corners.append((mask, shadow))
        out = []
        for n, f in enumerate(frames):
            mask, shadow = corners[n * 2 // len(frames)]
            out.append(blend(blend(f, shadow, (0, 0, 0), alpha), mask, (255, 255, 255), alpha))
        return out, (0.0, 0.0, 1.0, 1.0)

    return Overlay("app mark", "text", draw)


OVERLAYS: tuple[Overlay, ...] = (
    centred_text(0.2),
    centred_text(0.4),
    tiled_text(0.25),
    corner_logo(1.0),
    corner_logo(0.5),
    corner_url(),
    bouncing_text(),
    app_mark(),
)
"""Every watermark the overlay evaluation lays over real footage."""
