"""The paper's tables end to end: published numbers, table definitions, collection of runs, rendering.

* :mod:`pws.results.published` — ``results/published.yaml`` and ``paper_summary`` (``paper/*``, ``delta/*``
  for a run's wandb summary);
* :mod:`pws.results.experiments` — ``experiments/tableN.yaml``: rows, columns, per-cell Hydra overrides;
* :mod:`pws.results.collect` — run directories below any folder (``metrics.json`` + ``.hydra/``);
* :mod:`pws.results.aggregate`, :mod:`pws.results.render`, :mod:`pws.results.plots`,
  :mod:`pws.results.report` — the reproduced table as Markdown, CSV, LaTeX, PNG and a wandb Table;
* :mod:`pws.results.reproduce` — ``make reproduce-tableN``: the table's grid as Hydra multiruns;
* :mod:`pws.results.sweep` — ``make sweep-gamma`` / ``sweep-lr``: a sweep table and heatmap.

Importing this package is cheap (no torch, matplotlib or wandb): the apps use ``paper_summary`` through
``pws.runs.tracking``.
"""

from pws.results.experiments import Cell, Table, load_table, row_of
from pws.results.published import paper_cell, paper_summary, paper_value, published

__all__ = ["Cell", "Table", "load_table", "paper_cell", "paper_summary", "paper_value", "published", "row_of"]
