#!/usr/bin/env python
"""Writes the project's generated data sets to disk, or checks a data set already there.

    python scripts/prepare_data.py voc  --root data/synthetic [--num-train N --num-test N --seed S]
    python scripts/prepare_data.py coco --root data/synthetic [--num-train N --num-test N --seed S]
    python scripts/prepare_data.py cifar10|imagenet --root data/synthetic/... [--num-train N ...]
    python scripts/prepare_data.py imagenet --root DIR --quirks  # with the real files' odd formats
    python scripts/prepare_data.py voc  --root data --check      # check a real (or generated) set

Each generator writes its layout under ``--root`` as the real archives unpack (``voc``: ROOT/VOCdevkit;
``coco``: ROOT/coco; ``cifar10``: ROOT/cifar-10-batches-py; ``imagenet``: ROOT/train, ROOT/val) and prints the
path to give as the data root. Generating again with the same arguments does nothing. Generated sets are the
smoke scale: a check of the pipeline, never the paper's data (they carry their generator's marker file).

``--check`` reads the set at ``--root`` and prints the first problem with its file (exit 1), or its counts
beside the official ones (``pws.data.census``): ``OK`` (exit 0), or ``partial`` / ``generated`` with the
numbers (exit 2: a full-scale run refuses such a set unless ``data.allow_partial=true``).

Adding a data set is one line in ``GENERATORS``.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable from a checkout without install


@dataclass(frozen=True)
class Entry:
    """A data set: ``generate`` and ``check`` are "module:function", imported only when used.

    ``generate(root, num_train=, num_test= or num_val=, seed=, **extra)`` writes the stand-in and returns
    its layout root; ``check(root)`` raises on a missing or malformed set and returns its root; ``census``
    is the data config's name in :data:`pws.data.census.OFFICIAL`.
    """

    generate: str
    check: str
    census: str
    help: str
    num_train: int = 16
    num_test: int = 8
    extra: dict[str, Any] = field(default_factory=dict)


_DET = "pws.data.detection"
_CLS = "pws.data.classification"
GENERATORS: dict[str, Entry] = {
    "voc": Entry(f"{_DET}.synthetic_voc:generate", f"{_DET}.check:validate_voc", "voc0712",
                 "VOCdevkit: VOC2007+2012"),
    "coco": Entry(f"{_DET}.synthetic_coco:generate", f"{_DET}.check:validate_coco_root", "coco",
                  "COCO 2017 instances"),
    "cifar10": Entry(f"{_CLS}:generate_synthetic_cifar", f"{_CLS}.cifar:check_cifar10", "cifar10",
                     "CIFAR-10 pickle batches", 1000, 200),
    "imagenet": Entry(f"{_CLS}:generate_synthetic_imagenet", f"{_CLS}.imagenet:check_imagenet", "imagenet",
                      "ImageNet JPEG dirs", 200, 50),
}  # fmt: skip


def _resolve(target: str):
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def generate(name: str, root: str | Path, num_train: int | None = None, num_test: int | None = None,
             seed: int = 0, quirks: bool = False) -> Path:  # fmt: skip
    """Runs the generator ``name`` of ``GENERATORS`` (``quirks``: with the real files' quirks, where the
    generator has them: :mod:`pws.data.quirks`); returns the layout root."""
    entry = GENERATORS[name]
    fn = _resolve(entry.generate)
    params = inspect.signature(fn).parameters
    kwargs: dict[str, Any] = {"num_train": entry.num_train if num_train is None else num_train, "seed": seed}
    n_test = entry.num_test if num_test is None else num_test
    test_kw = next((k for k in ("num_test", "num_val") if k in params), None)
    if test_kw is not None:
        kwargs[test_kw] = n_test
    if quirks:
        if "quirks" not in params:
            raise ValueError(f"{name} has no quirks to add (its generated files are the real format)")
        kwargs["quirks"] = True
    return Path(fn(Path(root), **kwargs, **entry.extra))


def check(name: str, root: str | Path) -> int:
    """Checks the set ``name`` at ``root``, prints the verdict; the exit code (see the module)."""
    from pws.data.census import COMPLETE, take_census

    entry = GENERATORS[name]
    try:
        _resolve(entry.check)(Path(root))
        census = take_census(entry.census, root)
    except (FileNotFoundError, ValueError) as e:  # DataMissingError, AnnotationError, MalformedFile
        print(f"error: {e}", file=sys.stderr)
        return 1
    if census.verdict == COMPLETE:
        print(f"{name}: OK ({census.root}): {census.numbers()}")
        return 0
    print(f"{name}: {census.verdict}: {census.problem()}")
    return 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="data sets:\n" + "\n".join(f"  {k:10s} {e.help}" for k, e in GENERATORS.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("dataset", choices=sorted(GENERATORS))
    parser.add_argument(
        "--root", default="data/synthetic", help="folder to write under (default: %(default)s)"
    )
    parser.add_argument("--num-train", type=int, default=None, help="training images (default: per data set)")
    parser.add_argument("--num-test", "--num-val", dest="num_test", type=int, default=None,
                        help="test/val images (default: per data set)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--check", action="store_true", help="validate the set at --root instead of generating"
    )
    parser.add_argument("--quirks", action="store_true",
                        help="some images as the real set's odd files (greyscale, CMYK, ...; not cifar10)")
    args = parser.parse_args(argv)

    if args.check:
        return check(args.dataset, args.root)
    try:
        path = generate(args.dataset, args.root, args.num_train, args.num_test, args.seed, args.quirks)
    except ValueError as e:
        parser.error(str(e))
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
