"""Classification data (Tables 4 and 5): CIFAR-10, ImageNet, scikit-learn's digits and generated stand-ins.

Entry point: :func:`build_datasets` (``pws.data.classification.builder``, which documents every name and
kwarg). One module per family: ``cifar`` (cifar10, synthetic_cifar), ``imagenet`` (imagenet,
synthetic_imagenet), ``digits``; ``synthetic`` holds what the generated sets share.
"""

from pws.data.classification.builder import DATASETS, build_datasets, dataset_options
from pws.data.classification.cifar import generate_synthetic_cifar
from pws.data.classification.imagenet import generate_synthetic_imagenet

__all__ = [
    "DATASETS",
    "build_datasets",
    "dataset_options",
    "generate_synthetic_cifar",
    "generate_synthetic_imagenet",
]
