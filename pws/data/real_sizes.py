"""The image sizes of the real data sets, for generated stand-ins at full size (opt-in: ``real_sizes=True``).

The smoke scale's stand-ins are small squares (VOC 320x320, COCO up to 320x320, ImageNet about 80 pixels),
which keeps them fast but hides what the real images cost: decoding a 500x375 JPEG, mmdet's keep-ratio
resize of a 640x480 COCO image to 1067x800 for Mask R-CNN, torchvision's RandomResizedCrop of a portrait
ImageNet photo. A rehearsal (:mod:`pws.results.rehearsal`) asks the generators for the real sizes instead:
image ``k`` of a split gets ``real_size(data, k)``, the set's typical sizes in turn, a landscape one first
and its portrait second, so that every split of two images or more has both orientations.

CIFAR-10 needs nothing here: its generator already writes 32x32 images into the real pickle batches.
"""

from __future__ import annotations

from typing import Any

# (width, height) of each data set's common image sizes, landscape and portrait.
REAL_SIZES: dict[str, tuple[tuple[int, int], ...]] = {
    # VOC2007/2012: nearly all images are 500 pixels on the long side (500x375 the commonest, then 500x333)
    "voc": ((500, 375), (375, 500), (500, 333), (333, 500)),
    # COCO 2017: 640 pixels on the long side (640x480 the commonest, then 640x427)
    "coco": ((640, 480), (480, 640), (640, 427), (427, 640)),
    # ILSVRC2012: varied, around 500x375 (its median), portraits among them, before RandomResizedCrop
    "imagenet": ((500, 375), (375, 500), (500, 333), (500, 500), (333, 500), (400, 300), (640, 480)),
}


def real_size(data: str, index: int) -> tuple[int, int]:
    """(width, height) of image ``index`` of a split of the stand-in for ``data`` (``voc``, ``coco`` or
    ``imagenet``): :data:`REAL_SIZES` in turn."""
    sizes = REAL_SIZES[data]
    return sizes[index % len(sizes)]


def marker_entry(real_sizes: bool) -> dict[str, Any]:
    """What a generator adds to its marker's options for ``real_sizes``: nothing when off, so that the sets
    generated without it (the smoke scale's) keep their files byte for byte."""
    return {"real_sizes": True} if real_sizes else {}
