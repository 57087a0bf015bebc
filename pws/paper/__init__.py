"""The paper as data: its published numbers and the definitions of its tables.

* :mod:`pws.paper.published` — ``results/published.yaml`` (the numbers the paper prints) and
  ``paper_summary`` (``paper/*``, ``delta/*`` of a run's wandb summary);
* :mod:`pws.paper.experiments` — ``experiments/tableN.yaml``: rows, columns, per-cell Hydra overrides;
* :mod:`pws.paper.files` — reading them: an unusable file raises ``BadFile`` naming it (and the line).

The lowest layer of the result code: ``pws.paper < pws.records < pws.results``. It reads YAML files and
imports nothing else of the project (no torch, matplotlib or wandb either), so the apps can compare a
run to the paper (``pws.records.wandb_run``) and the result tables can be built (``pws.results``) on top of
it.
"""

from pws.paper.experiments import Cell, Table, load_table, row_of
from pws.paper.files import BadFile
from pws.paper.published import paper_cell, paper_summary, paper_value, published

__all__ = [
    "BadFile", "Cell", "Table", "load_table", "paper_cell", "paper_summary", "paper_value", "published",
    "row_of",
]
