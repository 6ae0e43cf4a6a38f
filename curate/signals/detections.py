"""Scores of the learned detectors that read a clip's keyframes (``stages/detect.py``): what
they add to ``analysis`` and the tier gates on them. They run in their own actor pool after
the decode pass (on the GPU where there is one), not per frame.

- ``nsfw_score`` / ``nsfw_classes``: NudeNet's highest score for an exposed sensitive body part
  over the keyframes, and which parts scored above ``detect.nsfw.threshold``;
- ``faces`` / ``face_share``: most faces in one keyframe and the largest face's share of the
  frame, from the same detections (a privacy signal);
- ``subject_share`` / ``objects``: with ``detect.objects.model`` (any YOLO-family ONNX model,
  a COCO detector for instance), the median over keyframes of the largest subject's share of
  the frame, and the classes seen (Movie Gen drops clips that show only small objects).
"""

from __future__ import annotations

import pyarrow as pa

from curate.gates import Gate, at_least, at_most

FIELDS = (
    pa.field("nsfw_score", pa.float32()),
    pa.field("nsfw_classes", pa.list_(pa.string())),
    pa.field("faces", pa.int32()),
    pa.field("face_share", pa.float32()),
    pa.field("subject_share", pa.float32()),
    pa.field("objects", pa.list_(pa.string())),
)

GATES = (
    Gate("max_nsfw", "nsfw_score", "nsfw", ("nsfw_score",), at_most),
    Gate("max_faces", "faces", "faces", ("faces",), at_most),
    Gate("max_face_share", "face_share", "face_close_up", ("face_share",), at_most),
    Gate("min_subject_share", "subject_share", "small_subject", ("subject_share",), at_least),
)
