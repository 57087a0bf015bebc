"""``python -m pws.diagnostics figure1|figure2|figure6 --scale smoke|full`` (:mod:`pws.diagnostics.cli`)."""

import sys

from pws.diagnostics.cli import main

sys.exit(main())
