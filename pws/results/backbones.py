"""Where a cell's pretrained backbone comes from: Table 3's Mask R-CNN starts from Table 5's ResNet-50.

The paper: "For Mask R-CNN we use pretrained model" -- the authors' own ImageNet ResNet-50 of the same
method. A table row names the run it starts from with ``backbone_from: {table: table5, cell: <method>}``
(experiments/table3.yaml). At full scale the table driver (:mod:`pws.results.reproduce`) then

* takes an explicit ``model.backbone_checkpoint=<file>`` (``--override``) as given, else
* looks for that table's run ``<runs>/full/<table>/<cell>/seed<k>`` (``k`` = ``--backbone-seed``, 0 by
  default), exports it once to ``<run dir>/export/mmdet_backbone.pth`` (:func:`ensure_exported`,
  :func:`pws.transfer.backbone.export_backbone`; again only when the run has a newer checkpoint) and passes
  ``model.backbone_checkpoint=<that file>`` to the cell;
* a run that is not there (or not finished) keeps the cell waiting: it is not launched, and its line
  names the run directory it waits for and the command that makes it; the table's other cells (its SSD
  rows, which start from scratch) run.

The smoke scale trains the backbone from scratch (no Table 5 run needed); the dry run says so.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pws.engine.checkpoints import latest_checkpoint
from pws.paper.experiments import Cell, Table
from pws.results.collect import load_run, override_dict
from pws.results.render import runs_dir
from pws.transfer.backbone import export_backbone

CHECKPOINT_KEY = "model.backbone_checkpoint"
EXPORT_FILE = Path("export") / "mmdet_backbone.pth"  # a subfolder: never taken for the run's own *.pth


@dataclass(frozen=True)
class BackboneSource:
    """Where one cell's backbone comes from."""

    kind: str                     # "explicit" | "run" | "missing" | "scratch"
    note: str                     # the printed line
    checkpoint: Path | None = None  # the file passed as model.backbone_checkpoint
    run_dir: Path | None = None   # the run it is exported from ("run", "missing")
    command: str | None = None    # the command that makes the missing run

    @property
    def override(self) -> str | None:
        """The override the driver adds (None when the cell keeps its own)."""
        return f"{CHECKPOINT_KEY}={self.checkpoint}" if self.kind == "run" else None


def backbone_spec(table: Table, cell: Cell) -> dict[str, Any] | None:
    spec = table.rows.get(cell.row, {}).get("backbone_from")
    return dict(spec) if spec else None


def uses_backbones(table: Table) -> bool:
    return any(r.get("backbone_from") for r in table.rows.values())


def _make_command(table: str, cell: str, seed: int, runs_root: Path) -> str:
    cmd = f"python scripts/reproduce_table.py {table} --scale full --seeds {seed} --cells {cell}"
    if runs_root.resolve() != Path("runs").resolve():
        cmd += f" --runs {runs_root}"
    return cmd


def resolve(
    table: Table,
    cell: Cell,
    scale: str,
    overrides: list[str],
    runs_root: str | os.PathLike[str],
    seed: int = 0,
) -> BackboneSource | None:
    """The backbone of ``cell`` run with ``overrides``; None for a table without pretrained backbones."""
    given = override_dict(overrides).get(CHECKPOINT_KEY)
    if given not in (None, "", "null", "None"):
        return BackboneSource("explicit", f"explicit {CHECKPOINT_KEY}={given}", checkpoint=Path(str(given)))
    spec = backbone_spec(table, cell)
    if spec is None:
        return BackboneSource("scratch", "from scratch (as the paper)") if uses_backbones(table) else None
    if scale != "full":
        return BackboneSource("scratch", f"from scratch ({scale} scale: no {spec['table']} run needed; "
                                         f"the full scale starts from {spec['table']}'s {spec['cell']})")

    root = Path(runs_root)
    run_dir = (runs_dir(root, "full", spec["table"], None) / spec["cell"] / f"seed{seed}").resolve()
    command = _make_command(spec["table"], spec["cell"], seed, root)
    run = load_run(run_dir)
    if run.status != "finished":
        state = "not there" if not run_dir.exists() else f"{run.status}: {run.note}"
        return BackboneSource(
            "missing", f"waits for {spec['table']}'s run {run_dir} ({state}); make it with: {command}",
            run_dir=run_dir, command=command)
    checkpoint = run_dir / EXPORT_FILE
    done = "exported already" if _fresh(run_dir, checkpoint) else "exported on launch"
    return BackboneSource("run", f"{spec['table']}'s run {run_dir} -> {checkpoint} ({done})",
                          checkpoint=checkpoint, run_dir=run_dir)


def _fresh(run_dir: Path, exported: Path) -> bool:
    """Whether ``exported`` is there and not older than the run's newest checkpoint."""
    if not exported.is_file():
        return False

    source = latest_checkpoint(run_dir)
    return source is None or exported.stat().st_mtime_ns >= source.stat().st_mtime_ns


def ensure_exported(source: BackboneSource) -> tuple[Path, bool]:
    """The exported checkpoint of a ``"run"`` source, written if missing or stale; (path, written now)."""
    assert source.kind == "run" and source.run_dir is not None and source.checkpoint is not None
    if _fresh(source.run_dir, source.checkpoint):
        return source.checkpoint, False

    tmp = source.checkpoint.with_name(source.checkpoint.name + ".tmp")
    export_backbone(source.run_dir, tmp)
    os.replace(tmp, source.checkpoint)
    return source.checkpoint, True
