"""layer_report: per-Linear SQNR, sizes, latency and sensitivity; format_report and plot_report."""
from __future__ import annotations

import os

import numpy as np

from .._checks import as_int
from ..models import QuantizedModel, as_model, calibrate_model, layer_nbytes, weight_of
from ..models.graph import layer_name
from ..models.ptq import batches, quantized_linear
from ..quant import sqnr
from .evaluate import labels_array, mean_kl, predict, time_call

def layer_inputs(model, x) -> list:
    """The input of every layer of `model` for data x."""
    ins, h = [], x
    for layer in model.layers:
        ins.append(h)
        h = np.asarray(layer(h), np.float32)
    return ins


def with_layer(model, i, new_layer):
    layers = list(model.layers)
    layers[i] = new_layer
    return QuantizedModel(layers)


def layer_report(model, calibration_data, labels=None, *, method="minmax", bits=8, per_channel=True,
                 repeat=5, max_rows=2048) -> list[dict]:
    """Per-layer report: what quantizing each float Linear alone costs.

    Each float Linear is quantized as :func:`lowbit.quantize_model` would (``bits``-bit
    weights, static uint8 activations calibrated with ``method``) and compared with the float
    layer. The calibration data (first ``max_rows`` rows) is used for everything.

    Parameters
    ----------
    model : Sequential, list of layers or str
        The float model (anything :func:`lowbit.models.as_model` accepts); it is not modified.
    calibration_data : array_like or iterable of array_like
        A float array ``(N, features)`` or an iterable of float batches, finite.
    labels : array_like of int, shape (N,), optional
        Class labels of the calibration data (None: the float model's own predictions are the
        labels, and accuracy is agreement).
    method : {"minmax", "percentile", "mse", "entropy"}, default "minmax"
        How the activation ranges are calibrated.
    bits : int, default 8
        Weight bits, 2..8.
    per_channel : bool, default True
        One weight scale per output channel, else one per layer.
    repeat : int, default 5
        Timing samples per layer, 1..1000.
    max_rows : int, default 2048
        Rows of the calibration data used, >= 1.

    Returns
    -------
    list of dict
        One dict per float Linear of ``model``: ``index``, ``name``, ``in_features``,
        ``out_features``; ``weight_sqnr_db`` (dequantized vs float weight);
        ``output_sqnr_db`` (the quantized layer vs the float layer on the layer's float inputs
        over the calibration data); ``float_bytes``, ``quant_bytes``; ``float_ms``,
        ``quant_ms`` (time of one call on the calibration batch, as the benchmarks time: after
        a warm-up, the median over ``repeat`` samples of at least 5 ms of calls each);
        ``accuracy_float``, ``accuracy_quant`` (the whole model with only this layer
        quantized) and ``sensitivity`` = accuracy_float - accuracy_quant in percentage points;
        ``kl``, the mean KL(float || only this layer quantized) of the model's outputs in
        nats, a finer measure of the same thing when int8 changes no prediction.

    Raises
    ------
    TypeError
        If an argument has the wrong type (e.g. non-float data, non-integer labels).
    ValueError
        If an argument is out of range, ``labels`` has the wrong shape, the calibration data
        is empty or holds NaN/Inf, or ``method`` is unknown.
    """
    model = as_model(model)
    x = np.concatenate(batches(calibration_data), axis=0)
    y = None if labels is None else labels_array(labels, x.shape[0])
    n = as_int(max_rows, "max_rows", 1)
    x = x[:n]
    repeat = as_int(repeat, "repeat", 1, 1000)
    ranges = calibrate_model(model, x, method=method)
    float_out = predict(model, x)
    y = float_out.argmax(axis=-1) if y is None else y[:n]
    acc_float = float(np.mean(float_out.argmax(axis=-1) == y))
    ins = layer_inputs(model, x)
    rows = []
    for i, rng_ in ranges.items():
        layer = model.layers[i]
        q = quantized_linear(layer, rng_, bits=bits, per_channel=per_channel)
        w = weight_of(layer)
        xi = ins[i]
        ref = np.asarray(layer(xi), np.float32)
        got = q(xi)
        only = with_layer(model, i, q)
        out_q = predict(only, x)
        accq = float(np.mean(out_q.argmax(axis=-1) == y))
        rows.append({
            "index": i, "name": layer_name(model, i),
            "in_features": int(w.shape[1]), "out_features": int(w.shape[0]),
            "weight_sqnr_db": float(sqnr(w, q.weight_q.dequantize())),
            "output_sqnr_db": float(sqnr(ref, got)),
            "float_bytes": layer_nbytes(layer), "quant_bytes": layer_nbytes(q),
            "float_ms": 1e3 * time_call(lambda f=layer, v=xi: f(v), repeat),
            "quant_ms": 1e3 * time_call(lambda f=q, v=xi: f(v), repeat),
            "accuracy_float": acc_float, "accuracy_quant": accq,
            "sensitivity": 100.0 * (acc_float - accq),
            "kl": mean_kl(float_out, out_q),
        })
    return rows


def most_sensitive(rows) -> dict:
    """The report row with the largest sensitivity (ties: the largest output KL)."""
    if not rows:
        raise ValueError("rows is empty")
    return max(rows, key=lambda r: (r["sensitivity"], r["kl"]))


def format_report(rows) -> str:
    """The report as a text table (one line per layer, the most sensitive marked with *)."""
    head = (f"{'layer':<22} {'W SQNR':>8} {'out SQNR':>9} {'float B':>9} {'quant B':>9} "
            f"{'float ms':>9} {'quant ms':>9} {'sens. pts':>9} {'KL':>9}")
    lines = [head, "-" * len(head)]
    top = most_sensitive(rows)["index"] if rows else None
    for r in rows:
        lines.append(f"{r['name']:<22} {r['weight_sqnr_db']:>8.1f} {r['output_sqnr_db']:>9.1f} "
                     f"{r['float_bytes']:>9d} {r['quant_bytes']:>9d} {r['float_ms']:>9.3f} "
                     f"{r['quant_ms']:>9.3f} {r['sensitivity']:>9.2f} {r['kl']:>9.2e}"
                     f"{' *' if r['index'] == top else ''}")
    if rows:
        lines.append(f"* most sensitive: {most_sensitive(rows)['name']} "
                     f"(accuracy {100 * rows[0]['accuracy_float']:.2f}% float)")
    return "\n".join(lines)


def plot_report(rows, path) -> None:
    """A PNG with per-layer SQNR (weights and outputs) and sensitivity. Needs matplotlib (optional):
    ImportError naming it when missing."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("plot_report needs matplotlib, an optional dependency: pip install matplotlib") from None
    if not rows:
        raise ValueError("rows is empty: nothing to plot")
    fig = Figure(figsize=(10, 4))
    ax1, ax2 = fig.subplots(1, 2)
    names = [r["name"] for r in rows]
    pos = np.arange(len(rows))
    ax1.bar(pos - 0.2, [r["weight_sqnr_db"] for r in rows], 0.4, label="weights")
    ax1.bar(pos + 0.2, [r["output_sqnr_db"] for r in rows], 0.4, label="outputs")
    ax1.set_ylabel("SQNR (dB)")
    ax1.set_title("SQNR against float per layer")
    ax1.set_ylim(0, max([r["weight_sqnr_db"] for r in rows] + [r["output_sqnr_db"] for r in rows]
                        + [1.0]) * 1.2)
    ax1.legend(loc="upper center", ncol=2)
    ax2.bar(pos, [r["sensitivity"] for r in rows], 0.6, color="tab:red")
    ax2.set_ylabel("accuracy drop (points)", color="tab:red")
    ax2.set_title("sensitivity (only this layer quantized)", pad=16)
    sens = [r["sensitivity"] for r in rows]
    ax2.set_ylim(min(0.0, min(sens)) - 0.05, max(0.5, max(sens) * 1.2))
    ax3 = ax2.twinx()
    ax3.plot(pos, [r["kl"] for r in rows], "o-", color="tab:purple")
    ax3.set_ylabel("output KL vs float (nats)", color="tab:purple")
    ax3.set_ylim(bottom=0)
    for ax in (ax1, ax2):
        ax.set_xticks(pos)
        ax.set_xticklabels(names, rotation=20, ha="right", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.fspath(path), dpi=100)
