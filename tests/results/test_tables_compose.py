"""Every cell of every table (both scales) composes with its app's Hydra config, as do the sweep presets.

Uses Hydra's compose API on configs/ (the apps' config root). A table whose app has no primary config yet
(configs/classify.yaml, configs/detect.yaml) is skipped with that reason.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from pws.paper.experiments import SCALES, TABLES, load_table
from pws.results.reproduce import LAUNCHERS
from pws.results.sweep import PRESETS, preset_grid

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
APP_CONFIG = {"pws.classify": "classify", "pws.detect": "detect"}


@pytest.fixture(scope="module", autouse=True)
def _hydra():
    """One Hydra initialization on configs/ for the whole module."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        yield
    GlobalHydra.instance().clear()


def _compose(app: str, overrides: list[str]):
    return compose(config_name=APP_CONFIG[app], overrides=overrides, return_hydra_config=True)


def _value(cfg, key: str):
    node = cfg
    for part in key.split("."):
        node = node[part]
    return node


def _assert_carries(cfg, overrides: list[str], where: str) -> None:
    """Every override holds in the composed ``cfg``: a group's choice, or the key's value (compared as a
    number when the config holds a number; interpolations are the app's to resolve)."""
    choices = cfg.hydra.runtime.choices
    for o in overrides:
        key, _, value = o.partition("=")
        if "${" in value:  # an interpolation (e.g. an environment variable): resolved by the app
            continue
        if key in choices:  # a group choice
            assert choices[key] == value, (where, o)
        else:
            got = _value(cfg, key)
            expect = {"true": True, "false": False}.get(value, value)
            if isinstance(got, (int, float)) and not isinstance(got, bool):
                expect = float(value)
            assert got == expect, (where, o, got)


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("table", TABLES)
def test_every_cell_composes(table: str, scale: str) -> None:
    t = load_table(table)
    for cell in t.cells(scale):
        overrides = [*cell.overrides, f"table={t.name}", f"cell={cell.id}", "seed=0"]
        cfg = _compose(cell.app, overrides)
        assert cfg.table == t.name and cfg.cell == cell.id
        _assert_carries(cfg, cell.overrides, cell.id)


def test_launcher_configs_compose() -> None:
    for name in LAUNCHERS.values():
        assert (CONFIGS / "hydra" / "launcher" / f"{name}.yaml").is_file()
    cfg = _compose("pws.classify", ["hydra/launcher=slurm"])
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    for knob in ("partition", "gpus_per_node", "timeout_min", "max_num_timeout", "signal_delay_s"):
        assert knob in launcher


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("scale", SCALES)
def test_sweep_presets_compose(preset: str, scale: str) -> None:
    base, (ykey, yvals), (xkey, xvals) = preset_grid(preset, scale)
    for y in yvals[:1] + yvals[-1:]:
        for x in xvals[:1] + xvals[-1:]:
            overrides = [*base, f"{ykey}={y}", f"{xkey}={x}"]
            _assert_carries(_compose(PRESETS[preset]["app"], overrides), overrides,
                            f"{preset}: {ykey}={y}, {xkey}={x}")


def test_sweep_presets_lrs_per_scale() -> None:
    """Full scale: the paper's LRs; smoke: LRs around the smoke scale's own 0.01 (the paper's are the
    stress case on digits), the lr preset keeping one of them (0.1) to show it."""
    for preset in PRESETS:
        full, smoke = preset_grid(preset, "full"), preset_grid(preset, "smoke")
        assert full[2] == ("optim.lr", ["0.05", "0.1", "0.2"])
        assert "0.01" in smoke[2][1] and full[1] == smoke[1]
        assert "scale.classify.epochs=6" in smoke[0] and not any("epochs" in o for o in full[0])
    assert preset_grid("gamma", "smoke")[2][1] == ["0.003", "0.01", "0.03"]
    assert preset_grid("lr", "smoke")[2][1] == ["0.003", "0.01", "0.03", "0.1"]
