"""Resuming mmengine's own checkpoints under torch's weights-only loading (the explicit, scoped fix)."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from detection_stack import require_detection_stack

require_detection_stack()

from mmengine.logging import HistoryBuffer, MessageHub  # noqa: E402
from mmengine.runner.checkpoint import _load_checkpoint  # noqa: E402

from pws.engine.checkpoints import mmengine_checkpoints  # noqa: E402


def _checkpoint(path: Path) -> Path:
    hub = MessageHub("pws-test-hub")
    for i in range(3):
        hub.update_scalar("train/loss", 1.0 / (i + 1))
    hub.update_info("iter", 3)
    torch.save(
        {
            "meta": {"epoch": 1, "iter": 3},
            "state_dict": {"w": torch.ones(2)},
            "message_hub": hub.state_dict(),
        },
        path,
    )
    return path


def test_torch_refuses_mmengine_checkpoints_by_default(tmp_path: Path) -> None:
    path = _checkpoint(tmp_path / "epoch_1.pth")
    if "weights_only" not in torch.load.__doc__:  # pragma: no cover - torch < 1.13
        pytest.skip("this torch has no weights-only loading")
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)


def test_mmengine_loads_its_checkpoints_inside_the_context(tmp_path: Path) -> None:
    path = _checkpoint(tmp_path / "epoch_1.pth")
    with mmengine_checkpoints():
        ckpt = _load_checkpoint(str(path), map_location="cpu")
    assert isinstance(ckpt["message_hub"]["log_scalars"]["train/loss"], HistoryBuffer)
    assert ckpt["message_hub"]["log_scalars"]["train/loss"].current() == pytest.approx(1 / 3)


def test_the_load_stays_weights_only(tmp_path: Path) -> None:
    """Anything beyond mmengine's own types is still refused inside the context."""
    path = tmp_path / "evil.pth"
    torch.save({"obj": Path("x")}, path)
    with mmengine_checkpoints(), pytest.raises(pickle.UnpicklingError):
        torch.load(path)
