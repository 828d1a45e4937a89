"""Pickling: every type lowbit's file format stores pickles as that format's bytes (the only
global in the pickle is lowbit's own loader), so quantized objects cross process boundaries."""
import copy
import functools
import multiprocessing
import pickle
import pickletools

import numpy as np
import pytest

import lowbit
from lowbit import io as lio
from lowbit import nn


def _rng(seed=0):
    return np.random.default_rng(seed)


def _x(n_in, seed=1, rows=5):
    return _rng(seed).standard_normal((rows, n_in)).astype(np.float32)


def _float_model():
    return nn.Sequential([nn.Linear(8, 16, seed=1), nn.GELU(), nn.LayerNorm(16), nn.Dropout(0.3),
                          nn.Linear(16, 12, seed=2), nn.ReLU(), nn.Linear(12, 4, seed=3, bias=False),
                          nn.Softmax()])


def _encoder():
    """A small quantized transformer encoder (int8 embeddings and linears, one 4-bit)."""
    from lowbit.models import Encoder, Linear
    rng = _rng(9)
    g = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    lin = lambda o, i: Linear(g(o, i), g(o))  # noqa: E731
    enc = Encoder(dict(vocab=11, max_positions=6, type_vocab=2, hidden=8, heads=2, layers=1,
                       intermediate=12, eps=1e-12, gelu=1),
                  dict(word=g(11, 8), position=g(6, 8), type=g(2, 8), ln_gamma=g(8), ln_beta=g(8)),
                  [dict(qkv=lin(24, 8), out=lin(8, 8), ffn_in=lin(12, 8), ffn_out=lin(8, 12),
                        ln1_gamma=g(8), ln1_beta=g(8), ln2_gamma=g(8), ln2_beta=g(8))])
    q = lowbit.quantize_model(enc, None, scheme="int8")
    q.layers[0]["ffn_out"] = lowbit.Int4Linear(enc.layers[0]["ffn_out"].weight, group_size=4)
    return q


@functools.lru_cache(maxsize=1)
def _objects():
    """(type name in the file format, object, function giving the arrays to compare)."""
    rng = _rng(0)
    w = rng.standard_t(3, (12, 16)).astype(np.float32)
    b = rng.standard_normal(12).astype(np.float32)
    x16, x8 = _x(16), _x(8)
    call16 = (lambda m: m(x16))
    deq = (lambda t: t.dequantize())
    a = rng.integers(0, 256, (3, 16)).astype(np.uint8)
    qm = lowbit.quantize_model(_float_model(), _x(8, 3, 64))
    fq = nn.FakeQuantLinear(16, 12, bits=4, act="static", seed=5)
    fq.forward(x16, train=True)  # an observed activation range
    sw = nn.SharedWeightLinear(rng.standard_normal((8, 2)).astype(np.float32), rng.integers(0, 8, (12, 8)), b)
    mlp, adam, sgd = nn.MLP([8, 10, 3], seed=7), nn.Adam(), nn.SGD(nesterov=True)
    hist = nn.fit(mlp, _x(8, 5, 32), np.arange(32) % 3, epochs=2, batch_size=8, optimizer=adam)
    nn.fit(mlp, _x(8, 5, 32), np.arange(32) % 3, epochs=1, batch_size=8, optimizer=sgd)
    moments = (lambda o: np.concatenate([[o.t]] + [a.ravel() for e in o.state_dict()["state"] for a in e.values()]))
    return [
        ("QTensor", lowbit.quantize(w, bits=8), deq),
        ("QTensor", lowbit.quantize(w, bits=4, axis=0, symmetric=False), deq),
        ("Int4Embedding", lowbit.models.Int4Embedding(w[:, :16], group_size=8), deq),
        ("PackedInt8", lowbit.pack_int8(rng.integers(-128, 128, (16, 9)).astype(np.int8)),
         lambda p: lowbit.matmul_int8(a, p)),
        ("QuantizedLinear", lowbit.QuantizedLinear(w, b), call16),
        ("QuantizedLinear", lowbit.QuantizedLinear(w, b, bits=4, act_scale=0.02, act_zero_point=128),
         call16),
        ("Pow2Tensor", lowbit.quantize_pow2(w, bits=4, axis=0), deq),
        ("CompandedTensor", lowbit.compand(w, method="mu-law", bits=4), deq),
        ("BinaryTensor", lowbit.binarize(w), deq),
        ("BinaryLinear", lowbit.BinaryLinear(w, b), call16),
        ("Codebook", lowbit.kmeans(w, 16), lambda c: c.decode()),
        ("ProductCodes", lowbit.product_quantize(_x(16, 4, 300), 4, bits=4), lambda p: p.decode()),
        ("CodebookLinear", lowbit.CodebookLinear(w, b, k=16), call16),
        ("Int4Linear", lowbit.Int4Linear(w, b, bits=3, group_size=8), call16),
        ("Encoder", _encoder(), lambda e: e(np.array([[1, 4, 10, 0], [3, 3, 2, 7]]), [[1, 1, 1, 0], [1] * 4])),
        ("nn.Linear", nn.Linear(16, 12, seed=5), call16),
        ("nn.ReLU", nn.ReLU(), call16),
        ("nn.GELU", nn.GELU(approximate="none"), call16),
        ("nn.Softmax", nn.Softmax(), call16),
        ("nn.Dropout", nn.Dropout(0.25), call16),
        ("nn.LayerNorm", nn.LayerNorm(16), call16),
        ("nn.Sequential", _float_model(), lambda m: m(x8)),
        ("nn.MLP", nn.MLP([8, 10, 3], activation="gelu", dropout=0.1, seed=7), lambda m: m(x8)),
        ("nn.FakeQuantLinear", fq, call16),
        ("nn.SharedWeightLinear", sw, call16),
        ("nn.Adam", adam, moments),
        ("nn.SGD", sgd, moments),
        ("nn.History", hist, lambda h: np.array(h.loss + h.accuracy + h.lr)),
        ("QuantizedModel", qm, lambda m: m(x8)),
        ("models.Linear", lowbit.models.Linear(w, b), call16),
        ("models.ReLU", lowbit.models.ReLU(), call16),
        ("models.GELU", lowbit.models.GELU(), call16),
        ("models.Softmax", lowbit.models.Softmax(), call16),
        ("models.Dropout", lowbit.models.Dropout(0.5), call16),
        ("models.LayerNorm", lowbit.models.LayerNorm(16), call16),
        ("models.Sequential", lowbit.load_model({"0.weight": w, "0.bias": b}), call16),
    ]


def _strings(data: bytes) -> set:
    """The strings of a pickle (with protocol >= 4, a global is two strings and STACK_GLOBAL)."""
    out = set()
    for op, arg, _ in pickletools.genops(data):
        if op.name in ("GLOBAL", "INST"):
            out.update(arg.split(" "))
        elif isinstance(arg, str):
            out.add(arg)
    return out


def test_every_registered_type_is_covered():
    ours = {n for n in lio.registered_types() if lio._BY_NAME[n].cls.__module__.startswith("lowbit.")}
    assert {name for name, _, _ in _objects()} == ours  # (other tests register toy types)


@pytest.mark.parametrize("protocol", [None, 5])
@pytest.mark.parametrize("i", range(len(_objects())),
                         ids=[f"{n}-{k}" for k, (n, _, _) in enumerate(_objects())])
def test_pickle_round_trip_through_the_file_format(protocol, i):
    name, obj, out = _objects()[i]
    data = pickle.dumps(obj) if protocol is None else pickle.dumps(obj, protocol=protocol)
    # nothing but lowbit's own loader is named: the object travels as a lowbit file's bytes
    assert _strings(data) == {"lowbit.io", "_from_pickle"}
    assert lio.MAGIC in data
    back = pickle.loads(data)
    assert type(back) is type(obj)
    np.testing.assert_array_equal(out(back), out(obj))
    np.testing.assert_array_equal(out(copy.deepcopy(obj)), out(obj))


def test_pickled_containers_and_subclasses():
    ql = lowbit.QuantizedLinear(_rng(2).standard_normal((4, 16)).astype(np.float32))
    x = _x(16)
    back = pickle.loads(pickle.dumps({"a": [ql, ql], "b": (ql,)}))
    for layer in back["a"] + list(back["b"]):
        np.testing.assert_array_equal(layer(x), ql(x))
    # a subclass of a registered type is not reduced to that type: it keeps its own pickling
    fq = nn.FakeQuantLinear(16, 4, bits=4)
    fq2 = pickle.loads(pickle.dumps(fq))
    assert type(fq2) is nn.FakeQuantLinear and fq2.bits == 4
    np.testing.assert_array_equal(fq2(x), fq(x))


def test_quantized_linear_in_a_spawn_pool():
    rng = _rng(6)
    layer = lowbit.QuantizedLinear(rng.standard_normal((8, 24)).astype(np.float32),
                                   rng.standard_normal(8).astype(np.float32), bits=4)
    xs = [rng.standard_normal((3, 24)).astype(np.float32) for _ in range(4)]
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        got = pool.map_async(layer, xs).get(timeout=300)  # the layer itself goes to the workers
    for x, y in zip(xs, got):
        np.testing.assert_array_equal(y, layer(x))
