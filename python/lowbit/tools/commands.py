"""The bodies of `lowbit quantize` and `lowbit report`."""
from __future__ import annotations

import functools
import os
import sys

import numpy as np

from .. import io as _io
from .._checks import as_float32
from ..models import linear_indices, load_model, model_nbytes, quantize_model
from ..models.loaders import _UNSET
from ..quant import sqnr
from .evaluate import predict
from .report import format_report, layer_report, plot_report

# --------------------------------------------------------------------------- command line

def _cli_errors(fn):
    """Runs a command body: bad input (missing file, wrong format, wrong shapes) prints one line to
    stderr and returns exit code 2 instead of a traceback."""
    @functools.wraps(fn)
    def run(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (ValueError, TypeError, OSError, ImportError) as e:
            print(f"lowbit {fn.__name__[4:]}: error: {e}", file=sys.stderr)
            return 2

    return run


def _load_npy(path, what):
    p = os.fspath(path)
    try:
        return np.load(p, allow_pickle=False)
    except ValueError as e:
        raise ValueError(f"{what} {p!r} is not a .npy array file without pickled objects ({e})") from None


@_cli_errors
def cli_quantize(model_path, calib_path, *, method="minmax", out=None, bits=8, per_channel=True,
                 stream=None, activation=_UNSET) -> int:
    """`lowbit quantize MODEL --calib DATA.npy --method M -o OUT`: loads, quantizes, saves."""
    stream = stream or sys.stdout
    model = load_model(model_path, activation=activation)
    if not linear_indices(model):
        raise ValueError(f"{model_path} has no float Linear layers to quantize")
    calib = as_float32(_load_npy(calib_path, "--calib"), "the calibration data")
    qm = quantize_model(model, calib, method=method, bits=bits, per_channel=per_channel)
    out = out or os.path.splitext(os.fspath(model_path))[0] + f".int{bits}.lowbit"
    _io.save(qm, out)
    fb, qb = model_nbytes(model), model_nbytes(qm)
    yf, yq = predict(model, calib), predict(qm, calib)
    agree = float(np.mean(yf.argmax(-1) == yq.argmax(-1)))
    print(f"quantized {len(linear_indices(model))} Linear layers ({method}, {bits}-bit weights, "
          f"static uint8 activations): {fb} -> {qb} bytes ({fb / max(qb, 1):.2f}x smaller)", file=stream)
    print(f"on the calibration data: output SQNR {sqnr(yf, yq):.1f} dB, argmax agreement "
          f"{100 * agree:.2f}%", file=stream)
    print(f"wrote {out}", file=stream)
    return 0


@_cli_errors
def cli_report(model_path, calib_path, *, labels_path=None, method="minmax", bits=8, png=None,
               stream=None, activation=_UNSET) -> int:
    """`lowbit report MODEL --calib DATA.npy`: the per-layer table, and a PNG when matplotlib is
    installed (`png`, default MODEL.report.png)."""
    stream = stream or sys.stdout
    model = load_model(model_path, activation=activation)
    if not linear_indices(model):
        raise ValueError(f"{model_path} has no float Linear layers to report on")
    calib = as_float32(_load_npy(calib_path, "--calib"), "the calibration data")
    labels = None if labels_path is None else _load_npy(labels_path, "--labels")
    rows = layer_report(model, calib, labels, method=method, bits=bits)
    print(format_report(rows), file=stream)
    if labels is None:
        print("(sensitivity: drop in agreement with the float model's own predictions, in points; "
              "pass --labels for accuracy)", file=stream)
    png = png or os.path.splitext(os.fspath(model_path))[0] + ".report.png"
    try:
        plot_report(rows, png)
        print(f"wrote {png}", file=stream)
    except ImportError as e:
        print(f"(no plot: {e})", file=stream)
    return 0
