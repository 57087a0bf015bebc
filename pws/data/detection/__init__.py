"""Detection data: PASCAL VOC and COCO 2017 layouts, their checks, and generated smoke-scale stand-ins.

* ``synthetic_voc.generate(root, num_train, num_test, seed)`` -> ``root/VOCdevkit`` (VOC2007 trainval + test,
  VOC2012 trainval, real VOC XML and JPEGs);
* ``synthetic_coco.generate(root, num_train, num_val, seed)`` -> ``root/coco`` (train2017/, val2017/,
  annotations/instances_{train,val}2017.json, real COCO json);
* ``check``: ``require_voc``/``require_coco`` (the layout is there, else ``DataMissingError``) and
  ``validate_voc``/``validate_coco`` (well-formed annotations, else ``AnnotationError``, a ``ValueError``).

The generated sets carry a marker file (``is_synthetic(root)``) so that a config meant for real data can
refuse them (``require_voc(root, synthetic_ok=False)``).
"""

from pws.data.detection._layout import is_synthetic
from pws.data.detection.check import (
    AnnotationError,
    require_coco,
    require_voc,
    validate_coco,
    validate_coco_root,
    validate_voc,
)
from pws.data.detection.synthetic_coco import COCO_CATEGORIES, COCO_CLASSES
from pws.data.detection.synthetic_voc import VOC_CLASSES

__all__ = [
    "COCO_CATEGORIES",
    "COCO_CLASSES",
    "VOC_CLASSES",
    "AnnotationError",
    "is_synthetic",
    "require_coco",
    "require_voc",
    "validate_coco",
    "validate_coco_root",
    "validate_voc",
]
