"""`make sweep-gamma`'s grid has the paper's suggestion gamma="auto" (0.1 sqrt(n_l / 2), PWSConv2d) as a
row: the multirun passes it, the classification app takes it; the table, CSV and heatmap label it `auto`."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib.figure
from tables_fakeruns import make_run

from pws.classify.config import make_plan
from pws.engine.compose import compose_config
from pws.nn.pws_conv import auto_gamma
from pws.results.sweep import preset_grid, render_sweep, sweep_command

OVERRIDES, (_, GAMMAS), LRS = preset_grid("gamma", "smoke")


def test_the_default_grid_has_an_auto_row_the_app_takes(tmp_path: Path) -> None:
    assert GAMMAS[-1] == "auto" and GAMMAS[:-1] == ["1e-5", "1e-4", "1e-3", "1e-2"]
    cmd = sweep_command("pws.classify", OVERRIDES, ("norm.gamma", GAMMAS), LRS, seeds=[0], sweep_dir=tmp_path)
    assert "norm.gamma=1e-5,1e-4,1e-3,1e-2,auto" in cmd
    cfg = compose_config("classify", [*OVERRIDES, "norm.gamma=auto"])
    method = make_plan(cfg, world_size=1).method
    assert method.options["gamma"] == "auto"
    conv = method.conv(16, 8, 3)
    assert conv.gamma_auto and conv.gamma == auto_gamma(16 * 3 * 3)


def test_the_auto_row_is_rendered_with_its_label(tmp_path: Path, monkeypatch) -> None:
    root = tmp_path / "sweep-gamma"
    errors = {("1e-05", 0.05): 30.0, ("0.001", 0.05): 20.0, ("auto", 0.05): 10.0, ("auto", 0.1): 12.0}
    for (gamma, lr), err in errors.items():
        make_run(root, None, None, 0, "finished", {"top1_error": err}, subdir=f"gamma{gamma}/lr{lr}/seed0",
                 config={"norm": {"method": "pws", "gamma": gamma if gamma == "auto" else float(gamma)},
                         "optim": {"lr": lr}})
    saved = []
    savefig = matplotlib.figure.Figure.savefig
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig",
                        lambda self, *a, **k: (saved.append(self), savefig(self, *a, **k))[1])
    res, paths = render_sweep(root, "norm.gamma", "optim.lr", "top1_error", out_dir=tmp_path / "out",
                              stem="sweep_gamma", yorder=GAMMAS, xorder=["0.05", "0.1"])
    assert res.yvals[-1] == "auto" and res.cells[("auto", 0.1)].values == [12.0]
    rows = {(r["norm.gamma"], r["optim.lr"]): r for r in csv.DictReader(paths["csv"].open())}
    assert float(rows["auto", "0.05"]["mean"]) == 10.0 and float(rows["auto", "0.1"]["mean"]) == 12.0
    assert any(ln.startswith("| auto | 10.00 | 12.00 |") for ln in paths["md"].read_text().splitlines())
    (fig,) = saved
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["1e-05", "0.0001", "0.001", "0.01", "auto"]
    image = ax.get_images()[0].get_array()
    assert float(image[labels.index("auto"), 0]) == 10.0 and float(image[labels.index("auto"), 1]) == 12.0
