"""Loading mmengine's own checkpoints under torch >= 2.6 (``torch.load`` defaults to ``weights_only=True``).

mmengine 0.10.7 calls ``torch.load(filename, map_location=...)`` without ``weights_only``. torch >= 2.6 then
uses its weights-only unpickler, which refuses the Python objects mmengine itself pickles into every
checkpoint: the message hub's :class:`mmengine.logging.HistoryBuffer` (loss and time histories) and the
numpy arrays, dtypes and scalars inside it. Resuming a run would fail with "Weights only load failed".

The fix here is explicit and scoped, not a global switch: :func:`trusted_checkpoint_types` lists exactly
those types (and ``getattr``, with which a HistoryBuffer pickles its statistics methods), and
:func:`mmengine_checkpoints` is a context manager that allows them to the weights-only
unpickler (``torch.serialization.safe_globals``) while the Runner trains or tests. Loads stay weights-only:
any other pickled object is still refused, and ``weights_only=False`` is never used.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch


def trusted_checkpoint_types() -> list[Any]:
    """The non-tensor types of an mmengine checkpoint: HistoryBuffer and the numpy pieces it holds."""
    from mmengine.logging import HistoryBuffer

    # getattr: a HistoryBuffer pickles its statistics methods as getattr(HistoryBuffer, 'min'), ... The
    # weights-only unpickler still calls only allow-listed callables, so what getattr returns is never run.
    types: list[Any] = [HistoryBuffer, getattr, np.ndarray, np.dtype]
    try:  # numpy >= 2
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct, scalar  # type: ignore[no-redef]
    types += [_reconstruct, scalar]
    # The dtype classes (numpy.dtypes.Float64DType, ...) that pickled dtypes reconstruct from.
    for name in ("float64", "float32", "float16", "int64", "int32", "int16", "int8", "uint8", "bool_"):
        types.append(type(np.dtype(getattr(np, name))))
    return types


@contextlib.contextmanager
def mmengine_checkpoints() -> Iterator[None]:
    """Within this block, ``torch.load`` accepts mmengine's checkpoints and stays weights-only."""
    safe_globals = getattr(torch.serialization, "safe_globals", None)
    if safe_globals is None:  # torch < 2.5: weights_only was not the default
        yield
        return
    with safe_globals(trusted_checkpoint_types()):
        yield
