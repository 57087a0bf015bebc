"""Several processes: ``torchrun --standalone --nproc_per_node 2 -m pws.classify`` (gloo on the CPU) trains
like one process with the same global batch.

Classification only: a detection DDP run would cost minutes of SSD iterations on 2 CPU cores, and the
engine code under test (launcher, sampler, all-reduces, rank-0 records) is the same for both apps.

Not bitwise: the two ranks' half batches give the same images per step, but DDP averages two half-batch
gradients where one process computes one whole-batch mean, so the sums are rounded differently (about
1e-7 relative per step). No augmentation (each rank draws its own random shifts) and PWS (no batch
statistics) so that nothing else differs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from .conftest import CASES, Case, load_checkpoint, read_json

DDP = ("data.augment=false",)
TORCHRUN = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


@pytest.mark.slow
def test_two_processes_train_as_one_with_the_same_global_batch(data_root: Path, tmp_path: Path) -> None:
    app = Case(**{**CASES["classify"].__dict__, "data_root": data_root})
    ddp_dir = tmp_path / "ddp"
    proc = app.subprocess(app.cli_args(ddp_dir, *DDP), launcher=TORCHRUN)
    out, err = proc.communicate(timeout=400)
    assert proc.returncode == 0, out[-3000:] + err[-3000:]
    ddp = read_json(ddp_dir / "metrics.json")
    assert ddp["status"] == "finished" and ddp["world_size"] == 2
    assert ddp["plan"]["per_rank_batch"] == 4 and ddp["plan"]["batch_size"] == 8
    assert (ddp_dir / ".hydra").is_dir() and not (ddp_dir / ".lock").exists()

    single = app.execute(tmp_path / "single", *DDP)
    assert single["world_size"] == 1
    assert len(ddp["history"]) == len(single["history"]) == 2
    for a, b in zip(ddp["history"], single["history"], strict=True):
        assert (a["epoch"], a["iter"], a["lr"]) == (b["epoch"], b["iter"], b["lr"])
        # the recorded training loss is the mean over all ranks' images, as one process's
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["top1_error"] == pytest.approx(b["top1_error"], abs=1e-6)
        assert a["test_loss"] == pytest.approx(b["test_loss"], rel=1e-4)
    assert ddp["top1_error"] == pytest.approx(single["top1_error"], abs=1e-6)
    assert ddp["evaluated"]["test_images"] == single["evaluated"]["test_images"] == 32  # each image once
    a = load_checkpoint(ddp_dir / "epoch_2.pth")["state_dict"]
    b = load_checkpoint(tmp_path / "single" / "epoch_2.pth")["state_dict"]
    assert a.keys() == b.keys()
    for k in b:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5, msg=k)
