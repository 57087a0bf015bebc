"""Data: the real data sets by their root paths and the generators of the smoke-scale data sets.

Every loader raises :class:`DataMissingError` (a ``FileNotFoundError``) when its data is not where it was
looked for, naming the path and how to get the data. ``pws.data.detection`` has the VOC and COCO checks and
the synthetic VOC/COCO generators; ``pws.data.classification`` the CIFAR, ImageNet and digits data;
``scripts/prepare_data.py`` writes any generated set to disk.
"""

from pws.data.errors import DataMissingError

__all__ = ["DataMissingError"]
