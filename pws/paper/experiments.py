"""The paper's tables as data: ``experiments/tableN.yaml`` (rows, columns, per-cell Hydra overrides).

A table has rows and (run) columns; every (column, row) pair is one *cell*, i.e. one run per seed, with
the cell id ``<column>/<row>`` (``<row>`` when the table has a single column). The printed table has
*display* columns, each reading one metric of the runs of one run column (Table 1's FPS column reads
``train_fps`` of the batch-8 runs; Table 3's three AP columns read three metrics of the same run).

The overrides of a cell at a scale are, in order: the scale's, the column's, the row's, and those of a
reduced grid when one is selected. Each is a Hydra override string for the table's app
(``python -m pws.classify`` or ``python -m pws.detect``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from pws.paper.files import BadFile, read_yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS_DIR = Path(os.environ.get("PWS_EXPERIMENTS_DIR", REPO_ROOT / "experiments"))
TABLES = ("table1", "table2", "table3", "table4", "table5")
SCALES = ("smoke", "full")


@dataclass(frozen=True)
class Cell:
    """One cell of a table: one run per seed."""

    table: str
    id: str
    row: str
    column: str
    app: str
    overrides: tuple[str, ...]

    @property
    def label(self) -> str:
        return self.id


@dataclass(frozen=True)
class Display:
    """One printed column: ``metric`` of the runs of run column ``column``."""

    label: str
    column: str
    metric: str
    higher_is_better: bool
    decimals: int


@dataclass
class Table:
    """One table of the paper, loaded from ``experiments/<name>.yaml``."""

    name: str
    title: str
    app: str
    metric: str
    higher_is_better: bool
    decimals: int
    info_columns: list[str]
    rows: dict[str, dict[str, Any]]
    columns: dict[str, dict[str, Any]]
    display: list[Display]
    scales: dict[str, dict[str, Any]]
    grids: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: Path | None = None

    # -- ids -------------------------------------------------------------------------------------
    def cell_id(self, column: str, row: str) -> str:
        return f"{column}/{row}" if column else row

    def split_cell(self, cell_id: str) -> tuple[str, str]:
        """(column, row) of a cell id; raises KeyError for an id that is not a cell of this table."""
        for column in self.columns:
            for row in self.rows:
                if self.cell_id(column, row) == cell_id:
                    return column, row
        raise KeyError(f"{self.name} has no cell {cell_id!r}")

    def row_label(self, row: str) -> str:
        info = self.rows[row].get("info") or [row]
        return " ".join(str(x) for x in info if str(x))

    def metrics(self) -> list[str]:
        seen: list[str] = []
        for d in self.display:
            if d.metric not in seen:
                seen.append(d.metric)
        return seen

    # -- grid ------------------------------------------------------------------------------------
    def grid(self, name: str | None = None) -> tuple[list[str], list[str], list[str], str | None]:
        """(rows, columns, extra overrides, note) of the full grid or of the reduced grid ``name``."""
        if name is None:
            return list(self.rows), list(self.columns), [], None
        if name not in self.grids:
            raise KeyError(f"{self.name} has no grid {name!r}; grids: {sorted(self.grids) or 'none'}")
        g = self.grids[name]
        rows = list(g.get("rows") or self.rows)
        cols = list(g.get("columns") or self.columns)
        for r in rows:
            if r not in self.rows:
                raise KeyError(f"grid {name!r} of {self.name}: unknown row {r!r}")
        for c in cols:
            if c not in self.columns:
                raise KeyError(f"grid {name!r} of {self.name}: unknown column {c!r}")
        return rows, cols, list(g.get("overrides") or []), g.get("note")

    def cells(self, scale: str, grid: str | None = None) -> list[Cell]:
        """Every cell of the (possibly reduced) grid at ``scale``, row-major in the table's order."""
        if scale not in self.scales:
            raise KeyError(f"{self.name} has no scale {scale!r}; scales: {sorted(self.scales)}")
        rows, cols, extra, _ = self.grid(grid)
        out = []
        for row in rows:
            for column in cols:
                out.append(Cell(
                    table=self.name,
                    id=self.cell_id(column, row),
                    row=row,
                    column=column,
                    app=self.app,
                    overrides=tuple(self.overrides(column, row, scale) + extra),
                ))
        return out

    def overrides(self, column: str, row: str, scale: str) -> list[str]:
        """The Hydra overrides of cell (column, row) at ``scale``: scale, then column, then row."""
        scale_cfg = self.scales[scale]
        col_cfg = self.columns[column]
        row_cfg = self.rows[row]
        ov = list(scale_cfg.get("overrides") or [])
        for part in (col_cfg, row_cfg):
            ov += list(part.get("overrides") or [])
            ov += list((part.get("scale_overrides") or {}).get(scale) or [])
        return ov

    def setting(self, scale: str) -> str:
        return " ".join(str(self.scales[scale].get("setting", "")).split())


def _load_table(path: Path) -> Table:
    """The table defined in ``path``; :class:`BadFile` naming the file for anything wrong with it."""
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise BadFile(path, f"not a table definition: a YAML {type(raw).__name__}, not a mapping")
    try:
        return _table_from(raw, path)
    except BadFile:
        raise
    except KeyError as e:
        raise BadFile(path, f"no key {e} where the table definition needs one") from e
    except (TypeError, ValueError, AttributeError) as e:
        raise BadFile(path, f"not a valid table definition ({type(e).__name__}: {e})") from e


def _table_from(raw: dict[str, Any], path: Path) -> Table:
    name = raw["table"]
    metric = raw["metric"]
    hib = bool(raw.get("higher_is_better", True))
    decimals = int(raw.get("decimals", 2))
    columns = raw.get("columns") or {"": {"label": raw.get("title", name)}}
    only_column = next(iter(columns)) if len(columns) == 1 else None
    display = []
    for d in raw.get("display") or [{"label": c.get("label", k), "column": k} for k, c in columns.items()]:
        column = d.get("column", only_column)
        if column not in columns:
            raise BadFile(path, f"display column {d} names no run column (columns: {list(columns)})")
        display.append(Display(
            label=str(d.get("label", column)),
            column=column,
            metric=d.get("metric", metric),
            higher_is_better=bool(d.get("higher_is_better", hib)),
            decimals=int(d.get("decimals", decimals)),
        ))
    rows = raw["rows"]
    info_columns = list(raw.get("info_columns") or ["Methods"])
    for rid, r in rows.items():
        info = r.setdefault("info", [rid])
        if len(info) != len(info_columns):
            raise BadFile(path, f"row {rid!r} has {len(info)} info fields for {len(info_columns)} "
                                f"info columns {info_columns}")
    return Table(
        name=name, title=raw.get("title", name), app=raw["app"], metric=metric, higher_is_better=hib,
        decimals=decimals, info_columns=info_columns, rows=rows, columns=columns, display=display,
        scales=raw["scales"], grids=raw.get("grids") or {}, source=path,
    )


@cache
def _load_cached(path: str, mtime: float) -> Table:
    return _load_table(Path(path))


def load_table(name: str, experiments_dir: str | os.PathLike[str] | None = None) -> Table:
    """The table ``name`` (``table1`` .. ``table5`` or a path to a table YAML).

    A definition that cannot be read or used raises :class:`~pws.paper.files.BadFile` naming the file
    (and the line of a YAML syntax error); a missing one ``FileNotFoundError``."""
    path = Path(name)
    if not path.suffix:
        path = Path(experiments_dir or EXPERIMENTS_DIR) / f"{name}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"no table definition {path} (tables: {', '.join(TABLES)})")
    return _load_cached(str(path), path.stat().st_mtime)


def all_tables(experiments_dir: str | os.PathLike[str] | None = None) -> list[Table]:
    return [load_table(t, experiments_dir) for t in TABLES]


def row_of(table: str, cell: str) -> str | None:
    """The row id of ``cell`` in ``table`` (wandb's group), or None if unknown."""
    try:
        return load_table(table).split_cell(cell)[1]
    except (KeyError, FileNotFoundError, ValueError):
        return None
