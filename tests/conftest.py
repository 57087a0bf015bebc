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
# folders whose files share no costly session fixture: their files spread over the workers (detect's generated
# data set is small; its learning test alone takes a worker for most of the suite)
SPLIT_BY_FILE = {"results", "detect"}


def pytest_itemcollected(item: pytest.Item) -> None:
    """``make test`` runs the suite on two processes (pytest-xdist, ``--dist loadgroup``): each folder of
    tests is one group, so that its session fixtures (a generated data set, a reference run, the local
    SLURM) are made once, in one process; the top-level files and those of ``SPLIT_BY_FILE`` go one by one.
    (Marked as each test is collected: xdist reads the groups in its ``pytest_collection_modifyitems``.)"""
    parts = Path(item.path).relative_to(TESTS).parts
    folder = parts[0] if len(parts) > 1 and parts[0] not in SPLIT_BY_FILE else "/".join(parts)
    item.add_marker(pytest.mark.xdist_group(folder))


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
