"""Let nerfstudio 1.1.5 load its own checkpoints under torch >= 2.6.

torch 2.6 made ``torch.load`` default to ``weights_only=True``; nerfstudio 1.1.5 saves numpy scalars
(from its LR schedulers) in checkpoints and loads them without ``weights_only=False``, so resume,
``ns-eval``, ``ns-render``, ``ns-viewer`` and ``ns-export`` fail with "Unsupported global". We allow
exactly those numpy types instead of turning the safety check off.
"""

from __future__ import annotations


def allow_nerfstudio_checkpoints() -> None:
    import numpy as np
    import torch

    if not hasattr(torch.serialization, "add_safe_globals"):
        return  # torch < 2.4 loads everything anyway
    try:
        from numpy.core.multiarray import scalar  # numpy < 2
    except ImportError:  # pragma: no cover - numpy 2
        from numpy._core.multiarray import scalar  # type: ignore[no-redef]
    allowed = [scalar, np.dtype]
    allowed += [getattr(np.dtypes, name) for name in ("Float64DType", "Float32DType", "Int64DType") if hasattr(np, "dtypes")]
    torch.serialization.add_safe_globals(allowed)
