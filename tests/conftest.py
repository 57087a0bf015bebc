"""Shared by every test file: one reproducible random stream per test.

Each test starts from ``torch.manual_seed(base + crc32(test id))``. ``base`` is 0 unless ``PWS_TEST_SEED`` is
set, so ``PWS_TEST_SEED=123 make test`` reruns the suite on fresh random inputs; a failure is reproduced
with the seed printed in the report header.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import pytest
import torch

BASE_SEED = int(os.environ.get("PWS_TEST_SEED", "0"))
TESTS = Path(__file__).parent
if os.environ.get("PYTEST_XDIST_WORKER"):  # two workers on two cores: one thread each, their children too
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
# the folders whose files share a session fixture that one process must own: the local SLURM (started once,
# stopped at the end); every other file is a group of its own (their session fixtures are small generated data
# sets and tiny reference runs, made again in each process that needs them)
KEEP_TOGETHER = {"cluster"}


def pytest_itemcollected(item: pytest.Item) -> None:
    """``make test`` runs the suite on two processes (pytest-xdist, ``--dist loadgroup``): each file is one
    group, and each folder of ``KEEP_TOGETHER`` (its session fixtures are made once, in one process).
    (Marked as each test is collected: xdist reads the groups in its ``pytest_collection_modifyitems``.)"""
    item.add_marker(pytest.mark.xdist_group(_group(item)))


def _group(item: pytest.Item) -> str:
    parts = Path(item.path).relative_to(TESTS).parts
    return parts[0] if parts[0] in KEEP_TOGETHER else "/".join(parts)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The groups that take long (one of their tests is marked ``slow``, or they share the SLURM) first, each
    group's tests kept together and in order: with ``--no-loadscope-reorder`` xdist hands out the groups in
    this order, so that the two processes do not end on one long group each after the short ones."""
    long = {_group(i) for i in items if i.get_closest_marker("slow") or _group(i) in KEEP_TOGETHER}
    items.sort(key=lambda i: _group(i) not in long)


def pytest_report_header(config: pytest.Config) -> str:
    return f"PWS_TEST_SEED={BASE_SEED} (torch seed per test = PWS_TEST_SEED + crc32(test id))"


@pytest.fixture(autouse=True)
def _seed_torch(request: pytest.FixtureRequest) -> None:
    torch.manual_seed(BASE_SEED + zlib.crc32(request.node.nodeid.encode()))


@pytest.fixture
def single_thread():
    """One intra-op thread for the test (opt in: ``pytestmark = pytest.mark.usefixtures("single_thread")``).

    For tests made of many small ops: on a shared 2-core machine, two OpenMP threads contending with other
    processes made them 3-8x slower than one thread.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
