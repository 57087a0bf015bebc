"""The diagnostics tests run with one intra-op thread (their models are small; on a shared 2-core machine
two threads contending with other processes were slower)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
