#!/usr/bin/env python
"""Create the wandb report of a paper table (pws.results.dashboard): ours vs paper per printed column, the
runs grouped by table row, the training curves per method.

    python scripts/wandb_dashboard.py table4 --entity ENTITY [--project pws-table4] [--scale full|smoke]
    python scripts/wandb_dashboard.py all --entity ENTITY           # one report per table, 1-5
    python scripts/wandb_dashboard.py table4 --entity ENTITY --dry-run [--out FILE]   # JSON, no network

Saving needs network and a wandb login (WANDB_API_KEY or `wandb login`); --dry-run needs neither.
"""

from __future__ import annotations

import sys

from pws.results.dashboard import main

if __name__ == "__main__":
    sys.exit(main())
