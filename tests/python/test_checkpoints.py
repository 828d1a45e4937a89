"""Checkpoints of training runs: QAT (FakeQuantLinear) and codebook fine-tuning
(SharedWeightLinear) models save and load with their training state (master weights, bits,
activation observer, centroids and indices), optimizers save their moments and step count, and
``fit(..., resume=history)`` continues an interrupted run bit for bit."""
import pickle

import numpy as np
import pytest

import lowbit
from lowbit import io as lio
from lowbit import nn


def _data(seed=0, n=72, d=12, classes=4):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)).astype(np.float32), rng.integers(0, classes, n)


MODELS = {
    "qat-dynamic": lambda: nn.prepare_qat(nn.MLP([12, 16, 16, 4], dropout=0.2, seed=1), bits=4),
    "qat-static": lambda: nn.prepare_qat(nn.MLP([12, 16, 16, 4], dropout=0.2, seed=1), bits=6,
                                         act="static", momentum=0.3),
    "qat-weights-only": lambda: nn.prepare_qat(nn.MLP([12, 16, 4], seed=1), bits=3, act=None),
    "codebook": lambda: nn.prepare_codebook(nn.MLP([12, 16, 16, 4], dropout=0.2, seed=1), k=8),
    "codebook-dim2": lambda: nn.prepare_codebook(nn.MLP([12, 16, 4], seed=1), k=6, dim=2),
}
LAYER_TYPE = {"qat": nn.FakeQuantLinear, "codebook": nn.SharedWeightLinear}


def _trained(kind, epochs=2):
    model = MODELS[kind]()
    x, y = _data()
    nn.fit(model, x, y, epochs=epochs, batch_size=16, lr=3e-2, seed=3)
    return model


def _params(model):
    return [p.copy() for p in model.parameters()]


def _assert_same_params(a, b):
    pa, pb = a.parameters(), b.parameters()
    assert len(pa) == len(pb)
    for u, v in zip(pa, pb):
        assert u.dtype == v.dtype
        np.testing.assert_array_equal(u, v)


def _assert_same_layers(model, back):
    """Every layer of `back` is of the same type as in `model`, with the same training state."""
    assert type(back) is type(model) and len(back.layers) == len(model.layers)
    for l1, l2 in zip(model.layers, back.layers):
        assert type(l2) is type(l1)
        if isinstance(l1, nn.FakeQuantLinear):
            assert (l2.bits, l2.act, l2.momentum) == (l1.bits, l1.act, l1.momentum)
            assert (l2.act_min, l2.act_max) == (l1.act_min, l1.act_max)
            assert (l2.act_scale, l2.act_zero_point) == (l1.act_scale, l1.act_zero_point)
        if isinstance(l1, nn.SharedWeightLinear):
            assert (l2.k, l2.dim) == (l1.k, l1.dim)
            np.testing.assert_array_equal(l2.indices, l1.indices)
            assert l2.indices.dtype == l1.indices.dtype
    _assert_same_params(model, back)


# --- (a), (b): save / load -----------------------------------------------------------------------------
@pytest.mark.parametrize("kind", MODELS)
def test_trained_model_round_trips_with_its_training_state(kind, tmp_path):
    model = _trained(kind)
    assert any(type(l) is LAYER_TYPE[kind.split("-")[0]] for l in model.layers)
    lowbit.save(model, tmp_path / "m.lowbit")
    back = lowbit.load(tmp_path / "m.lowbit")
    _assert_same_layers(model, back)
    x, _ = _data(5)
    np.testing.assert_array_equal(back(x), model(x))
    if kind.startswith("qat") and model.layers[0].act is not None:  # converts to the same int8 model
        np.testing.assert_array_equal(nn.convert_qat(back)(x), nn.convert_qat(model)(x))


@pytest.mark.parametrize("kind", MODELS)
@pytest.mark.parametrize("opt", ["adam", "sgd"])
def test_fit_resumes_bit_identically_from_a_checkpoint(kind, opt, tmp_path):
    """N+M epochs in one run == N epochs, checkpoint (model, optimizer, history) to a file, load,
    resume for the remaining M: with shuffling, dropout, a cosine schedule and validation."""
    x, y = _data()
    xv, yv = _data(9, n=20)
    make = (lambda: nn.Adam(weight_decay=1e-2)) if opt == "adam" else (lambda: nn.SGD(nesterov=True))
    kw = dict(epochs=5, batch_size=16, lr=2e-2, seed=4, schedule="cosine", min_lr=1e-3,
              validation_data=(xv, yv))

    whole = MODELS[kind]()
    h_whole = nn.fit(whole, x, y, optimizer=make(), **kw)

    model, optimizer = MODELS[kind](), make()
    path = tmp_path / "ckpt.lowbit"

    def checkpoint(epoch, history):
        lowbit.save({"model": model, "optimizer": optimizer, "history": history}, path)
        return epoch == 1  # "interrupted" after 2 epochs

    h1 = nn.fit(model, x, y, optimizer=optimizer, callback=checkpoint, **kw)
    assert h1.epochs == 2 and not h1.stopped_early
    ck = lowbit.load(path)  # the run continues from the file alone
    assert type(ck["optimizer"]) is type(make()) and ck["optimizer"].t == 2 * 5
    h2 = nn.fit(ck["model"], x, y, optimizer=ck["optimizer"], resume=ck["history"], **kw)

    _assert_same_layers(whole, ck["model"])
    assert ck["history"].epochs == 2  # resume does not modify the history it continues
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr"):
        assert getattr(h2, key) == getattr(h_whole, key), key
    assert h2.best_epoch == h_whole.best_epoch


@pytest.mark.parametrize("kind", MODELS)
def test_manual_steps_resume_bit_identically(kind, tmp_path):
    """The same at the level of optimizer steps: N+M steps vs N steps, lowbit.save of the model
    and the optimizer, load, M steps."""
    x, y = _data()
    rng_seed, n, m = 11, 4, 3

    def steps(model, opt, count, rng):
        for _ in range(count):
            idx = rng.choice(len(x), 16, replace=False)
            z = model.forward(x[idx], train=True, rng=rng)
            _, g = nn.cross_entropy(z, y[idx])
            model.backward(g, need_input_grad=False)
            opt.step(model.parameters(), model.gradients(), lr=1e-2)

    whole, opt_w = MODELS[kind](), nn.Adam()
    steps(whole, opt_w, n + m, np.random.default_rng(rng_seed))

    model, opt = MODELS[kind](), nn.Adam()
    rng = np.random.default_rng(rng_seed)
    steps(model, opt, n, rng)
    lowbit.save(model, tmp_path / "model.lowbit")
    lowbit.save(opt, tmp_path / "opt.lowbit")
    model2, opt2 = lowbit.load(tmp_path / "model.lowbit"), lowbit.load(tmp_path / "opt.lowbit")
    steps(model2, opt2, m, rng)
    _assert_same_layers(whole, model2)
    assert opt2.t == opt_w.t == n + m
    for s1, s2 in zip(opt_w.state_dict()["state"], opt2.state_dict()["state"]):
        for key in ("m", "v"):
            np.testing.assert_array_equal(s1[key], s2[key])


# --- optimizers -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [lambda: nn.Adam(2e-3, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1,
                                                  decoupled=False),
                                  lambda: nn.SGD(0.05, momentum=0.5, nesterov=True, weight_decay=1e-3)])
def test_optimizer_state_dict_round_trip(make):
    model = nn.MLP([6, 5, 3], seed=0)
    x, y = _data(n=8, d=6, classes=3)
    opt = make()
    sd0 = opt.state_dict()
    assert sd0["t"] == 0 and sd0["state"] == []
    nn.fit(model, x, y, epochs=2, batch_size=4, optimizer=opt)
    sd = opt.state_dict()
    assert sd["t"] == 4 and len(sd["state"]) == len(model.parameters())
    fresh = type(opt)()
    fresh.load_state_dict(sd)
    assert fresh.state_dict().keys() == sd.keys()
    for k in sd:
        if k != "state":
            assert fresh.state_dict()[k] == sd[k], k
    # copies both ways: changing the dict does not change the optimizers
    sd["state"][0][next(iter(sd["state"][0]))][...] = 7
    assert not np.any(opt.state_dict()["state"][0][next(iter(sd["state"][0]))] == 7)
    assert not np.any(fresh.state_dict()["state"][0][next(iter(sd["state"][0]))] == 7)
    # both continue identically
    m2 = nn.MLP([6, 5, 3], seed=0)
    m2.set_weights(model.get_weights())
    nn.fit(model, x, y, epochs=1, batch_size=4, optimizer=opt)
    nn.fit(m2, x, y, epochs=1, batch_size=4, optimizer=fresh)
    _assert_same_params(model, m2)
    # a state of the other kind of optimizer is rejected
    other = nn.SGD() if isinstance(opt, nn.Adam) else nn.Adam()
    with pytest.raises(ValueError):
        other.load_state_dict(sd)


def test_loaded_optimizer_rejects_another_model():
    model = nn.MLP([6, 5, 3], seed=0)
    x, y = _data(n=8, d=6, classes=3)
    opt = nn.Adam()
    nn.fit(model, x, y, epochs=1, batch_size=4, optimizer=opt)
    opt2 = pickle.loads(pickle.dumps(opt))
    other = nn.MLP([6, 7, 3], seed=0)
    with pytest.raises(ValueError, match="changed shape"):
        nn.fit(other, x, y, epochs=1, batch_size=4, optimizer=opt2)


# --- resume errors --------------------------------------------------------------------------------------
def test_resume_checks_its_inputs():
    x, y = _data()
    model, opt = nn.MLP([12, 8, 4], seed=0), nn.Adam()
    stop = (lambda e, h: e == 0)
    h = nn.fit(model, x, y, epochs=3, batch_size=16, optimizer=opt, callback=stop)
    with pytest.raises(TypeError, match="History"):
        nn.fit(model, x, y, epochs=3, batch_size=16, optimizer=opt, resume={"loss": [1.0]})
    with pytest.raises(ValueError, match="optimizer"):  # a fresh optimizer would not continue the run
        nn.fit(model, x, y, epochs=3, batch_size=16, resume=h)
    with pytest.raises(ValueError, match="batch_size"):
        nn.fit(model, x, y, epochs=3, batch_size=8, optimizer=opt, resume=h)
    with pytest.raises(ValueError, match="resume"):
        nn.fit(model, x, y, epochs=3, batch_size=16, optimizer=opt, resume=nn.History())
    assert opt.t == 5  # the failed calls did not step
    # nothing left to run: the history is returned (as a copy) and nothing changes
    before = _params(model)
    h_same = nn.fit(model, x, y, epochs=1, batch_size=16, optimizer=opt, resume=h)
    assert h_same is not h and h_same.loss == h.loss
    for p, q in zip(before, model.parameters()):
        np.testing.assert_array_equal(p, q)
    # a run ended by early stopping (weights put back to the best epoch) cannot be continued
    xv, yv = _data(2, n=10)
    m2, o2 = nn.MLP([12, 8, 4], seed=0), nn.SGD(lr=0.0)
    h2 = nn.fit(m2, x, y, epochs=6, lr=0.0, optimizer=o2, validation_data=(xv, yv), early_stopping=1)
    assert h2.stopped_early
    with pytest.raises(ValueError, match="early stopping"):
        nn.fit(m2, x, y, epochs=6, lr=0.0, optimizer=o2, validation_data=(xv, yv), early_stopping=1,
               resume=h2)


def test_resume_restores_early_stopping_state(tmp_path):
    """Early stopping and restore_best continue across a checkpoint too: counters and best weights."""
    x, y = _data()
    xv, yv = _data(7, n=16)
    kw = dict(epochs=12, batch_size=16, lr=0.3, seed=1, optimizer="sgd", validation_data=(xv, yv),
              early_stopping=2)
    whole = nn.MLP([12, 16, 4], seed=0)
    hw = nn.fit(whole, x, y, **kw)
    assert hw.stopped_early and hw.epochs >= 3  # (so the interruption below is inside the run)
    model = nn.MLP([12, 16, 4], seed=0)
    opt = nn.SGD(momentum=0.9)
    kw["optimizer"] = opt
    h1 = nn.fit(model, x, y, callback=lambda e, h: e == hw.epochs - 2, **kw)
    lowbit.save({"m": model, "o": opt, "h": h1}, tmp_path / "c.lowbit")
    ck = lowbit.load(tmp_path / "c.lowbit")
    kw["optimizer"] = ck["o"]
    h2 = nn.fit(ck["m"], x, y, resume=ck["h"], **kw)
    assert h2.stopped_early and h2.epochs == hw.epochs and h2.val_loss == hw.val_loss
    _assert_same_params(whole, ck["m"])


# --- (c) pickling ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", MODELS)
def test_pickle_round_trips(kind):
    model = _trained(kind)
    x, y = _data()
    opt = nn.Adam()
    h = nn.fit(model, x, y, epochs=1, batch_size=32, optimizer=opt)
    for obj in [model, opt, h, {"model": model, "optimizer": opt, "history": h}]:
        back = pickle.loads(pickle.dumps(obj))
        assert type(back) is type(obj)
    back = pickle.loads(pickle.dumps(model))
    _assert_same_layers(model, back)
    np.testing.assert_array_equal(back(x), model(x))
    for layer in model.layers:
        if isinstance(layer, (nn.FakeQuantLinear, nn.SharedWeightLinear)):
            lb = pickle.loads(pickle.dumps(layer))
            assert type(lb) is type(layer)
            xl = np.linspace(-1, 1, 3 * layer.in_features, dtype=np.float32).reshape(3, -1)
            np.testing.assert_array_equal(lb(xl), layer(xl))
    ob = pickle.loads(pickle.dumps(opt))
    assert ob.t == opt.t
    for s1, s2 in zip(opt.state_dict()["state"], ob.state_dict()["state"]):
        np.testing.assert_array_equal(s1["m"], s2["m"])
        np.testing.assert_array_equal(s1["v"], s2["v"])
    hb = pickle.loads(pickle.dumps(h))
    assert hb.as_dict() == h.as_dict() and hb.best_epoch == h.best_epoch


def test_float64_layers_keep_their_dtype(tmp_path):
    fq = nn.FakeQuantLinear(5, 3, act="static", bits=5).astype(np.float64)
    fq.forward(np.linspace(-1, 2, 10).reshape(2, 5), train=True)
    sw = nn.SharedWeightLinear(np.linspace(-1, 1, 4), np.arange(12).reshape(3, 4) % 4, np.ones(3)).astype(np.float64)
    for layer in (fq, sw):
        lowbit.save(layer, tmp_path / "l.lowbit")
        back = lowbit.load(tmp_path / "l.lowbit")
        assert back.dtype == np.float64
        x = np.linspace(0, 1, 2 * layer.in_features).reshape(2, -1)
        np.testing.assert_array_equal(back(x), layer(x))
    untrained = nn.FakeQuantLinear(4, 2, act="static", bias=False)  # no range observed yet
    back = pickle.loads(pickle.dumps(untrained))
    assert back.act_min is None and back.bias is None
    with pytest.raises(RuntimeError, match="observed"):
        back(np.zeros((1, 4), np.float32))


# --- (d) corrupted states -------------------------------------------------------------------------------
def _fq_state():
    layer = nn.FakeQuantLinear(6, 4, bits=4, act="static")
    layer.forward(np.linspace(-2, 3, 24, dtype=np.float32).reshape(4, 6), train=True)
    return lio._BY_NAME["nn.FakeQuantLinear"].to_state(layer)


def _sw_state():
    layer = nn.SharedWeightLinear(np.linspace(-1, 1, 6, dtype=np.float32).reshape(3, 2),
                                  np.arange(8).reshape(4, 2) % 3, np.zeros(4, np.float32))
    return lio._BY_NAME["nn.SharedWeightLinear"].to_state(layer)


def _opt_state():
    model, opt = nn.MLP([6, 5, 3], seed=0), nn.Adam()
    x, y = _data(n=8, d=6, classes=3)
    nn.fit(model, x, y, epochs=1, batch_size=4, optimizer=opt)
    return lio._BY_NAME["nn.Adam"].to_state(opt)


def _hist_state():
    x, y = _data()
    h = nn.fit(nn.MLP([12, 8, 4], seed=0), x, y, epochs=2, batch_size=32, validation_data=_data(1, n=8))
    return lio._BY_NAME["nn.History"].to_state(h)


def _with(base, /, **changes):
    s = dict(base)
    for k, v in changes.items():
        if v is KeyError:
            del s[k]
        else:
            s[k] = v
    return s


FQ_BAD = {
    "weight-1d": dict(weight=np.zeros(24, np.float32)),
    "weight-int": dict(weight=np.zeros((4, 6), np.int32)),
    "weight-f16": dict(weight=np.zeros((4, 6), np.float16)),
    "bias-shape": dict(bias=np.zeros(5, np.float32)),
    "bias-dtype": dict(bias=np.zeros(4, np.float64)),
    "bits-9": dict(bits=9),
    "bits-1": dict(bits=1),
    "bits-float": dict(bits=4.0),
    "bits-bool": dict(bits=True),
    "act": dict(act="per-tensor"),
    "momentum-0": dict(momentum=0.0),
    "momentum-2": dict(momentum=2.0),
    "min-without-max": dict(act_max=None),
    "min-nan": dict(act_min=float("nan")),
    "min-above-max": dict(act_min=5.0, act_max=1.0),
    "range-without-static": dict(act="dynamic"),
    "missing-bits": dict(bits=KeyError),
    "unknown-entry": dict(scale=1.0),
}
SW_BAD = {
    "index-too-big": dict(indices=np.full((4, 1), 3, np.uint8)),
    "index-negative": dict(indices=np.full((4, 1), -1, np.int64)),
    "indices-float": dict(indices=np.zeros((4, 1), np.float32)),
    "indices-1d": dict(indices=np.zeros(4, np.uint8)),
    "indices-empty": dict(indices=np.zeros((0, 1), np.uint8)),
    "centroids-3d": dict(centroids=np.zeros((3, 2, 1), np.float32)),
    "centroids-int": dict(centroids=np.zeros((3, 2), np.int32)),
    "k-mismatch": dict(k=4),
    "dim-mismatch": dict(dim=1),
    "bias-shape": dict(bias=np.zeros(3, np.float32)),
    "bias-dtype": dict(bias=np.zeros(4, np.float64)),
    "missing-indices": dict(indices=KeyError),
    "unknown-entry": dict(weight=np.zeros((4, 2), np.float32)),
}


def _adam_bad(s):
    st = [dict(e) for e in s["state"]]
    bad = {
        "t-negative": dict(t=-1),
        "t-float": dict(t=1.5),
        "betas": dict(betas=(0.9, 1.5)),
        "eps": dict(eps=0.0),
        "decoupled-int": dict(decoupled=1),
        "lr-negative": dict(lr=-1.0),
        "state-not-list": dict(state={"m": 1}),
        "missing-v": dict(state=[{"m": e["m"]} for e in st]),
        "shape-mismatch": dict(state=[dict(e, v=e["v"][:1]) for e in st]),
        "dtype-mismatch": dict(state=[dict(e, v=e["v"].astype(np.float64)) for e in st]),
        "v-negative": dict(state=[dict(e, v=-np.ones_like(e["v"])) for e in st]),
        "m-nan": dict(state=[dict(e, m=np.full_like(e["m"], np.nan)) for e in st]),
        "unknown-entry": dict(amsgrad=False),
    }
    return bad


@pytest.mark.parametrize("case", FQ_BAD)
def test_corrupt_fake_quant_states_raise_value_error(case, monkeypatch):
    entry = lio._BY_NAME["nn.FakeQuantLinear"]
    bad = _with(_fq_state(), **FQ_BAD[case])
    with pytest.raises(ValueError):
        entry.from_state(bad)
    # and through the file format (a well-formed, checksummed file holding that state)
    layer = nn.FakeQuantLinear(6, 4)
    monkeypatch.setattr(entry, "to_state", lambda obj: bad)
    data = lio.dumps(layer)
    with pytest.raises(ValueError, match="invalid nn.FakeQuantLinear"):
        lio.loads(data)


@pytest.mark.parametrize("case", SW_BAD)
def test_corrupt_shared_weight_states_raise_value_error(case, monkeypatch):
    entry = lio._BY_NAME["nn.SharedWeightLinear"]
    bad = _with(_sw_state(), **SW_BAD[case])
    with pytest.raises(ValueError):
        entry.from_state(bad)
    layer = nn.SharedWeightLinear(np.zeros(2), np.zeros((2, 2), np.int64))
    monkeypatch.setattr(entry, "to_state", lambda obj: bad)
    with pytest.raises(ValueError, match="invalid nn.SharedWeightLinear"):
        lio.loads(lio.dumps(layer))


def test_good_states_load():
    for name, state in (("nn.FakeQuantLinear", _fq_state()), ("nn.SharedWeightLinear", _sw_state()),
                        ("nn.Adam", _opt_state()), ("nn.History", _hist_state())):
        lio._BY_NAME[name].from_state(state)


@pytest.mark.parametrize("case", ["t-negative", "t-float", "betas", "eps", "decoupled-int", "lr-negative",
                                  "state-not-list", "missing-v", "shape-mismatch", "dtype-mismatch",
                                  "v-negative", "m-nan", "unknown-entry"])
def test_corrupt_optimizer_states_raise_value_error(case):
    s = _opt_state()
    bad = _with(s, **_adam_bad(s)[case])
    with pytest.raises(ValueError):
        lio._BY_NAME["nn.Adam"].from_state(bad)
    with pytest.raises(ValueError):
        nn.Adam().load_state_dict(bad)


def test_corrupt_sgd_state_raises_value_error():
    opt = nn.SGD()
    s = opt.state_dict()
    for bad in (_with(s, nesterov="yes"), _with(s, momentum=1.0), _with(s, weight_decay=KeyError),
                _with(s, state=[{"buf": np.zeros(3, np.int32)}])):
        with pytest.raises(ValueError):
            nn.SGD().load_state_dict(bad)
        with pytest.raises(ValueError):
            lio._BY_NAME["nn.SGD"].from_state(bad)


def _hist_bad(s):
    loop = s["resume"]
    rngs = loop["rngs"]
    bad_rng = dict(rngs["shuffle"], state={"state": -1, "inc": 3})
    return {
        "lengths": dict(lists=dict(s["lists"], loss=s["lists"]["loss"][:1])),
        "list-of-str": dict(lists=dict(s["lists"], lr=["a", "b"])),
        "method-name": dict(lists=dict(s["lists"], plot=[1.0, 2.0])),
        "private-name": dict(lists=dict(s["lists"], _x=[1.0, 2.0])),
        "best-epoch": dict(best_epoch=2),
        "stopped-early-int": dict(stopped_early=0),
        "step-negative": dict(resume=dict(loop, step=-1)),
        "rng-state": dict(resume=dict(loop, rngs=dict(rngs, shuffle=bad_rng))),
        "rng-kind": dict(resume=dict(loop, rngs=dict(rngs, shuffle=dict(rngs["shuffle"], bit_generator="MT19937")))),
        "wait-negative": dict(resume=dict(loop, wait=-2)),
        "best-nan": dict(resume=dict(loop, best=float("nan"))),
        "best-weights": dict(resume=dict(loop, best_weights=[1.0])),
        "unknown-entry": dict(epochs=2),
    }


@pytest.mark.parametrize("case", ["lengths", "list-of-str", "method-name", "private-name", "best-epoch",
                                  "stopped-early-int", "step-negative", "rng-state", "rng-kind",
                                  "wait-negative", "best-nan", "best-weights", "unknown-entry"])
def test_corrupt_history_states_raise_value_error(case):
    s = _hist_state()
    with pytest.raises(ValueError):
        lio._BY_NAME["nn.History"].from_state(_with(s, **_hist_bad(s)[case]))


# --- (e) files written before these types existed -------------------------------------------------------
@pytest.mark.parametrize("old_type", ["nn.Linear", "models.Linear"])
@pytest.mark.parametrize("kind", ["qat-dynamic", "codebook"])
def test_old_files_load_as_plain_linear(kind, old_type, tmp_path, monkeypatch):
    """Before nn.FakeQuantLinear / nn.SharedWeightLinear, these layers were written as their base
    class, "nn.Linear" (or, for a while, "models.Linear"), holding the weight they compute
    (fake-quantized / decoded); such files still load, as plain Linear layers with that weight."""
    model = _trained(kind)
    cls = LAYER_TYPE[kind.split("-")[0]]
    monkeypatch.setitem(lio._BY_CLASS, cls, lio._BY_NAME[old_type])  # the old writer
    lowbit.save(model, tmp_path / "old.lowbit")
    monkeypatch.undo()
    back = lowbit.load(tmp_path / "old.lowbit")
    for l1, l2 in zip(model.layers, back.layers):
        if isinstance(l1, cls):
            assert type(l2) is (nn.Linear if old_type == "nn.Linear" else lowbit.models.Linear)
            np.testing.assert_array_equal(l2.weight, l1._effective_weight(False))
            np.testing.assert_array_equal(l2.bias, l1.bias)
        else:
            assert type(l2) is type(l1)
    if kind == "codebook":  # a codebook layer computes exactly its decoded weight
        x, _ = _data(3)
        np.testing.assert_array_equal(back(x), model(x))


def test_history_with_foreign_attributes_is_not_saved_but_still_pickles(tmp_path):
    x, y = _data()
    h = nn.fit(nn.MLP([12, 8, 4], seed=0), x, y, epochs=1, batch_size=32)
    h.note = "baseline"  # not a per-epoch record: the file format would lose it
    with pytest.raises(TypeError, match="note"):
        lowbit.save(h, tmp_path / "h.lowbit")
    back = pickle.loads(pickle.dumps(h))  # Python's own pickling, as before
    assert back.note == "baseline" and back.loss == h.loss


def test_distiller_resumes_exactly(tmp_path):
    """Distiller.fit(resume=...) continues an interrupted run bit for bit, like nn.fit."""
    from lowbit import distill

    r = np.random.default_rng(3)
    x = r.standard_normal((96, 12)).astype(np.float32)
    y = r.integers(0, 4, 96)
    teacher = nn.MLP([12, 16, 4], seed=1)

    def run(epochs, student, **kw):
        return distill.Distiller(teacher, student, temperature=3.0, alpha=0.7).fit(
            x, y, epochs=epochs, batch_size=32, lr=1e-2, seed=5, **kw)

    whole = nn.MLP([12, 8, 4], dropout=0.2, seed=2)
    opt_whole = nn.Adam(1e-2)
    h_whole = run(4, whole, optimizer=opt_whole)

    part = nn.MLP([12, 8, 4], dropout=0.2, seed=2)
    opt = nn.Adam(1e-2)
    h = run(2, part, optimizer=opt)
    lowbit.save({"model": part, "optimizer": opt, "history": h}, tmp_path / "ck.lowbit")
    ck = lowbit.load(tmp_path / "ck.lowbit")
    h2 = run(4, ck["model"], optimizer=ck["optimizer"], resume=ck["history"])
    for a, b in zip(whole.parameters(), ck["model"].parameters()):
        np.testing.assert_array_equal(a, b)
    assert h2.loss == h_whole.loss
