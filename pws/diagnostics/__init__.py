"""Variance-transmission diagnostics: the probe of the paper's Figures 1, 2 and 6 and eqs. (5), (13), (14).

* :class:`VarianceProbe` (:mod:`pws.diagnostics.probe`) -- read-only forward/backward hooks on every conv
  of any ``nn.Module``, one row of numbers per conv layer and step;
* :mod:`pws.diagnostics.mmengine_hook` -- the same probe as an mmengine ``Hook`` (``VarianceProbeHook``) for
  detectors run by mmengine; importing it imports mmengine, importing this package does not;
* :mod:`pws.diagnostics.measurements`, :mod:`pws.diagnostics.figures`, :mod:`pws.diagnostics.cli` -- the
  measurements, CSV tables and PNGs of Figures 1, 2, 6: ``python -m pws.diagnostics figure1 --scale smoke``.
"""

from pws.diagnostics.probe import ROW_COLUMNS, VarianceProbe, write_rows

__all__ = ["ROW_COLUMNS", "VarianceProbe", "write_rows"]
