"""Selective search (Uijlings et al. 2013), the non-learned proposals Fast R-CNN was trained and
tested on and Faster R-CNN's RPN replaced: OpenCV contrib's implementation, run once per image
when the data are made (as Fast R-CNN shipped its proposals with the data), not inside the model.

Settings, chosen before any detector was trained on them, by proposal recall on 200 train scenes
(repro/data/scenes.py; at IoU 0.5 / 0.7): OpenCV's "fast" mode (HSV and Lab colour spaces, two
similarity strategies) at its own k = 50 (base and step) and sigma = 0.8, on the image up-sampled
2x (bilinear). At the native 64x64 its graph segmentation leaves ~9 regions per scene (recall
0.48 / 0.27); 2x up-sampling gives ~39 (0.91 / 0.76), 3x ~67 (0.93 / 0.85) at twice the time.
OpenCV ranks the hierarchy's boxes with a random draw, so their order changes from call to call
while the set does not: boxes are sorted (x0, y0, x1, y1) to make the proposals a function of the
image. At most `max_proposals` per image are kept (the smallest boxes first when more exist; how
many images were cut is part of the data's description).
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from repro.errors import DataError


@dataclasses.dataclass(frozen=True)
class SelectiveSearch:
    upsample: int = 2
    k: int = 50
    sigma: float = 0.8
    max_proposals: int = 200

    def __post_init__(self):
        if self.upsample < 1 or self.k < 1 or self.sigma <= 0 or self.max_proposals < 1:
            raise ValueError(f"selective search settings out of range: {self}")

    def boxes(self, image: np.ndarray) -> np.ndarray:
        """All of one image's (H, W, C uint8) proposals, float32 [P, 4] (x0, y0, x1, y1) in its
        pixels, sorted (module docstring)."""
        cv2 = _opencv()
        rgb = np.repeat(image, 3, -1) if image.shape[-1] == 1 else image
        if self.upsample > 1:
            rgb = cv2.resize(rgb, None, fx=self.upsample, fy=self.upsample, interpolation=cv2.INTER_LINEAR)
        search = cv2.ximgproc.segmentation.createSelectiveSearchSegmentation()
        search.setBaseImage(np.ascontiguousarray(rgb))
        search.switchToSelectiveSearchFast(self.k, self.k, self.sigma)
        xywh = search.process().astype(np.float32).reshape(-1, 4) / self.upsample
        boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], 1)
        return boxes[np.lexsort(boxes.T[::-1])]  # by x0, then y0, x1, y1

    def __call__(self, images: np.ndarray, threads: int = 2) -> tuple[np.ndarray, np.ndarray, int]:
        """Proposals of `images` [N, H, W, C]: boxes float32 [N, max_proposals, 4] padded with
        zeros, their validity uint8 [N, max_proposals], and how many images had more (cut to
        their `max_proposals` smallest boxes, in sorted order)."""
        _opencv().setNumThreads(1)  # one image per thread instead (OpenCV releases the GIL)
        with ThreadPoolExecutor(threads) as pool:
            found = list(pool.map(self.boxes, images))
        n, p = len(images), self.max_proposals
        boxes, valid = np.zeros((n, p, 4), np.float32), np.zeros((n, p), np.uint8)
        for i, b in enumerate(found):
            if len(b) > p:
                area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
                b = b[np.sort(np.argsort(area, kind="stable")[:p])]
            boxes[i, : len(b)], valid[i, : len(b)] = b, 1
        return boxes, valid, sum(len(b) > p for b in found)


def _opencv():
    try:
        import cv2
    except ImportError as e:
        raise DataError("selective search needs OpenCV's contrib modules: pip install "
                        "opencv-contrib-python-headless (pinned in requirements.lock)") from e
    if not hasattr(cv2, "ximgproc"):
        raise DataError("this OpenCV has no ximgproc (contrib) module: uninstall opencv-python and "
                        "install opencv-contrib-python-headless")
    return cv2
