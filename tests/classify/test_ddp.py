"""Several processes: torchrun --nproc_per_node 2 (gloo, CPU) trains like one process with the whole batch."""

from __future__ import annotations

from pathlib import Path

import torch

from pws.classify.data import EpochSampler

from .conftest import REPO, app_subprocess, model_state, read_json, tiny

# No augmentation and no batch statistics (pws): the two ranks' half batches together are exactly the
# single process's batch, so the averaged gradients, the steps and the losses agree to float rounding.
DDP = [*tiny("plain_c", "digits", "pws"), "data.augment=false", "train.max_steps_per_epoch=3",
       "scale.classify.epochs=2"]  # fmt: skip


def test_ranks_split_each_batch() -> None:
    whole = EpochSampler(50, shuffle=True, seed=4)
    halves = [EpochSampler(50, shuffle=True, seed=4, rank=r, world_size=2) for r in (0, 1)]
    for s in (whole, *halves):
        s.set_epoch(3)
    order = list(whole)
    batch = 8
    for step in range(3):
        per_rank = [list(h)[step * batch // 2:(step + 1) * batch // 2] for h in halves]
        assert sorted(per_rank[0] + per_rank[1]) == sorted(order[step * batch:(step + 1) * batch])
    resumed = EpochSampler(50, shuffle=True, seed=4)
    resumed.set_epoch(3, start=16)
    assert list(resumed) == order[16:]


def test_ddp_gloo_two_processes_matches_one(tmp_path: Path, data_root: Path, run_tiny) -> None:
    runs = tmp_path / "runs"
    proc = app_subprocess(
        ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "pws.classify",
         f"runs_root={runs}", f"data_root={data_root}", *DDP],
        cwd=REPO,
    )  # fmt: skip
    out, err = proc.communicate(timeout=400)
    assert proc.returncode == 0, out + err
    records = list(runs.rglob("metrics.json"))
    assert len(records) == 1
    ddp_dir = records[0].parent
    ddp = read_json(records[0])
    assert ddp["status"] == "finished" and ddp["world_size"] == 2
    assert ddp["plan"]["per_rank_batch"] == 4 and ddp["plan"]["batch_size"] == 8
    assert len(list(runs.rglob(".hydra"))) == 1  # rank 0 alone writes Hydra's files

    single = run_tiny(DDP, tmp_path / "single")
    assert single["world_size"] == 1
    assert abs(ddp["first_step_loss"] - single["first_step_loss"]) <= 1e-5 * abs(single["first_step_loss"])
    for a, b in zip(ddp["history"], single["history"], strict=True):
        assert abs(a["train_loss"] - b["train_loss"]) <= 1e-4 * abs(b["train_loss"])
    a, b = model_state(ddp_dir), model_state(tmp_path / "single")
    for k in b:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5, msg=k)
