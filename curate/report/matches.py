"""The matched frames of merged duplicates: the original's and the duplicate's best-matching
keyframes side by side, with the keypoint matches that agree on one transform drawn between
them, so a reader can see why two clips were merged."""

from __future__ import annotations

import cv2
import numpy as np
import pyarrow.compute as pc
import pyarrow.dataset as ds

from curate.copy_detection import verify
from curate.media.imaging import from_jpeg, jpeg

HEIGHT = 180
"""Height of each keyframe in the picture, pixels."""

GAP = 12
"""Pixels between the two keyframes."""

MAX_LINES = 40
"""Inlier matches drawn at most (evenly chosen), so the picture stays readable."""


def matched_frames(analysis: ds.Dataset, pairs: list[tuple[str, str]]) -> dict[str, dict]:
    """For each ``(duplicate, original)`` pair: ``{"image": JPEG, "inliers": n, "mirror":
    bool}`` keyed by the duplicate's id; the keyframes' middles side by side when no keypoints
    match (a merge on embeddings or frame hashes alone)."""
    ids = sorted({c for pair in pairs for c in pair})
    if not ids or "keyframes" not in analysis.schema.names:
        return {}
    table = analysis.to_table(
        columns=["clip_id", "keyframes"], filter=pc.field("clip_id").isin(ids)
    )
    keyframes = dict(zip(table["clip_id"].to_pylist(), table["keyframes"].to_pylist()))
    out = {}
    for duplicate, original in pairs:
        frames_a, frames_b = keyframes.get(original) or [], keyframes.get(duplicate) or []
        if not frames_a or not frames_b:
            continue
        found = verify(frames_a, frames_b)
        if found is None:
            i, j, points = len(frames_a) // 2, len(frames_b) // 2, None
        else:
            i, j, points = found.keyframe_a, found.keyframe_b, found.inlier_points
        image = side_by_side(from_jpeg(frames_a[i]), from_jpeg(frames_b[j]), points)
        out[duplicate] = {
            "image": jpeg(image, 85),
            "inliers": found.inliers if found else 0,
            "mirror": bool(found and found.mirror),
        }
    return out


def side_by_side(
    original: np.ndarray,
    duplicate: np.ndarray,
    points: tuple[np.ndarray, np.ndarray] | None,
) -> np.ndarray:
    """The two keyframes at one height, original on the left, with lines between matched
    points (given in each keyframe's own pixels)."""
    scale_a, scale_b = HEIGHT / original.shape[0], HEIGHT / duplicate.shape[0]
    left = cv2.resize(original, (round(original.shape[1] * scale_a), HEIGHT))
    right = cv2.resize(duplicate, (round(duplicate.shape[1] * scale_b), HEIGHT))
    canvas = np.full((HEIGHT, left.shape[1] + GAP + right.shape[1], 3), 255, np.uint8)
    canvas[:, : left.shape[1]] = left
    canvas[:, left.shape[1] + GAP :] = right
    if points is not None and len(points[0]):
        pts_a, pts_b = points
        shown = np.linspace(0, len(pts_a) - 1, min(MAX_LINES, len(pts_a))).round().astype(int)
        offset = left.shape[1] + GAP
        for k in shown:
            a = (round(pts_a[k][0] * scale_a), round(pts_a[k][1] * scale_a))
            b = (round(pts_b[k][0] * scale_b) + offset, round(pts_b[k][1] * scale_b))
            cv2.line(canvas, a, b, (60, 200, 60), 1, cv2.LINE_AA)
            cv2.circle(canvas, a, 2, (0, 160, 255), -1)
            cv2.circle(canvas, b, 2, (0, 160, 255), -1)
    return canvas
