"""Data: the real data sets by their root paths and the generators of the smoke-scale data sets.

Every loader raises :class:`DataMissingError` (a ``FileNotFoundError``) when its data is not where it was
looked for, naming the path and how to get the data. ``pws.data.detection`` has the VOC and COCO checks and
the synthetic VOC/COCO generators; ``pws.data.classification`` the CIFAR, ImageNet and digits data;
``scripts/prepare_data.py`` writes any generated set to disk or checks one. ``pws.data.census`` compares a
set's counts with the official ones and finds the generators' markers (a full-scale run refuses a partial or
generated set); ``pws.data.quirks`` writes the real files' odd formats into the generated sets. A file a
loader cannot read as it should raises :class:`MalformedFile` (a ``ValueError``).
"""

from pws.data.errors import DataMissingError, MalformedFile

__all__ = ["DataMissingError", "MalformedFile"]
