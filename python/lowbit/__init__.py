"""lowbit: quantization, k-means codebooks and distillation for neural networks on CPUs.

The package is layered; each layer imports only the ones below it (docs/architecture.rst, checked
by tests/python/test_layers.py):

1. ``lowbit._core`` (the C++ kernels), ``lowbit.io`` (the file format), ``lowbit._checks``;
2. the tensor and layer API: quant, linear, codebook, nonlinear, compress, observers;
3. ``lowbit.models``: forward-only layers, Sequential, QuantizedModel, loaders, post-training
   quantization;
4. export: ``lowbit.deploy`` (the C++ runtime's files), ``lowbit.onnx_export``;
5. learning: ``lowbit.nn`` (backward, losses, optimizers, fit, QAT) and ``lowbit.distill``;
6. ``lowbit.tools``: the command line, the demo, the per-layer report, mixed precision.

The reference documentation is in docs/ (``docs/api.rst`` lists every public name).
"""
from __future__ import annotations

import os as _os

from . import _core

__version__ = "0.1.0"


def _apply_isa_override() -> None:
    want = _os.environ.get("LOWBIT_ISA")
    if want is None or want == "":
        return
    if not _core.set_isa(want):
        raise ValueError(
            f"LOWBIT_ISA={want!r} is not a kernel set this CPU supports; "
            f"supported: {', '.join(_core.supported_isas())}"
        )


_apply_isa_override()


def cpu_info() -> dict:
    """The CPU and the kernel set in use.

    Returns
    -------
    dict
        ``arch`` (str), ``features`` (list of str), ``isa`` (the kernel set in use),
        ``supported_isas`` (list of str), ``threads`` (int) and ``note``: what the build's
        kernels lack on this architecture (e.g. 32-bit ARM runs the scalar kernels only), or
        ``""``.
    """
    return {
        "arch": _core.cpu_arch(),
        "features": list(_core.cpu_features()),
        "isa": _core.active_isa(),
        "supported_isas": list(_core.supported_isas()),
        "threads": _core.num_threads(),
        "note": _core.cpu_note(),
    }


def set_num_threads(n: int) -> None:
    """Set the number of threads lowbit's kernels may use.

    Also settable with the environment variable ``LOWBIT_NUM_THREADS``. Results never depend
    on the thread count.

    Parameters
    ----------
    n : int
        The number of threads, 1..1024.

    Raises
    ------
    TypeError
        If ``n`` is not an integer.
    ValueError
        If ``n`` is not in 1..1024.
    """
    from ._checks import as_int

    _core.set_num_threads(as_int(n, "n", 1, 1024))


def get_num_threads() -> int:
    """The number of threads lowbit's kernels may use.

    Returns
    -------
    int
        As set by :func:`set_num_threads`; by default ``LOWBIT_NUM_THREADS`` or the number of
        cores.
    """
    return _core.num_threads()


from .quant import QTensor, dequantize, quantize, sqnr  # noqa: E402
from .linear import PackedInt8, QuantizedLinear, matmul_int8, pack_int8  # noqa: E402
from .int4 import Int4Linear  # noqa: E402

# --- exports of each area (one line each; keep this block) ---
from .codebook import Codebook, CodebookLinear, ProductCodes, kmeans, product_quantize  # noqa: E402
from .deploy import export_runtime  # noqa: E402
from .observers import EntropyObserver, MinMaxObserver, MSEObserver, PercentileObserver, calibrate, observer  # noqa: E402
from .nonlinear import CompandedTensor, Pow2Tensor, compand, quantize_pow2, shift_matmul  # noqa: E402
from .compress import BinaryLinear, BinaryTensor, binarize, low_rank, prune_magnitude, prune_rows  # noqa: E402
from .io import load, save  # noqa: E402
from .models import QuantizedModel, load_model, quantize_model  # noqa: E402
from .tools.report import layer_report  # noqa: E402
from .tools.mixed import mixed_precision  # noqa: E402
from .onnx_export import export_onnx  # noqa: E402
from . import distill, models, nn  # noqa: E402

__all__ = [
    "__version__", "cpu_info", "set_num_threads", "get_num_threads",
    "QTensor", "quantize", "dequantize", "sqnr", "matmul_int8", "pack_int8", "PackedInt8", "QuantizedLinear", "nn", "distill", "models",
]
__all__ += ["calibrate", "observer", "MinMaxObserver", "PercentileObserver", "MSEObserver", "EntropyObserver"]
__all__ += ["Pow2Tensor", "CompandedTensor", "quantize_pow2", "compand", "shift_matmul"]
__all__ += ["BinaryTensor", "BinaryLinear", "binarize", "prune_magnitude", "prune_rows", "low_rank"]
__all__ += ["save", "load"]
__all__ += ["QuantizedModel", "quantize_model", "mixed_precision", "layer_report", "load_model"]
__all__ += ["export_onnx"]
__all__ += ["export_runtime"]
__all__ += ["Int4Linear"]
__all__ += ["Codebook", "CodebookLinear", "ProductCodes", "kmeans", "product_quantize"]

