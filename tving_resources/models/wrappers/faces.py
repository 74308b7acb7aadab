"""Faces: dlib's HOG face detector, its 5-point landmarks for alignment, and its ResNet encoder
(128-d descriptors; 99.38 % on LFW). The weights ship in the ``face-recognition-models`` PyPI
package (found without importing it: its ``__init__`` needs ``pkg_resources``), or come from a
models folder holding the same three files (the full profile can point the role elsewhere).

Two descriptors of one person lie less than ~0.6 apart (dlib's rule); measured here on real
faces: the astronaut at other scales, positions, brightness and mirrored 0.16–0.30, against
another person 0.83 (docs/people.md has the threshold this project uses).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tving_resources.errors import ModelNotAvailableError

DETECTOR_FILES = ("shape_predictor_5_face_landmarks.dat", "dlib_face_recognition_resnet_model_v1.dat")
LITE_FACE_MODEL = "lite/dlib-resnet-v1"
CHIP_SIZE = 150  # pixels of an aligned face thumbnail (dlib's own chip size for its encoder)


@dataclass(frozen=True)
class DetectedFace:
    box: tuple[int, int, int, int]  # left, top, right, bottom, in the image's pixels
    score: float  # the detector's confidence (higher: surer)
    embedding: np.ndarray  # (128,) float32
    chip: np.ndarray  # an aligned CHIP_SIZE x CHIP_SIZE RGB thumbnail of the face


def packaged_model_folder() -> Path:
    """Where ``face-recognition-models`` keeps the dlib model files."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotAvailableError(
            "faces: install face-recognition-models (pip install -e .) or turn faces off (faces: false)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "models"


class FaceEncoder:
    """Finds faces in an RGB image and describes each with a 128-d vector."""

    dim = 128

    def __init__(self, folder: Path, model_id: str, upsample: int = 0, min_score: float = 0.0):
        import dlib

        missing = [name for name in DETECTOR_FILES if not (folder / name).is_file()]
        if missing:
            raise ModelNotAvailableError(f"face model {model_id!r}: {folder} lacks {', '.join(missing)}")
        self.model_id = model_id
        self.upsample = upsample
        self.min_score = min_score
        self._detector = dlib.get_frontal_face_detector()
        self._landmarks = dlib.shape_predictor(str(folder / DETECTOR_FILES[0]))
        self._encoder = dlib.face_recognition_model_v1(str(folder / DETECTOR_FILES[1]))

    def faces(self, image: np.ndarray, upsample: int | None = None) -> list[DetectedFace]:
        """Every face in ``image`` (H, W, 3 uint8 RGB) that the detector is sure enough of;
        ``upsample`` (default: the encoder's) doubles the image that many times first, so faces
        half as large are found, at 4x the cost each time."""
        import dlib

        rgb = np.ascontiguousarray(image[..., :3], dtype=np.uint8)
        times = self.upsample if upsample is None else upsample
        boxes, scores, _ = self._detector.run(rgb, times, self.min_score)
        found = []
        for box, score in zip(boxes, scores, strict=True):
            shape = self._landmarks(rgb, box)
            embedding = np.asarray(self._encoder.compute_face_descriptor(rgb, shape), dtype=np.float32)
            chip = np.asarray(dlib.get_face_chip(rgb, shape, size=CHIP_SIZE), dtype=np.uint8)
            height, width = rgb.shape[:2]
            left, top = max(0, box.left()), max(0, box.top())
            right, bottom = min(width, box.right()), min(height, box.bottom())
            found.append(DetectedFace((left, top, right, bottom), round(float(score), 4), embedding, chip))
        return found


def face_distances(embeddings: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Euclidean distances of each row of ``embeddings`` to ``query`` (dlib's measure)."""
    return np.linalg.norm(np.asarray(embeddings, dtype=np.float32) - query[None, :], axis=1)
