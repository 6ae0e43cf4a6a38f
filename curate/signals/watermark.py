"""Watermarks and logos: what stays put on screen while the picture under it changes.

A semi-transparent watermark adds ``alpha * W`` to every frame, so the median of a pixel's
gradient over frames with different pictures is ``alpha * grad W`` (the estimator of Dekel et
al., "On the Effectiveness of Visible Watermarks", CVPR 2017): scene edges come and go, the
mark's stay. The signal keeps frames at ``analyze.watermark.fps`` at half the analysis size
and judges the whole source at once (up to :data:`JUDGED` frames spread over it: a logo
survives a cut, the scenery does not):

- an *edge* is a pixel whose gradients point along their median beyond chance (a t test over
  the frames; in busy moving texture the median is sizeable by luck, its spread as large),
  and not on a long line (bar edges, horizons, kerbs: one orientation where marks turn);
- in each frame, a pixel's picture *changed* where what differs around it from the median
  frame (the background: what moves over it does not reach the median) is more than a small
  shift of the scene explains, past the noise floor;
- an edge *persists* when it is there in nearly every frame where its picture changed (at
  least :data:`MIN_COVERED` of them: an edge beside something moving persists by chance in a
  few), and is *hidden* in those where it is gone (either sign: an opaque mark's outline
  flips where the picture behind turns brighter than the mark).

Persisting edges grouped into dense regions with few hidden edges are marks, where the picture
under them keeps changing (:data:`MIN_NEW`): a scene sitting in a few lasting states (things
moved and left, a slideshow, a few camera angles cut between) differs from the median the same
way sample after sample, and its edges persist over a few pictures by chance; and where their
edges stay put when the camera drifts (:func:`still_edges`): the broad edges of a slow
pan's or a shaken camera's scenery persist by chance too, but go where the picture goes. A
still background is not a mark: with nothing moving over it there is no evidence either way,
and where something moves over it its edges are hidden. A mark that lets nothing through
somewhere (opaque) and sits centred across the frame is a title or a subtitle, text that the
``text`` signal measures, not a watermark. Each clip keeps the marks whose edges show in its
frames: ``watermark_score`` (0-1, from the edge pixels of its marks), ``watermark_box`` (the
main mark and those of similar size, shares of the frame) and ``watermark_kind`` (``logo``,
``text`` for a line-shaped mark, ``tiled`` for marks spread over the frame, ``none``). The
detect stage raises the score where OCR reads a web address, a handle, a copyright sign, a
stock site's word, a video app's name or a broadcaster's logo in a corner (its kind then
``logo``) (:func:`read_marks`; in the clip's frames, or before and after it,
:func:`vouching`; or in the stack of the source's frames and its corners,
:func:`stacked_marks`), and clears it where the mark lies in
lines OCR reads as the clip's subtitles (:func:`in_subtitles`: the picture changed behind some
of their words). Tier gate ``max_watermark`` (``watermarked``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import pyarrow as pa
from pydantic import Field

from curate.config import SignalConfig
from curate.gates import Gate, at_most, score
from curate.media.video import DecodedFrame
from curate.signals.base import ClipWindow, FrameSignal, samples_in
from curate.signals.drift import DriftFields
from curate.signals.text import TextDetector, TextLine, read_lines

WATERMARK_BOX = pa.struct(
    [
        pa.field("x0", pa.float32()),
        pa.field("y0", pa.float32()),
        pa.field("x1", pa.float32()),
        pa.field("y1", pa.float32()),
    ]
)
"""A region as shares of the frame's width and height."""

MIN_EDGE = 2.5
"""Smallest median gradient (gray levels per pixel) that counts as a mark's edge: a 20 %
white mark over mid-gray content has edges of about 6."""

MIN_T = 4.0
"""t statistic of a pixel's gradients along their median direction that an edge needs (one
pixel in 30 000 of random texture reaches it by chance)."""

AGREES = 0.5
"""A sample shows the median edge where its gradient, projected on the median's direction,
is at least this share of the median's length."""

CHANGE = 5.0
"""Standard deviation (gray levels) of the part of a neighbourhood's difference from the
median frame that no small shift explains, above which the picture there has changed."""

MIN_COVERED = 5
"""Samples in which a pixel's picture must have changed before it can be a mark's: an edge
next to something moving persists by chance in a few of them."""

LOCAL = 3
"""Side of the neighbourhood compared, pixels of the half-size frames kept."""

NOISE_PERCENTILE = 10
"""Percentile of the unexplained variances taken as the noise floor: low, because where the
camera moves nearly every pixel changes."""

NOISE_FACTOR = 3.0
"""Change must exceed the noise floor's standard deviation this many times."""

MIN_VARIED = 5.0
"""Standard deviation (gray levels) of a neighbourhood's mean over the samples where its
picture changed, below which those samples show one picture, not different ones."""

VARIED_WINDOW = 5
"""Side of that neighbourhood, pixels of the half-size frames kept."""

MIN_SAMPLES = 3
"""Samples a source needs before it is judged at all."""

MIN_PERSISTENCE = 0.8
"""Share of a pixel's changed samples that must still show its median edge."""

MIN_NEW = 0.5
"""Share of a region's changed pixel-samples that must show a picture not seen there before
(:func:`new_pictures`): the picture under a mark keeps changing, while a still scene that sits
in another state for a while (a bottle moved and left, the median blending its places; a
slideshow's picture; one of a few camera angles cut between) differs from the median the same
way sample after sample."""

NEW_PIXELS = 100
"""Edge pixels of a region, spread over it, on which :data:`MIN_NEW` is judged at most."""

DRIFT_GAPS = (1, 2, 4, 8)
"""Samples apart at which a sample is compared with a later one for the camera's drift
(:func:`still_edges`): the nearest that has drifted :data:`MIN_DRIFT` is taken, so a slow pan
and a shake are both measured."""

DRIFT_STARTS = 32
"""Samples, spread over the source, paired with a later one: enough pairs, at a bounded cost
(each pair's drift is nine phase correlations)."""

MIN_DRIFT = 2.0
"""Drift of the picture between two samples, pixels of the half-size frames, from which edges
are asked whether they went with it: over less, a mark's edges and the scenery's agree in
place alike."""

MAX_DRIFT = 6.0
"""Drift between neighbouring samples, pixels of the half-size frames, past which a pair of
samples is not asked: the scenery's edges leave their pixels before the next sample and cannot
persist by chance, so what persists there stays put (a semi-transparent mark over a fast pan,
whose busy scenery can outweigh its edges pair by pair)."""

DRIFT_BLOCK = 8
"""Side, pixels of the half-size frames, of the blocks in which a region's edge pixels are asked
whether they go with the picture (:func:`still_edges`): the letters of a mark joined to the
scenery beside it keep their own pixels, and under a zoom each block has its own drift."""

MIN_PAIRS = 3
"""Pairs of drifting samples a region's pixels need, on average, before it can be taken for
scenery, and a block of it before it can be kept as a mark's."""

STAYS = 0.25
"""Largest share of its pairs in which a block of a region taken for scenery may have gone
with the picture and still be kept: the letters of a mark joined to the scenery beside it
stay put in nearly every pair."""

MAX_MOVED = 0.5
"""Largest share of a region's drifting sample pairs (:func:`still_edges`, pooled over its
blocks) in which its edges agree better with the later sample where the picture drifted to
than where they were: a mark stays put when the camera drifts, the scenery goes with it (a
slow pan's broad edges pass a pixel one after another, same sign, and persist by chance)."""

JOIN = (3, 7)
"""Rows and columns over which persistent edge pixels are joined into one region: wider than
tall, so that the letters and words of a line join."""

MIN_REGION = 8
"""Smallest region, in mark pixels."""

MIN_DENSITY = 0.1
"""Share of a region's area its persistent edge pixels must fill: a mark's strokes are dense,
pixels of a moving scene that persisted by chance are scattered."""

MIN_EVIDENCE = 40
"""Changed samples, summed over a region's edge pixels, in which its edges were seen."""

MAX_HIDDEN = 0.4
"""Largest share of a region's changed pixel-samples in which its edges were gone: a mark's
edges stay, while a still scene next to something moving has some that stay and many that
are hidden."""

MAX_COHERENCE = 0.8
"""Orientation coherence (0: every direction, 1: one) of the median edges around a pixel
above which it lies on a line, not a mark."""

LINE_WINDOW = 9
"""Side of the neighbourhood whose coherence decides, pixels of the half-size frames kept
(letters of a mark turn within it, a line does not)."""

OPAQUE = 0.25
"""A region whose least-varying pixels vary less than this share of its surroundings is
opaque (a 40 % mark lets 0.6 through)."""

CENTRE = (0.3, 0.7)
"""Horizontal band, as shares of the width, in which the centre of an opaque mark makes it a
title or a subtitle (text, measured by the ``text`` signal), not a watermark."""

TILED_SPAN = 0.6
"""Share of the frame's width and height that four or more marks must span to be one tiled
watermark."""

BOX_SHARE = 0.25
"""Marks weighing this share of the main one's are inside ``watermark_box`` too."""

SATURATION = 300.0
"""Mark pixels (counted as at the 256-px analysis size) at which the score reaches 1 - 1/e."""

MAX_SAMPLES = 720
"""Samples a source keeps at most (6 minutes at 2 fps): past it every other one is dropped
and the sampling interval doubles, so memory stays bounded on long sources."""

JUDGED = 96
"""Samples of a source judged at most (spread over it): the more frames with different
pictures under a mark, the surer the evidence."""

PRESENT = 0.6
"""Mean share of a mark's edge pixels that must be there in a clip's samples for the clip to
carry it."""


class WatermarkConfig(SignalConfig):
    """Watermark and logo detection (``curate/signals/watermark.py``)."""

    fps: float = Field(2.0, gt=0, description="Frames per second kept for the overlay test.")


@dataclass
class Mark:
    """A region of persistent edges over changing content."""

    pixels: int
    box: tuple[float, float, float, float]
    kind: str
    region: np.ndarray
    """Its persistent edge pixels."""


def normalised(frames: np.ndarray) -> np.ndarray:
    """Frames as float32 with each one's mean and contrast matched to the median frame's, so
    that exposure changes and fades are not content changes."""
    f = frames.astype(np.float32)
    means = f.mean(axis=(1, 2), keepdims=True)
    stds = f.std(axis=(1, 2), keepdims=True) + 1.0
    return (f - means) * (np.median(stds) / stds) + np.median(means)


def gradients(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Horizontal and vertical gradients of each frame (gray levels per pixel)."""
    gx = np.empty_like(frames)
    gy = np.empty_like(frames)
    for i, f in enumerate(frames):
        f = cv2.GaussianBlur(f, (3, 3), 0)
        gx[i] = cv2.Sobel(f, cv2.CV_32F, 1, 0, ksize=3) / 8
        gy[i] = cv2.Sobel(f, cv2.CV_32F, 0, 1, ksize=3) / 8
    return gx, gy


@dataclass
class OverlayMap:
    """Per-pixel evidence of an overlay over a set of samples."""

    seed: np.ndarray
    """Edge pixels that persisted in every sample (or nearly) where the picture changed."""
    shown: np.ndarray
    """Per edge pixel, changed samples in which its median edge was there (0 elsewhere)."""
    hidden: np.ndarray
    """Per edge pixel, changed samples in which its median edge was gone, either sign."""
    frames: np.ndarray
    """The samples, normalised (:func:`normalised`)."""
    changed: np.ndarray
    """Per sample and pixel, whether the picture there changed."""
    threshold: float
    """Unexplained variance over a neighbourhood past which a picture has changed."""
    spread: np.ndarray
    """Temporal spread of each pixel's value."""
    seen: np.ndarray
    """Per sample and pixel, whether the pixel's median edge is there."""
    gx: np.ndarray
    gy: np.ndarray
    """Per sample, the gradients of :attr:`frames`."""


def unexplained_change(frames: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Per frame and pixel, the variance of the frame's difference from ``background`` over a
    :data:`LOCAL`-pixel neighbourhood that a small shift of the background does not explain (a
    least-squares fit on its two gradients): jitter and slow drift of the scene leave little,
    different content under a mark leaves all of it."""
    k = (LOCAL, LOCAL)
    ax = cv2.Sobel(background, cv2.CV_32F, 1, 0, ksize=3) / 8
    ay = cv2.Sobel(background, cv2.CV_32F, 0, 1, ksize=3) / 8
    ex, ey = cv2.blur(ax, k), cv2.blur(ay, k)
    sxx = cv2.blur(ax * ax, k) - ex * ex + 1e-2
    syy = cv2.blur(ay * ay, k) - ey * ey + 1e-2
    sxy = cv2.blur(ax * ay, k) - ex * ey
    det = sxx * syy - sxy * sxy
    out = np.empty_like(frames)
    for n, f in enumerate(frames):
        r = f - background
        er = cv2.blur(r, k)
        cx = cv2.blur(r * ax, k) - er * ex
        cy = cv2.blur(r * ay, k) - er * ey
        total = cv2.blur(r * r, k) - er * er
        explained = (cx * cx * syy - 2 * cx * cy * sxy + cy * cy * sxx) / det
        out[n] = total - np.clip(explained, 0, total)
    return out


def overlay_map(frames: np.ndarray) -> OverlayMap:
    """The overlay evidence of ``frames`` (``(n, h, w)`` uint8 samples of one window)."""
    f = normalised(frames)
    gx, gy = gradients(f)
    # The median gradient: scene edges come and go, a mark's stay.
    mx, my = np.median(gx, axis=0), np.median(gy, axis=0)
    length2 = mx * mx + my * my
    projection = gx * mx + gy * my
    # The background: the median frame, which passers-by and moving content do not reach.
    background = np.median(f, axis=0)
    residual = unexplained_change(f, background)
    # Sensor noise and compression flicker are no change: the threshold rises with the noise
    # floor of the window (the flattest pixel-samples: noise in a still shot, and in a moving
    # one its plain areas).
    floor = float(np.percentile(residual[:, ::4, ::4], NOISE_PERCENTILE))
    threshold = max(CHANGE**2, NOISE_FACTOR**2 * floor)
    changed = residual > threshold
    # Long lines are left out: the edge of a kerb people walk along, a bar's edge, a horizon
    # or the rays of a zoom persist too, in one orientation, where marks turn every way.
    k = (LINE_WINDOW, LINE_WINDOW)
    jxx, jyy, jxy = (cv2.blur(a * b, k) for a, b in ((mx, mx), (my, my), (mx, my)))
    linear = np.hypot(jxx - jyy, 2 * jxy) > MAX_COHERENCE * (jxx + jyy + 1e-6)
    # The edge must be there beyond chance: in busy moving texture the mean of a pixel's
    # gradients is often sizeable by luck, but their spread is as large (a t statistic).
    along = projection / np.sqrt(np.maximum(length2, 1e-6))
    t = along.mean(axis=0) * np.sqrt(len(f)) / (along.std(axis=0) + 1e-3)
    edge = (length2 >= MIN_EDGE**2) & (t >= MIN_T) & ~linear
    seen = projection >= AGREES * length2
    shown = (seen & changed).sum(axis=0) * edge
    # Unsigned: the outline of an opaque mark flips sign where the picture behind it turns
    # from darker to brighter than the mark; it is still there, not hidden.
    hidden = ((np.abs(projection) < AGREES * length2) & changed).sum(axis=0) * edge
    n_changed = changed.sum(axis=0)
    seed = edge & (n_changed >= MIN_COVERED) & (shown >= MIN_PERSISTENCE * n_changed)
    seed &= varied(f, changed, n_changed)
    return OverlayMap(seed, shown, hidden, f, changed, threshold, frames.std(axis=0), seen, gx, gy)


def new_pictures(frames: np.ndarray, ys: np.ndarray, xs: np.ndarray, threshold: float):
    """Per sample and pixel ``(ys, xs)``, whether the sample shows a picture there not seen
    before: the mean squared difference of its :data:`LOCAL`-pixel neighbourhood from that of
    every earlier new picture there exceeds ``threshold`` (the bound on a change's unexplained
    variance). A picture that sits in a state, or comes back to one (a slideshow, cuts between
    the same camera angles), is new only when it first gets there; one that drifts (a slow pan)
    every few samples."""
    r, (n, h, w) = LOCAL // 2, frames.shape
    rows = [np.clip(ys + d, 0, h - 1) for d in range(-r, r + 1)]
    cols = [np.clip(xs + d, 0, w - 1) for d in range(-r, r + 1)]
    patches = np.stack([frames[:, y, x] for y in rows for x in cols], axis=-1).transpose(1, 0, 2)
    # Every pair of samples at once, (pixel, sample, sample): |a|^2 + |b|^2 - 2 a.b.
    norms = (patches * patches).sum(axis=-1)
    products = patches @ patches.transpose(0, 2, 1)
    close = norms[:, :, None] + norms[:, None, :] - 2 * products <= threshold * patches.shape[-1]
    new = np.ones((n, len(ys)), bool)
    for i in range(1, n):
        new[i] = ~(close[:, i, :i] & new[:i].T).any(axis=1)
    return new


def keeps_changing(evidence: OverlayMap, edges: np.ndarray) -> bool:
    """Whether the picture under a region's edge pixels keeps changing: at least
    :data:`MIN_NEW` of their changed samples (pooled, on up to :data:`NEW_PIXELS` of them spread
    over the region) show a picture not seen there before (:func:`new_pictures`)."""
    ys, xs = np.nonzero(edges)
    picked = np.linspace(0, len(ys) - 1, min(len(ys), NEW_PIXELS)).astype(int)
    ys, xs = ys[picked], xs[picked]
    changed = evidence.changed[:, ys, xs]
    new = new_pictures(evidence.frames, ys, xs, evidence.threshold)
    return bool((new & changed).sum() >= MIN_NEW * changed.sum())


def still_edges(evidence: OverlayMap, edges: np.ndarray, drift: DriftFields) -> np.ndarray:
    """A region's edge pixels, less those that go with the picture when the camera drifts.
    Per block of the region (:data:`DRIFT_BLOCK`), each of up to :data:`DRIFT_STARTS` samples
    is paired with the nearest later one (:data:`DRIFT_GAPS` apart) to which the picture there
    drifted :data:`MIN_DRIFT` or more (``drift``; at most :data:`MAX_DRIFT` a sample), and the
    pair votes "went" where the earlier sample's gradients at the block's edge pixels agree
    better with the later one's where the picture drifted to than in place. Where more than
    :data:`MAX_MOVED` of the region's votes (weighted by pixels, :data:`MIN_PAIRS` a pixel at
    least) went, it is scenery (a pan's, a zoom's, a shaken camera's), and only its blocks that
    clearly stayed put (:data:`STAYS`) are left: a mark's letters joined to the scenery."""
    ys, xs = np.nonzero(edges)
    n, h, w = evidence.gx.shape
    _, block = np.unique((ys // DRIFT_BLOCK) * w + xs // DRIFT_BLOCK, return_inverse=True)
    size = np.bincount(block)
    centres = np.stack([np.bincount(block, xs) / size, np.bincount(block, ys) / size], axis=1)
    pixels = np.stack([xs, ys], axis=1).astype(float)
    went, asked = np.zeros(len(size)), np.zeros(len(size))
    for i in np.unique(np.linspace(0, n - 2, min(n - 1, DRIFT_STARTS)).astype(int)):
        later = np.full(len(size), -1)  # per block, the sample it is compared with
        to = np.zeros_like(pixels)
        waiting = np.ones(len(size), bool)
        for j in (i + gap for gap in DRIFT_GAPS if i + gap < n):
            fitted = drift.between(i, j)
            if fitted is None:
                break  # no longer one picture drifting
            m, t = fitted
            drifted = np.hypot(*(centres @ m.T + t).T)
            reached = waiting & (drifted >= MIN_DRIFT)
            taken = reached & (drifted <= MAX_DRIFT * (j - i))
            later[taken] = j
            moving = taken[block]
            to[moving] = pixels[moving] + pixels[moving] @ m.T + t
            waiting &= ~reached
        k = later[block]
        if (k < 0).all():
            continue
        to_x, to_y = np.rint(to).astype(int).T
        inside = (k >= 0) & (to_y >= 0) & (to_y < h) & (to_x >= 0) & (to_x < w)
        k, to_y, to_x = np.maximum(k, 0), np.clip(to_y, 0, h - 1), np.clip(to_x, 0, w - 1)
        gx, gy = evidence.gx[i, ys, xs], evidence.gy[i, ys, xs]
        # Summed, not normalised: where the later sample has a mark in place its edges are
        # strong there, and a drifting scene's are as strong in place as where they went.
        in_place, moved = (
            np.bincount(block, (gx * evidence.gx[k, y, x] + gy * evidence.gy[k, y, x]) * inside)
            for y, x in ((ys, xs), (to_y, to_x))
        )
        judged = np.bincount(block, inside) >= 0.5 * size  # still in the frame
        went += judged & (moved > in_place)
        asked += judged
    pairs = (size * asked).sum()
    if pairs < MIN_PAIRS * size.sum() or (size * went).sum() <= MAX_MOVED * pairs:
        return edges  # not seen drifting, or it stays put
    # Scenery, but for the blocks that clearly stay put: a mark's letters joined to it.
    stays = ((asked >= MIN_PAIRS) & (went <= STAYS * asked))[block]
    still = np.zeros_like(edges)
    still[ys[stays], xs[stays]] = True
    return still


def varied(frames: np.ndarray, changed: np.ndarray, n_changed: np.ndarray) -> np.ndarray:
    """Per pixel, whether the pictures around it differ among the samples where it changed:
    over a mark they do, while a still scene that flips between two states (a bottle taken
    away and put back) shows one picture each time it has changed."""
    k = (VARIED_WINDOW, VARIED_WINDOW)
    local = np.stack([cv2.blur(f, k) for f in frames])
    count = np.maximum(n_changed, 1)
    mean = np.where(changed, local, 0).sum(axis=0) / count
    spread = np.where(changed, (local - mean) ** 2, 0).sum(axis=0) / count
    return spread >= MIN_VARIED**2


def marks(evidence: OverlayMap) -> list[Mark]:
    """The regions of ``evidence`` whose edges, pooled, persisted where the picture changed,
    each with its size, box and kind; opaque centred ones (titles, subtitles) are left out."""
    h, w = evidence.seed.shape
    drift = DriftFields(evidence.frames)  # each pair of samples measured once, when needed
    # Wider than tall: the letters and words of a line join into one region.
    joined = cv2.dilate(evidence.seed.astype(np.uint8), np.ones(JOIN, np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(joined, connectivity=8)
    found = []
    for i in range(1, n):
        x, y, bw, bh, _ = stats[i]
        area = labels == i
        pixels = int((area & evidence.seed).sum())
        shown, hidden = int(evidence.shown[area].sum()), int(evidence.hidden[area].sum())
        if pixels < MIN_REGION or pixels < MIN_DENSITY * int(area.sum()):
            continue  # scattered pixels that persisted by chance, not the strokes of a mark
        if shown < MIN_EVIDENCE or hidden > MAX_HIDDEN * (shown + hidden):
            continue
        if not keeps_changing(evidence, area & evidence.seed):
            continue  # a still scene in a few lasting states (an object moved), not a mark
        region = still_edges(evidence, area & evidence.seed, drift)
        if region.sum() < MIN_REGION:
            continue  # scenery the camera drifts over, whose broad edges persisted by chance
        if region.sum() < pixels:  # scenery beside it left out: the box of what is left
            pixels, (x, y, bw, bh) = int(region.sum()), joined_box(region)
        box = (x / w, y / h, (x + bw) / w, (y + bh) / h)
        kind = "text" if bw > 2 * bh else "logo"
        if is_centred(box) and is_opaque(evidence.spread, area):
            continue  # a title or a subtitle: text (the text signal's), not a watermark
        found.append(Mark(pixels, box, kind, region))
    return found


def joined_box(edges: np.ndarray) -> tuple[int, int, int, int]:
    """``x, y, width, height`` of edge pixels as :func:`marks` joins them (:data:`JOIN`)."""
    ys, xs = np.nonzero(edges)
    (h, w), (dy, dx) = edges.shape, (JOIN[0] // 2, JOIN[1] // 2)
    x0, y0 = max(0, xs.min() - dx), max(0, ys.min() - dy)
    x1, y1 = min(w, xs.max() + dx + 1), min(h, ys.max() + dy + 1)
    return x0, y0, x1 - x0, y1 - y0


def is_opaque(spread: np.ndarray, area: np.ndarray) -> bool:
    """Whether the picture stops varying somewhere in a region (an opaque mark's strokes hide
    what is behind them; a semi-transparent one lets ``1 - alpha`` of it through): its
    least-varying tenth of pixels against the pixels around it."""
    ring = cv2.dilate(area.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool) & ~area
    inside, around = spread[area], spread[ring]
    if inside.size < 8 or around.size < 8:
        return False
    return float(np.percentile(inside, 10)) < OPAQUE * float(np.median(around)) + 1.0


def is_centred(box: tuple[float, float, float, float]) -> bool:
    """Whether a box is centred horizontally, as titles and subtitles are."""
    return CENTRE[0] <= (box[0] + box[2]) / 2 <= CENTRE[1]


def judge(found: list[Mark], scale: float) -> dict:
    """A clip's columns from its marks (``scale``: pixel counts to the 256-px size). The box
    spans the main mark and those of a similar weight (the words of one mark are found as
    separate regions where the picture behind some of them stood still)."""
    if not found:
        return {"watermark_score": 0.0, "watermark_box": None, "watermark_kind": "none"}
    weights = [m.pixels for m in found]
    main = found[int(np.argmax(weights))]
    tiled = is_tiled([m.box for m in found])
    boxed = np.asarray(
        [m.box for m, w in zip(found, weights) if tiled or w >= BOX_SHARE * max(weights)]
    )
    x0, y0 = boxed[:, :2].min(axis=0)
    x1, y1 = boxed[:, 2:].max(axis=0)
    return {
        "watermark_score": float(1 - np.exp(-sum(weights) * scale / SATURATION)),
        "watermark_box": {"x0": float(x0), "y0": float(y0), "x1": float(x1), "y1": float(y1)},
        "watermark_kind": "tiled" if tiled else main.kind,
    }


def is_tiled(boxes: list[tuple[float, float, float, float]]) -> bool:
    """Whether four or more marks (their boxes) are spread over most of the frame's width and
    height: one tiled mark."""
    if len(boxes) < 4:
        return False
    spread = np.asarray(boxes)
    width = spread[:, 2].max() - spread[:, 0].min()
    height = spread[:, 3].max() - spread[:, 1].min()
    return width >= TILED_SPAN and height >= TILED_SPAN


MARK_READING = re.compile(
    r"www\.|https?://|\w\.(com|net|org|tv|io|co|gov|edu|info|me|ly|uk|de|fr|ru|cn|jp)\b"
    r"|(^|\s)\.(com|net|org|tv|gov)\b|@[a-z0-9_.]{3,}|©|\(c\) *\w",
    re.IGNORECASE,
)
"""What a watermark reads like: a web address, a social-media handle, a copyright sign."""

STOCK_WORDS = (
    "stock",
    "footage",
    "preview",
    "watermark",
    "sample",
    "shutterstock",
    "istock",
    "getty",
    "alamy",
    "pond5",
    "dreamstime",
    "depositphotos",
    "storyblocks",
    "videoblocks",
    "videohive",
    "envato",
    "123rf",
    "bigstock",
    "motionarray",
)
"""Words stock sites write across their previews (and their names). Words of seven letters or
more also match with one letter misread (OCR reads a faint mark a letter differently in each
frame); shorter ones only as written, inside a longer word or not (``stockclips``)."""

APP_WORDS = (
    "tiktok",
    "douyin",
    "kuaishou",
    "bilibili",
    "xiaohongshu",
    "likee",
    "capcut",
    "inshot",
    "kinemaster",
    "vivavideo",
    "filmora",
)
"""Names short-video platforms stamp on the videos they let users save, and phone and desktop
editors on what their free tiers export: the commonest marks in scraped footage. Matched at
the start of a word of a short line outside the subtitle band (:func:`app_mark`): a subtitle
or a headline may name the app."""

APP_NAMES_WRITTEN = ("抖音", "剪映", "小红书", "西瓜视频")
"""The names Chinese platforms write (Douyin, CapCut's Jianying, Xiaohongshu, Xigua Video),
found anywhere in a short line (PP-OCR reads Chinese). Kuaishou's 快手 is a common word."""

APP_LINE_WORDS = 3
"""Most words of a line an app's mark is read in (its name, then a handle or an ID)."""

APP_LINE_CHARS = 12
"""Most characters, spaces aside, of a line a Chinese app's mark is read in (``抖音号: …``)."""

BROADCAST_WORDS = frozenset({"tv", "hd", "news", "live", "channel"})
"""Words of a broadcaster's corner logo, matched as whole words of a line in a corner."""

NETWORK_NAMES = (
    "bbc",
    "cnn",
    "cnbc",
    "msnbc",
    "nbc",
    "cbs",
    "pbs",
    "hbo",
    "espn",
    "mtv",
    "itv",
    "cgtn",
    "nhk",
    "kbs",
    "mbc",
    "zdf",
    "rtl",
    "tf1",
)
"""Major broadcasters' names, matched in a line in a corner as a word alone or followed by a
number or a channel's word (:data:`CHANNEL_WORDS`): ``BBC FOUR``, read ``BBCFOUR``; ``ESPN2``.
(``CCTV`` is left out: the signs of surveillance cameras say it.)"""

CHANNEL_WORDS = frozenset(
    {"one", "two", "three", "four", "news", "world", "sport", "sports", "hd", "uk", "america"}
)
"""Words a broadcaster's channels add to its name."""

STATION = re.compile(r"[a-z0-9]{0,2}tv[a-z0-9]?")
"""A station's name built on ``TV`` (``NTV``, ``TVP``, ``TV5``, ``9TV``), matched as a whole
word in a corner; not ``CCTV`` (the signs of surveillance cameras say it) nor the plural
``TVs``."""

CORNER = 0.25
"""Share of the width and of the height from an edge within which a line's centre is in a
corner."""


def reads_like_a_mark(line: TextLine) -> bool:
    """Whether a line OCR read is a watermark's: a web address, a handle, a copyright sign, a
    stock site's word, a video app's name (:func:`app_mark`), or a broadcaster's logo in a
    corner (:func:`broadcasters_logo`)."""
    reading = line.reading.lower()
    if MARK_READING.search(reading) or app_mark(line):
        return True
    words = re.findall(r"[a-z0-9]+", reading)
    if any(_contains(w, stock) for w in words for stock in STOCK_WORDS):
        return True
    return broadcasters_logo(line)


def broadcasters_logo(line: TextLine) -> bool:
    """Whether a line OCR read is a broadcaster's corner logo: a broadcaster's word
    (:data:`BROADCAST_WORDS`), a major broadcaster's name or a station's name built on ``TV``,
    in a corner."""
    x, y = (line.box[0] + line.box[2]) / 2, (line.box[1] + line.box[3]) / 2
    if not (min(x, 1 - x) <= CORNER and min(y, 1 - y) <= CORNER):
        return False
    words = re.findall(r"[a-z0-9]+", line.reading.lower())
    return bool(BROADCAST_WORDS & set(words)) or any(_network(w) or _station(w) for w in words)


def app_mark(line: TextLine) -> bool:
    """Whether a line reads like a video app's mark: short, outside the subtitle band, and a
    word starting with an app's name (``TikTok``, ``capcut_template``) or a Chinese app's
    name in it."""
    reading = line.reading.lower()
    if in_subtitle_band(line):
        return False
    if len(reading.split()) <= APP_LINE_WORDS:
        words = re.findall(r"[a-z0-9]+", reading)
        if any(w.startswith(APP_WORDS) for w in words):
            return True
    short = len("".join(reading.split())) <= APP_LINE_CHARS
    return short and any(name in reading for name in APP_NAMES_WRITTEN)


def _network(word: str) -> bool:
    """Whether a word is a major broadcaster's name, alone or with a number or a channel's
    word after it."""
    for name in NETWORK_NAMES:
        rest = word[len(name) :]
        if word.startswith(name) and (not rest or rest.isdigit() or rest in CHANNEL_WORDS):
            return True
    return False


def _station(word: str) -> bool:
    """Whether a word is a station's name built on ``TV`` (:data:`STATION`)."""
    return word not in ("cctv", "tvs") and STATION.fullmatch(word) is not None


def _contains(read: str, word: str) -> bool:
    """Whether ``word`` is in the word ``read``, with one letter misread where it is seven or
    more letters long."""
    if word in read:
        return True
    if len(word) < 7:
        return False
    n = len(word)
    return any(
        sum(a != b for a, b in zip(read[i : i + n], word)) <= 1 for i in range(len(read) - n + 1)
    )


READ_MARK_SCORE = 0.9
"""``watermark_score`` of a clip in whose frames, or in frames that vouch for it
(:func:`vouching`), OCR reads a line like a mark (:func:`reads_like_a_mark`) that two of its
source's frames read, wherever they are (a bouncing mark moves)."""


def read_marks(samples: list[list[TextLine]], source: tuple[int, int] | None = None) -> dict | None:
    """The watermark columns from the lines OCR read in a clip's frames (and in those that
    vouch for it, :func:`vouching`), or None unless a
    line that reads like a mark is in one of them and in two of the source's frames (or in
    the only one read). ``source``: frames of the source with such a line and frames read
    (the clip's own when None). The words need not agree: OCR misreads a small mark a letter
    differently in each frame. Its kind is ``tiled`` where four lines or more spread over one
    frame read like marks (:func:`is_tiled`), ``logo`` where every line is a broadcaster's
    logo (:func:`broadcasters_logo`), and ``text`` otherwise."""
    marked = [[x for x in lines if reads_like_a_mark(x)] for lines in samples]
    with_mark = sum(bool(lines) for lines in marked)
    in_source, read = source or (with_mark, len(samples))
    if not with_mark or in_source < min(2, read):
        return None
    lines = [x for read_in_one in marked for x in read_in_one]
    boxes = np.asarray([x.box for x in lines])
    x0, y0 = boxes[:, :2].min(axis=0)
    x1, y1 = boxes[:, 2:].max(axis=0)
    box = {"x0": float(x0), "y0": float(y0), "x1": float(x1), "y1": float(y1)}
    if any(is_tiled([x.box for x in read_in_one]) for read_in_one in marked):
        kind = "tiled"  # in one frame: a bouncing mark is read all over the frame in turn
    else:
        kind = "logo" if all(map(broadcasters_logo, lines)) else "text"
    return {"watermark_score": READ_MARK_SCORE, "watermark_box": box, "watermark_kind": kind}


VOUCH_REACH_S = 5.0
"""Farthest, in seconds from a clip's start and from its end, that readings of a mark before
and after it vouch for it: a mark OCR loses for a while over part of the picture, not a
handle on an intro card and on an end card a minute apart."""


def vouching(times: np.ndarray, marked: list[int], start_s: float, end_s: float) -> list[int]:
    """The samples of a source that read like a mark (``marked``, in time order) and vouch for
    the clip ``start_s``-``end_s``: those inside it, or else the nearest before and after it,
    where there are both within :data:`VOUCH_REACH_S`. A watermark stays on through a video,
    where OCR reads it only over parts of the picture (a bouncing word is lost over a bright
    sky)."""
    inside = [i for i in marked if start_s <= times[i] < end_s]
    if inside:
        return inside
    before = [i for i in marked if start_s - VOUCH_REACH_S <= times[i] < start_s]
    after = [i for i in marked if end_s <= times[i] <= end_s + VOUCH_REACH_S]
    return [before[-1], after[0]] if before and after else []


LOOK_AGAIN_SAMPLES = 16
"""More of a source's sampled frames, spread over it, read where only one of the frames its
clips read has a line like a mark: one reading is no proof either way."""


STACKED_SAMPLES = 16
"""Sampled frames of a source, spread over it, whose per-pixel median and low frame are read
for marks (:func:`stacked_frames`)."""

MIN_STACKED_SAMPLES = 5
"""Sampled frames a source needs before they are stacked: over fewer, the median is much like
one frame, and a line misread there would mark the whole source."""

LOW_RANK = 1
"""Rank, from 0 (the darkest), of the value each pixel of the low frame takes among the
stacked frames: a light mark is there at that rank only if it is on all frames but this many
(one dark frame does not hide it), and dark text on one frame alone never reaches it."""

DARK_FRAME = 16.0
"""Mean gray level below which a sampled frame is left out of the stack (where enough are
left): the black of a fade would hide a light mark in the low frame, and carries no picture."""

ON_FRAME_NCC = 0.1
"""Correlation of a frame's gradients over a line's box with those of the other frames'
stack, from which the line is on that frame: with a 15 % mark over random texture each frame
correlates at 0.1-0.2 (over real footage, mostly 0.3 and more); without it, at 0 +- 0.05."""

GRADIENT_BLUR = 1.5
"""Gaussian sigma (pixels) of the smoothing before those gradients: a mark's strokes are a few
pixels wide, the texture of the picture under them finer."""

ON_MOST_FRAMES = 0.5
"""Share of the stacked frames a line read in their stack must be on (:data:`ON_FRAME_NCC`):
a mark stays through the source, while the URL of an end card on an eighth of the frames
shows in their median too, faintly (each card shifts its pixels' values by a rank)."""

EQUALISE_TILES = 8
"""Tiles across a stacked frame in which its contrast is equalised (CLAHE) for a second
reading: a faint mark over a bright part of the picture gains the contrast OCR needs."""

EQUALISE_LIMIT = 3.0
"""CLAHE's clip limit: how far a tile's contrast may be stretched."""


def stacked_frames(frames: list[np.ndarray]) -> np.ndarray | None:
    """Gray frames sampled over a source as one array: those of the commonest size, less the
    near-black ones (:data:`DARK_FRAME`) where enough are left. None for fewer than
    :data:`MIN_STACKED_SAMPLES` frames."""
    if not frames:
        return None
    sizes = [f.shape for f in frames]
    size = max(set(sizes), key=sizes.count)
    stack = np.stack([f for f in frames if f.shape == size])
    lit = stack[stack.mean(axis=(1, 2)) >= DARK_FRAME]
    stack = lit if len(lit) >= MIN_STACKED_SAMPLES else stack
    return stack if len(stack) >= MIN_STACKED_SAMPLES else None


def median_of(stack: np.ndarray) -> np.ndarray:
    """Each pixel's median over the frames: a mark laid on every frame stays sharp while the
    moving picture under it blurs into a plain background."""
    return np.median(stack, axis=0).astype(np.uint8)


def low_of(stack: np.ndarray) -> np.ndarray:
    """Each pixel's value of rank :data:`LOW_RANK` from the darkest over the frames: the
    picture under a mark at its darkest, so a light mark, the commonest, shows with the most
    contrast."""
    return np.partition(stack, LOW_RANK, axis=0)[LOW_RANK]


def stacked_marks(detector: TextDetector, frames: list[np.ndarray]) -> dict | None:
    """The watermark columns of a source from what ``detector`` reads in the stack of its
    sampled frames (:func:`stacked_frames`): their median as it is and with its contrast
    equalised, then their low frame equalised, then the median's corners
    (:func:`read_corners`), up to the first that reads a line like a mark
    (:func:`reads_like_a_mark`) on most of the frames (:func:`on_most_frames`); None where
    none does. A mark too faint to be read over the changing picture of any one frame is read
    over the median's plain one, or over the low frame's dark one."""
    stack = stacked_frames(frames)
    if stack is None:
        return None
    equalise = cv2.createCLAHE(EQUALISE_LIMIT, (EQUALISE_TILES, EQUALISE_TILES)).apply
    median = median_of(stack)
    readings = (  # each only made where the ones before read no mark
        (median_of, lambda: read_lines(detector, median, True)),
        (median_of, lambda: read_lines(detector, equalise(median), True)),
        (low_of, lambda: read_lines(detector, equalise(low_of(stack)), True)),
        (median_of, lambda: read_corners(detector, median)),
    )
    for statistic, read_image in readings:
        lines = read_image()
        marks = [x for x in lines if reads_like_a_mark(x) and on_most_frames(stack, statistic, x)]
        read = read_marks([marks])
        if read is not None:
            return read
    return None


CORNERS_GAP = 8
"""Pixels of mid grey between the corners :func:`read_corners` lays side by side, so that no
line runs from one into the next."""


def read_corners(detector: TextDetector, image: np.ndarray) -> list[TextLine]:
    """Every line ``detector`` finds in the four corners of ``image`` (:data:`CORNER` of its
    width and height each), boxed in the whole image. The corners are laid side by side in one
    image half the size of the whole, so they are read at twice the scale the whole image is
    read at (the detector reads everything at one size) for the cost of one reading: a small
    logo in a corner that the whole image's reading missed over a busy picture reads."""
    h, w = image.shape
    ch, cw, gap = round(CORNER * h), round(CORNER * w), CORNERS_GAP
    tiles = np.full((2 * ch + gap, 2 * cw + gap), 128, np.uint8)
    shifts = {}  # where each corner is in the tiles: its shift back into the image
    for i, (y0, x0) in enumerate(((0, 0), (0, w - cw), (h - ch, 0), (h - ch, w - cw))):
        ty, tx = (i // 2) * (ch + gap), (i % 2) * (cw + gap)
        tiles[ty : ty + ch, tx : tx + cw] = image[y0 : y0 + ch, x0 : x0 + cw]
        shifts[ty, tx] = np.asarray([x0 - tx, y0 - ty] * 2)
    size = np.asarray([tiles.shape[1], tiles.shape[0]] * 2)
    lines = []
    for line in read_lines(detector, tiles, True):
        box = np.asarray(line.box) * size
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        for (ty, tx), shift in shifts.items():
            if ty <= cy < ty + ch and tx <= cx < tx + cw:
                box = np.clip((box + shift) / [w, h, w, h], 0, 1)
                lines.append(TextLine(tuple(map(float, box)), line.reading, True))
                break
    return lines


def on_most_frames(
    stack: np.ndarray, statistic: Callable[[np.ndarray], np.ndarray], line: TextLine
) -> bool:
    """Whether ``line``, read in the ``statistic`` of the frames ``stack``, is on most of them
    (:data:`ON_MOST_FRAMES`): where the gradients of a frame over the line's box correlate with
    those of the same statistic of the other frames (:data:`ON_FRAME_NCC`; the signs of a
    mark's edges stay, whatever the picture under it). Left out of its reference, a frame
    does not vouch for itself (over five frames, it would weigh a fifth of their median)."""
    n, h, w = stack.shape
    x0, y0 = int(line.box[0] * w), int(line.box[1] * h)
    x1, y1 = int(np.ceil(line.box[2] * w)), int(np.ceil(line.box[3] * h))
    if x1 - x0 < 3 or y1 - y0 < 3:
        return False
    crops = stack[:, y0:y1, x0:x1]

    def signed_gradients(crop: np.ndarray) -> np.ndarray:
        crop = cv2.GaussianBlur(crop.astype(np.float32), (0, 0), GRADIENT_BLUR)
        g = np.concatenate(
            [cv2.Sobel(crop, cv2.CV_32F, 1, 0).ravel(), cv2.Sobel(crop, cv2.CV_32F, 0, 1).ravel()]
        )
        g -= g.mean()
        return g / (np.linalg.norm(g) + 1e-6)

    on = [
        float(signed_gradients(crops[i]) @ signed_gradients(statistic(np.delete(crops, i, 0))))
        >= ON_FRAME_NCC
        for i in range(n)
    ]
    return float(np.mean(on)) >= ON_MOST_FRAMES


SUBTITLE_BAND = 2 / 3
"""Share of the frame's height below which a line centred across the frame is a subtitle."""

IN_SUBTITLES = 0.5
"""Share of a clip's ``watermark_box`` inside its subtitle lines from which its mark is the
subtitles (found in part where the picture behind some words changed), not a watermark."""


def in_subtitle_band(line: TextLine) -> bool:
    """Whether a line is centred across the frame in its lower third, where subtitles are."""
    x, y = (line.box[0] + line.box[2]) / 2, (line.box[1] + line.box[3]) / 2
    return CENTRE[0] <= x <= CENTRE[1] and y >= SUBTITLE_BAND


def is_subtitle(line: TextLine) -> bool:
    """Whether a line OCR read is a subtitle: on the screen, in the subtitle band
    (:func:`in_subtitle_band`), and not reading like a mark."""
    return line.stable and in_subtitle_band(line) and not reads_like_a_mark(line)


SUBTITLE_GRID = 200
"""Cells across the frame's width and height in which subtitle lines and a mark's box are
laid out to measure their overlap."""


def in_subtitles(box: dict, samples: list[list[TextLine]]) -> bool:
    """Whether most of ``box`` (shares of the frame) lies in the subtitle lines read in a
    clip's frames, each grown by half its height (the mark's strokes reach its edges)."""
    grid = SUBTITLE_GRID
    covered = np.zeros((grid, grid), bool)
    for line in (x for lines in samples for x in lines if is_subtitle(x)):
        x0, y0, x1, y1 = line.box
        pad = (y1 - y0) / 2
        covered[
            int(max(0, y0 - pad) * grid) : int(np.ceil(min(1, y1 + pad) * grid)),
            int(max(0, x0 - pad) * grid) : int(np.ceil(min(1, x1 + pad) * grid)),
        ] = True
    x0, y0 = int(box["x0"] * grid), int(box["y0"] * grid)
    x1 = max(x0 + 1, int(np.ceil(box["x1"] * grid)))
    y1 = max(y0 + 1, int(np.ceil(box["y1"] * grid)))
    inside = covered[y0:y1, x0:x1]
    return bool(inside.size) and float(inside.mean()) >= IN_SUBTITLES


def with_read_lines(
    values: dict,
    samples: list[list[TextLine]],
    source: tuple[int, int] | None = None,
    stacked: dict | None = None,
) -> dict:
    """A clip's watermark columns after what OCR read in its frames: raised where a line reads
    like a mark (:func:`read_marks`), or else where one in the stack of the source's frames
    does (``stacked``: :func:`stacked_marks`), and that scores higher; cleared where the mark
    is the clip's subtitles (text, measured by the ``text`` signal)."""
    read = read_marks(samples, source) or stacked
    if read is not None and read["watermark_score"] > (values.get("watermark_score") or 0.0):
        return read
    box = values.get("watermark_box")
    if read is None and box is not None and in_subtitles(box, samples):
        return judge([], 1.0)
    return {}


@dataclass
class WatermarkSeries:
    """The marks found over a whole source, and in which of its samples each one shows."""

    times: np.ndarray
    """Times of the samples judged."""
    marks: list[Mark]
    present: np.ndarray
    """Per mark and sample judged, the share of its edge pixels that are there."""
    scale: float
    """Pixel counts of the frames kept to the 256-px analysis size."""


class WatermarkSignal(FrameSignal):
    """Keeps half-size frames at ``fps``, finds the marks of the whole source when it ends,
    and gives each clip the marks that show in it."""

    name = "watermark"
    fields = (
        pa.field("watermark_score", pa.float32()),
        pa.field("watermark_box", WATERMARK_BOX),
        pa.field("watermark_kind", pa.string()),
    )
    config = WatermarkConfig
    gates = (
        Gate(
            "max_watermark",
            "watermark_score",
            "watermarked",
            ("watermark_score",),
            at_most,
            threshold=score(ge=0, le=1),
            description="Highest watermark_score (0-1) of a clip: drops clips with a logo, a "
            "stock watermark or a URL laid over the picture.",
        ),
    )
    scores = ("watermark_score",)

    def __init__(self, cfg: WatermarkConfig) -> None:
        self.interval = 1.0 / cfg.fps
        self.times: list[float] = []
        self.frames: list[np.ndarray] = []
        self._next_t = 0.0

    def wants(self, frame: DecodedFrame) -> bool:
        return frame.time >= self._next_t

    def update(self, frame: DecodedFrame) -> None:
        h, w = frame.gray.shape
        self.times.append(frame.time)
        self.frames.append(cv2.resize(frame.gray, (w // 2, h // 2), interpolation=cv2.INTER_AREA))
        self._next_t = frame.time + self.interval
        if len(self.frames) > MAX_SAMPLES:
            self.times, self.frames = self.times[::2], self.frames[::2]
            self.interval *= 2

    def finish(self) -> WatermarkSeries:
        """Judge the whole source at once: a mark survives a cut and stays through the
        source, scenery does not; each clip then keeps the marks that show in it."""
        if len(self.frames) < MIN_SAMPLES:
            return WatermarkSeries(np.asarray(self.times), [], np.zeros((0, 0)), 1.0)
        picked = np.linspace(0, len(self.frames) - 1, min(JUDGED, len(self.frames))).astype(int)
        frames = np.stack([self.frames[i] for i in picked])
        evidence = overlay_map(frames)
        found = marks(evidence)
        present = np.asarray(
            [evidence.seen[:, m.region].mean(axis=1) for m in found], np.float32
        ).reshape(len(found), len(picked))
        scale = 256.0 / min(frames.shape[1:])  # edges are lines: their pixels scale with size
        return WatermarkSeries(np.asarray(self.times)[picked], found, present, scale)

    def clip_values(self, series: WatermarkSeries, clip: ClipWindow) -> dict:
        inside = samples_in(series.times, clip.start_s, clip.end_s)
        if not series.marks or inside.size == 0:
            return judge([], 1.0)
        shows = series.present[:, inside].mean(axis=1) >= PRESENT
        return judge([m for m, s in zip(series.marks, shows) if s], series.scale)
