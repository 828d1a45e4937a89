"""One executor (issue 13): lowbit.QuantizedModel runs the C++ runtime's plan, so its output equals
the exported model's (lowbit.export_runtime -> lowbit::Model, what lowbit_infer runs) bit for bit,
and equals the chain of QuantizedLinear.forward_quantized calls (the Python reference of the
requantize rule) bit for bit."""
import threading

import numpy as np
import pytest

import lowbit
from lowbit import _core, nn
from lowbit.codebook import CodebookLinear
from lowbit.linear import QuantizedLinear
from lowbit.models import layers as L

BATCHES = (1, 7, 300)
RUNTIME = (QuantizedLinear, CodebookLinear, L.ReLU, L.Dropout)


# ------------------------------------------------------------------ references

def _is_static(layer):
    return isinstance(layer, QuantizedLinear) and layer.act_scale is not None


def _requant(layer, codes, nxt, relu):
    """uint8 codes of `nxt`'s input from `layer`'s input codes: forward_quantized (8-bit codes);
    for a 7-bit next layer the same rule clamped to its code range [0, 127]."""
    if nxt.act_bits == 8:
        return layer.forward_quantized(codes, nxt.act_scale, nxt.act_zero_point, relu=relu)
    w = layer._w_scale.astype(np.float64)
    m = (layer.act_scale * w / nxt.act_scale).astype(np.float32)
    b = None
    if layer.bias is not None:
        b = np.clip(np.round(layer.bias / (layer.act_scale * w)), -2**31, 2**31 - 1).astype(np.int32)
    return _core.gemm_requant(codes, layer._packed._packed, layer.act_zero_point, m, b,
                              nxt.act_zero_point, 0, 127, relu)


def fused_reference(layers, x):
    """The Python fused executor QuantizedModel had before it ran the C++ plan: chains of static
    QuantizedLinear [-> ReLU] -> static QuantizedLinear on uint8 codes via forward_quantized,
    dequantized at the end of a chain; every other layer through float."""
    h = np.asarray(x, np.float32).reshape(-1, x.shape[-1])
    codes, i, n = None, 0, len(layers)
    while i < n:
        layer = layers[i]
        if not _is_static(layer):
            h = np.asarray(layer(h), np.float32)
            i += 1
            continue
        if codes is None:
            codes = lowbit.quantize(h, bits=layer.act_bits, symmetric=False, scale=layer.act_scale,
                                    zero_point=layer.act_zero_point).int_repr()
        j, relu = i + 1, False
        while j < n and isinstance(layers[j], (L.Dropout, L.ReLU)):
            relu = relu or isinstance(layers[j], L.ReLU)
            j += 1
        nxt = layers[j] if j < n else None
        if _is_static(nxt):
            codes = _requant(layer, codes, nxt, relu)
        else:
            h = (codes.astype(np.float32) - np.float32(layer.act_zero_point)) * np.float32(layer.act_scale)
            h = layer(h, relu=relu)
            codes = None
        i = j
    return h.reshape(x.shape[:-1] + h.shape[-1:])


def exported_runtime(layers, x):
    """The exported model's output: each maximal run of runtime layers written by lowbit's
    exporter and loaded by lowbit::Model from those bytes (as lowbit_infer loads a file); the
    float layers between runs applied in Python."""
    h = np.asarray(x, np.float32).reshape(-1, x.shape[-1])
    i = 0
    while i < len(layers):
        if not isinstance(layers[i], RUNTIME) or isinstance(layers[i], (L.ReLU, L.Dropout)):
            h = np.asarray(layers[i](h), np.float32)
            i += 1
            continue
        j = i
        while j < len(layers) and isinstance(layers[j], RUNTIME):
            j += 1
        rt = _core.RuntimeModel(lowbit.deploy.runtime_bytes(layers[i:j]), h.shape[0])
        h = rt.forward(h)
        i = j
    return h.reshape(x.shape[:-1] + h.shape[-1:])


# ------------------------------------------------------------------ models

def _data(rng, n, k):
    return (rng.standard_normal((n, k)) * 1.5).astype(np.float32)


def _quantized(layers, calib):
    """quantize_model of float `layers`: every Linear a static QuantizedLinear calibrated on calib."""
    return list(lowbit.quantize_model(nn.Sequential(layers), calib).layers)


def _dynamic(layer):
    return QuantizedLinear.from_quantized(layer.weight_q, layer.bias)


def _seven_bit(layer):
    """The same static layer with 7-bit activation codes over the same range."""
    lo = -layer.act_zero_point * layer.act_scale
    hi = (255 - layer.act_zero_point) * layer.act_scale
    scale = (hi - lo) / 127
    return QuantizedLinear.from_quantized(layer.weight_q, layer.bias, act_scale=scale,
                                          act_zero_point=int(np.clip(round(-lo / scale), 0, 127)),
                                          act_bits=7)


def static_relu_chain(rng):
    return _quantized(nn.MLP([32, 48, 40, 10], seed=1).layers, _data(rng, 256, 32))


def static_chain_without_relu(rng):
    q = _quantized([nn.Linear(32, 40, seed=2), nn.Linear(40, 24, seed=3), nn.Dropout(0.1),
                    nn.Linear(24, 12, seed=4, bias=False), nn.Linear(12, 6, seed=5)],
                   _data(rng, 256, 32))
    return q


def mixed_static_dynamic(rng):
    q = _quantized([nn.Linear(32, 48, seed=6), nn.ReLU(), nn.Linear(48, 40, seed=7), nn.ReLU(),
                    nn.Linear(40, 40, seed=8), nn.Linear(40, 24, seed=9), nn.ReLU(), nn.ReLU(),
                    nn.Linear(24, 16, seed=10), nn.Linear(16, 8, seed=11)], _data(rng, 256, 32))
    q[0] = _dynamic(q[0])   # dynamic -> ReLU -> static chain
    q[5] = _dynamic(q[5])   # static -> dynamic -> ReLU ReLU -> static -> static
    return q


def codebook_layers(rng):
    q = _quantized([nn.Linear(32, 48, seed=12), nn.ReLU(), nn.Linear(48, 40, seed=13), nn.ReLU(),
                    nn.Linear(40, 32, seed=14), nn.Linear(32, 24, seed=15), nn.ReLU(),
                    nn.Linear(24, 16, seed=16)], _data(rng, 256, 32))
    w = lambda o, i: rng.standard_normal((o, i)).astype(np.float32) * 0.2  # noqa: E731
    q[0] = CodebookLinear(w(48, 32), np.ones(48, np.float32), k=16)              # 4-bit codes
    q[5] = CodebookLinear(w(24, 32), None, k=300, activations="int16")           # 16-bit codes
    q.insert(6, CodebookLinear(w(24, 24), None, k=64, dim=2))                    # 8-bit, pairs
    return q


def float_layers_in_the_middle(rng):
    q = _quantized([nn.Linear(32, 48, seed=17), nn.ReLU(), nn.Linear(48, 40, seed=18), nn.GELU(),
                    nn.Linear(40, 40, seed=19), nn.ReLU(), nn.Linear(40, 32, seed=20),
                    nn.LayerNorm(32), nn.Linear(32, 24, seed=21)], _data(rng, 256, 32))
    w = rng.standard_normal((20, 24)).astype(np.float32) * 0.2
    return q + [L.Linear(w), nn.Softmax()]  # a float Linear, kept in float


def seven_bit_activations(rng):
    q = static_relu_chain(rng)
    return [_seven_bit(l) if isinstance(l, QuantizedLinear) else l for l in q]


MODELS = [static_relu_chain, static_chain_without_relu, mixed_static_dynamic, codebook_layers,
          float_layers_in_the_middle, seven_bit_activations]


@pytest.mark.parametrize("make", MODELS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("rows", BATCHES)
def test_quantized_model_equals_exported_runtime_bit_for_bit(make, rows):
    rng = np.random.default_rng(rows)
    layers = make(rng)
    assert any(_is_static(l) for l in layers)
    x = _data(rng, rows, layers[0].in_features)
    got = lowbit.QuantizedModel(layers)(x)
    want = exported_runtime(layers, x)
    assert got.dtype == np.float32 and got.shape == want.shape
    assert got.tobytes() == want.tobytes(), f"max |diff| {np.abs(got - want).max()}"
    ref = fused_reference(layers, x)
    assert got.tobytes() == ref.tobytes(), f"max |diff| {np.abs(got - ref).max()}"


def test_whole_model_runtime_equals_quantized_model_and_reference():
    rng = np.random.default_rng(3)
    layers = static_relu_chain(rng)
    rt = _core.RuntimeModel(lowbit.deploy.runtime_bytes(layers), 5)
    q = lowbit.QuantizedModel(layers)
    for rows in (1, 5, 6, 300):  # within, at and beyond the loaded max_batch (run in chunks)
        x = _data(rng, rows, 32)
        chunks = [rt.forward(x[i:i + 5]) for i in range(0, rows, 5)]
        assert np.concatenate(chunks).tobytes() == q(x).tobytes() == fused_reference(layers, x).tobytes()
        assert lowbit.deploy.runtime_reference(layers, x).tobytes() == q(x).tobytes()


def test_leading_dimensions_and_empty_batches():
    rng = np.random.default_rng(4)
    layers = mixed_static_dynamic(rng)
    layers.insert(3, nn.GELU())  # a Python layer between two runs
    q = lowbit.QuantizedModel(layers)
    x = _data(rng, 24, 32).reshape(2, 3, 4, 32)
    y = q(x)
    assert y.shape == (2, 3, 4, 8)
    assert y.tobytes() == q(x.reshape(24, 32)).tobytes() == fused_reference(layers, x).tobytes()
    assert q(np.zeros((0, 32), np.float32)).shape == (0, 8)
    assert q(np.zeros((2, 0, 32), np.float32)).shape == (2, 0, 8)
    assert q(x[0, 0, 0]).tobytes() == y[0, 0, 0].tobytes()


def test_unfused_and_return_hidden_go_through_float_layer_by_layer():
    rng = np.random.default_rng(5)
    layers = static_relu_chain(rng)
    x = _data(rng, 50, 32)
    seq = L.Sequential(layers)(x)
    assert lowbit.QuantizedModel(layers, fuse=False)(x).tobytes() == seq.tobytes()
    out, hidden = lowbit.QuantizedModel(layers).forward(x, return_hidden=True)
    assert out.tobytes() == seq.tobytes() and len(hidden) == len(layers)
    assert not np.array_equal(lowbit.QuantizedModel(layers)(x), seq)  # the chain is on codes


def test_plan_is_cached_and_replanned_when_layers_change():
    rng = np.random.default_rng(6)
    layers = static_relu_chain(rng)
    q = lowbit.QuantizedModel(layers)
    x = _data(rng, 9, 32)
    y = q(x)
    plan = q._executor()
    assert q._executor() is plan and q(x).tobytes() == y.tobytes()
    q.layers[-1] = _dynamic(q.layers[-1])  # replacing a layer re-plans
    assert q._executor() is not plan
    assert q(x).tobytes() == exported_runtime(q.layers, x).tobytes() == fused_reference(q.layers, x).tobytes()
    c = q.copy()  # a copy plans for itself
    assert c(x).tobytes() == q(x).tobytes()


def test_bad_inputs_are_refused_like_the_layers_refuse_them():
    rng = np.random.default_rng(7)
    q = lowbit.QuantizedModel(float_layers_in_the_middle(rng))
    x = _data(rng, 4, 32)
    x[2, 5] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        q(x)
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 32\)"):
        q(np.zeros((3, 31), np.float32))
    a = QuantizedLinear(np.ones((5, 4), np.float32), act_scale=0.1)
    with pytest.raises(ValueError, match=r"layers\[1\] takes 4 features but receives 5"):
        lowbit.QuantizedModel([a, a])(np.ones((1, 4), np.float32))


def test_concurrent_calls_give_the_same_results():
    rng = np.random.default_rng(8)
    layers = codebook_layers(rng)
    q = lowbit.QuantizedModel(layers)
    xs = [_data(rng, r, 32) for r in (1, 7, 300, 64, 3, 129)]
    want = [exported_runtime(layers, x).tobytes() for x in xs]
    errors = []

    def work(t):
        try:
            for k in range(20):
                i = (t + k) % len(xs)
                if q(xs[i]).tobytes() != want[i]:
                    errors.append((t, k))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_4_bit_layers_held_two_a_byte_in_the_runtime_too():
    # issue 13: the runtime file stores int8 codes; a layer whose codes fit 4 bits is held packed
    # two a byte once loaded, as the Python layer holds it, with the same results.
    rng = np.random.default_rng(5)
    layers = [QuantizedLinear(rng.standard_normal((48, 32)).astype(np.float32),
                              rng.standard_normal(48).astype(np.float32), bits=4),
              nn.ReLU(),
              QuantizedLinear(rng.standard_normal((8, 48)).astype(np.float32), bits=8)]
    rt = _core.RuntimeModel(lowbit.deploy.runtime_bytes(layers), 7)
    assert rt.weight_bytes == layers[0].nbytes + layers[2].nbytes
    q = lowbit.QuantizedModel(layers)
    x = _data(rng, 7, 32)
    assert rt.forward(x).tobytes() == q(x).tobytes() == fused_reference(layers, x).tobytes()
