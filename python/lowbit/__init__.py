"""lowbit: quantization, k-means codebooks and distillation for neural networks on CPUs.

The public API is documented in API.md; the C++ kernels live in lowbit._core.
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
    """The CPU and the kernel set in use: arch, features, isa, supported_isas, threads, note.

    ``note`` says what the build's kernels lack on this architecture (e.g. 32-bit ARM runs the
    scalar kernels only), or is ``""``.
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
    """Threads lowbit's kernels may use (>= 1). Also settable with LOWBIT_NUM_THREADS."""
    from ._checks import as_int

    _core.set_num_threads(as_int(n, "n", 1, 1024))


def get_num_threads() -> int:
    return _core.num_threads()


from .quant import QTensor, dequantize, quantize, sqnr  # noqa: E402
from .linear import PackedInt8, QuantizedLinear, matmul_int8, pack_int8  # noqa: E402
from . import distill, nn  # noqa: E402

# --- exports of each area (one line each; keep this block) ---
from .codebook import Codebook, CodebookLinear, ProductCodes, kmeans, product_quantize  # noqa: E402
from .deploy import export_runtime  # noqa: E402
from .calibrate import EntropyObserver, MinMaxObserver, MSEObserver, PercentileObserver, calibrate, observer  # noqa: E402
from .nonlinear import CompandedTensor, Pow2Tensor, compand, quantize_pow2, shift_matmul  # noqa: E402
from .compress import BinaryLinear, BinaryTensor, binarize, low_rank, prune_magnitude, prune_rows  # noqa: E402
from .io import load, save  # noqa: E402
from .models import QuantizedModel, layer_report, load_model, mixed_precision, quantize_model  # noqa: E402
from .onnx_export import export_onnx  # noqa: E402

__all__ = [
    "__version__", "cpu_info", "set_num_threads", "get_num_threads",
    "QTensor", "quantize", "dequantize", "sqnr", "matmul_int8", "pack_int8", "PackedInt8", "QuantizedLinear", "nn", "distill",
]
__all__ += ["calibrate", "observer", "MinMaxObserver", "PercentileObserver", "MSEObserver", "EntropyObserver"]
__all__ += ["Pow2Tensor", "CompandedTensor", "quantize_pow2", "compand", "shift_matmul"]
__all__ += ["BinaryTensor", "BinaryLinear", "binarize", "prune_magnitude", "prune_rows", "low_rank"]
__all__ += ["save", "load"]
__all__ += ["QuantizedModel", "quantize_model", "mixed_precision", "layer_report", "load_model"]
__all__ += ["export_onnx"]
__all__ += ["export_runtime"]
__all__ += ["Codebook", "CodebookLinear", "ProductCodes", "kmeans", "product_quantize"]

# Every type the file format stores registers now (not at the first save or load), so that
# its objects pickle through the format's bytes from the start (see lowbit.io).
from .io import _run_lazy as _register_file_types  # noqa: E402

_register_file_types()
del _register_file_types
