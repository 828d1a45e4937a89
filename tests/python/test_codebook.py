"""k-means codebooks: lowbit.kmeans / Codebook, product_quantize, CodebookLinear."""
import math

import numpy as np
import pytest

import lowbit


def gaussian(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def sse(x, approx):
    return float(np.sum((x.astype(np.float64) - approx.astype(np.float64)) ** 2))


@pytest.fixture
def threads():
    """Restores the thread count after a test that changes it."""
    before = lowbit.get_num_threads()
    yield
    lowbit.set_num_threads(before)


def exact_1d_optimum(values, k):
    """Optimal 1-D k-means error by the O(k n^2) dynamic program on the sorted values."""
    s = np.sort(values.astype(np.float64))
    n = s.size
    P = np.concatenate([[0.0], np.cumsum(s)])
    Q = np.concatenate([[0.0], np.cumsum(s * s)])

    def cost(a, b):  # error of s[a:b] around its mean
        w = b - a
        return max(0.0, Q[b] - Q[a] - (P[b] - P[a]) ** 2 / w)

    D = np.full((k + 1, n + 1), np.inf)
    D[0, 0] = 0.0
    for j in range(1, k + 1):
        for i in range(j, n + 1):
            D[j, i] = min(D[j - 1, l] + cost(l, i) for l in range(j - 1, i))
    return D[k, n]


# --- 1-D ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("k, bits, dtype", [(2, 4, np.uint8), (16, 4, np.uint8), (17, 8, np.uint8),
                                            (256, 8, np.uint8), (257, 16, np.uint16), (1000, 16, np.uint16)])
def test_1d_codes_layout_and_exact_decode(k, bits, dtype):
    x = gaussian((37, 55), seed=k)  # odd size: the last packed byte holds one code
    cb = lowbit.kmeans(x, k)
    assert isinstance(cb, lowbit.Codebook)
    assert cb.shape == x.shape and cb.k == k and cb.dim == 1 and cb.bits == bits
    assert cb.centroids.dtype == np.float32 and cb.centroids.shape == (k, 1)
    assert cb.indices.dtype == dtype
    if bits == 4:
        assert cb.indices.shape == ((x.size + 1) // 2,)
    else:
        assert cb.indices.shape == x.shape
    codes = cb.codes()
    assert codes.shape == x.shape and int(codes.max()) < k
    y = cb.decode()
    assert y.dtype == np.float32 and y.shape == x.shape
    assert np.array_equal(y, cb.centroids[codes, 0])  # bit-exact lookup
    assert cb.nbytes == cb.indices.nbytes + cb.centroids.nbytes
    n = x.size
    assert cb.compression_ratio == pytest.approx(n * 32 / (n * math.log2(k) + k * 32))
    assert cb.inertia == pytest.approx(sse(x, y), rel=1e-6)


def test_1d_codes_are_nearest_centroids():
    x = gaussian(5000, seed=3)
    cb = lowbit.kmeans(x, 32)
    c = cb.centroids[:, 0].astype(np.float64)
    d = np.abs(x[:, None].astype(np.float64) - c[None, :])
    chosen = d[np.arange(x.size), cb.codes()]
    # Nearest up to the final centroid update (means of the clusters of the last partition).
    assert np.all(chosen <= d.min(axis=1) + 1e-4)


@pytest.mark.parametrize("trial", range(12))
def test_1d_matches_or_beats_exact_dynamic_program(trial):
    rng = np.random.default_rng(100 + trial)
    n = int(rng.integers(12, 70))
    k = int(rng.integers(2, 9))
    x = rng.standard_normal(n).astype(np.float32)
    if trial % 3 == 0:
        x[::5] = x[0]  # repeated values
    if trial % 4 == 1:
        x = np.round(x * 4) / 4  # few distinct values
    if len(np.unique(x)) < k:
        pytest.skip("fewer distinct values than k")
    best = exact_1d_optimum(x, k)
    for seed in (trial, trial + 1):  # init="auto": the better of k-means++ and the optimal start
        cb = lowbit.kmeans(x, k, seed=seed)
        assert sse(x, cb.decode()) <= best * (1 + 1e-6) + 1e-9


def lloyd_1d_reference(x, c, iters):
    """Lloyd on scalars from centroids c (float32, as lowbit keeps them): at most `iters`
    partitions (a value at least as close to the upper centroid goes up), stopping when the
    partition repeats or the error stops decreasing."""
    s = np.sort(x.astype(np.float64))
    c = np.sort(np.asarray(c, np.float32))
    last, last_sse = None, np.inf
    for _ in range(iters):
        t = (c[:-1].astype(np.float64) + c[1:]) / 2
        a = np.searchsorted(t, s, side="right")
        if last is not None and np.array_equal(a, last):
            break
        assert np.all(np.bincount(a, minlength=c.size) > 0)  # no empty cluster in these data
        means = np.bincount(a, weights=s) / np.bincount(a)
        err = float(np.sum((s - means[a]) ** 2))
        if not err < last_sse:
            break
        c, last, last_sse = means.astype(np.float32), a, err
    return c


def test_1d_init_is_honoured():
    x = gaussian(20000, seed=21)
    k, iters = 8, 4
    # Deep Compression's linear start: evenly over [min, max], then plain Lloyd -- reproducible
    # and the same for every seed
    lin = np.array([x.min() + (np.float64(x.max()) - x.min()) * j / (k - 1) for j in range(k)],
                   np.float32)
    cb = lowbit.kmeans(x, k, init="linear", iters=iters)
    np.testing.assert_allclose(np.sort(cb.centroids[:, 0]), lloyd_1d_reference(x, lin, iters),
                               rtol=1e-6, atol=1e-7)
    assert len(cb.history) <= iters
    again = lowbit.kmeans(x, k, init="linear", iters=iters, seed=5)
    assert np.array_equal(again.centroids, cb.centroids) and np.array_equal(again.indices, cb.indices)
    # each start gives its own result, and the random starts depend on the seed
    runs = {(init, seed): lowbit.kmeans(x, k, init=init, seed=seed, iters=iters)
            for init in ("auto", "kmeans++", "linear", "random") for seed in (0, 1)}
    distinct = {runs[(i, 0)].centroids.tobytes() for i in ("auto", "kmeans++", "linear", "random")}
    assert len(distinct) == 4
    for init in ("kmeans++", "random"):
        assert not np.array_equal(runs[(init, 0)].centroids, runs[(init, 1)].centroids)
    # "auto" runs Lloyd from the same k-means++ start and from the optimal one, keeps the better
    assert runs[("kmeans++", 0)].inertia >= runs[("auto", 0)].inertia
    # "auto" keeps the best of its two starts: seed-independent here (the optimal start wins)
    assert np.array_equal(runs[("auto", 0)].centroids, runs[("auto", 1)].centroids)
    assert lowbit.kmeans(x, k, iters=iters).inertia == runs[("auto", 0)].inertia  # the default


def test_1d_quality_beats_sklearn():
    cluster = pytest.importorskip("sklearn.cluster")
    x = gaussian(30000, seed=5)
    for k in (16, 64):
        cb = lowbit.kmeans(x, k)
        km = cluster.KMeans(k, n_init=1, random_state=0).fit(x.reshape(-1, 1))
        assert sse(x, cb.decode()) <= km.inertia_ * (1 + 1e-6)


def test_1d_near_the_gaussian_optimum():
    x = gaussian(200000, seed=6)
    # Lloyd-Max 16-level quantizer of a Gaussian: 20.22 dB.
    assert lowbit.sqnr(x, lowbit.kmeans(x, 16).decode()) > 20.15


def test_objective_never_increases():
    for x, dim, init in [(gaussian(20000, 1), 1, "linear"), (gaussian(20000, 2), 1, "random"),
                         (gaussian((3000, 4), 3), 4, "kmeans++"), (gaussian((3000, 2), 4), 2, "random"),
                         (gaussian((2000, 3), 5), 3, "linear")]:
        cb = lowbit.kmeans(x, 24, dim=dim, init=init, iters=60)
        h = np.array(cb.history)
        assert len(h) >= 1 and np.all(np.diff(h) <= 0), (dim, init, h)


def test_deterministic_per_seed_and_thread_count(threads):
    x1, x4 = gaussian(50000, 7), gaussian((40000, 4), 8)
    runs = []
    for t in (1, 2):
        lowbit.set_num_threads(t)
        runs.append([lowbit.kmeans(x1, 16, init=i, seed=3) for i in ("kmeans++", "random")] +
                    [lowbit.kmeans(x4, 64, dim=4, init=i, seed=3, max_points_per_centroid=64)
                     for i in ("kmeans++", "random", "linear")])
    for a, b in zip(*runs):
        assert np.array_equal(a.centroids, b.centroids) and np.array_equal(a.indices, b.indices)
        assert a.history == b.history
    again = lowbit.kmeans(x4, 64, dim=4, init="random", seed=3, max_points_per_centroid=64)
    assert np.array_equal(again.centroids, runs[0][3].centroids)
    other = lowbit.kmeans(x4, 64, dim=4, init="random", seed=4, max_points_per_centroid=64)
    assert not np.array_equal(other.centroids, again.centroids)


def test_many_centroids_and_duplicates():
    rng = np.random.default_rng(9)
    x = rng.integers(-3000, 3000, 40000).astype(np.float32)  # about 6000 distinct values
    for k in (300, 5000):
        cb = lowbit.kmeans(x, k)
        assert cb.bits == 16 and np.array_equal(cb.decode(), cb.centroids[cb.codes(), 0])
    u = np.unique(x)
    cb = lowbit.kmeans(x, u.size)  # as many centroids as distinct values: exact
    assert np.array_equal(cb.decode(), x)


def test_large_k_is_fast_and_valid():
    # Many centroids for few values: every cluster must stay non-empty without quadratic work.
    x = gaussian(30000, seed=30)
    cb = lowbit.kmeans(x, 20000, iters=5)
    codes = cb.codes()
    assert np.array_equal(np.unique(codes), np.arange(20000))
    assert np.array_equal(cb.decode(), cb.centroids[codes, 0])
    cb = lowbit.kmeans(x, np.unique(x).size)  # one centroid per distinct value: exact
    assert np.array_equal(cb.decode(), x)


@pytest.mark.parametrize("scale", [1e30, 1e-30, 1e-42])
def test_extreme_magnitudes(scale):
    x = (gaussian((4000, 2), 10) * np.float32(scale)).astype(np.float32)
    for dim in (1, 2):
        cb = lowbit.kmeans(x, 8, dim=dim)
        y = cb.decode()
        assert np.all(np.isfinite(y))
        assert lowbit.sqnr(x, y) > 5


# --- d > 1 -------------------------------------------------------------------------------------
@pytest.mark.parametrize("dim, k", [(2, 16), (4, 256), (3, 300), (8, 40)])
def test_vector_quantization(dim, k):
    x = gaussian((600, 24), seed=dim)
    cb = lowbit.kmeans(x, k, dim=dim)
    assert cb.centroids.shape == (k, dim) and cb.shape == x.shape
    codes = cb.codes()
    assert codes.shape == (600, 24 // dim)
    y = cb.decode()
    assert np.array_equal(y, cb.centroids[codes].reshape(x.shape))
    assert cb.inertia == pytest.approx(sse(x, y), rel=1e-5)
    n = x.size
    assert cb.compression_ratio == pytest.approx(n * 32 / (n / dim * math.log2(k) + k * dim * 32))


def test_vector_quantization_sample_then_all_points():
    x = gaussian((20000, 4), 11)
    a = lowbit.kmeans(x, 32, dim=4, max_points_per_centroid=16)
    b = lowbit.kmeans(x, 32, dim=4, max_points_per_centroid=None)
    # Both assign every point; training on all points is at least about as good.
    assert lowbit.sqnr(x, b.decode()) >= lowbit.sqnr(x, a.decode()) - 0.2
    assert lowbit.sqnr(x, a.decode()) > 5.5  # 5 bits per 4 values


@pytest.mark.parametrize("dim, k", [(4, 96), (2, 200), (8, 80)])
def test_lloyd_fixed_point_assigns_every_point_to_a_nearest_centroid(dim, k):
    # The Lloyd steps search mostly each centroid's nearest centroids (d = 2, 4; at d = 8 the
    # lists rarely suffice and are dropped); run to a fixed point, the codes must be nearest
    # centroids of the result, which a search that missed a nearer centroid would not give.
    x = gaussian((4000, dim), 21 + dim)
    cb = lowbit.kmeans(x, k, dim=dim, iters=1000, max_points_per_centroid=None)
    assert len(cb.history) < 1000  # stopped at a fixed point
    d2 = ((x[:, None, :].astype(np.float64) - cb.centroids[None, :, :]) ** 2).sum(-1)
    got = d2[np.arange(len(x)), cb.codes().reshape(-1)]
    assert np.all(got <= d2.min(1) * (1 + 1e-5) + 1e-9)
    # and the default training sample (auto: 512 points per centroid for dim <= 4)
    big = gaussian((200000, 4), 5)
    full = lowbit.kmeans(big, 64, dim=4, max_points_per_centroid=None, iters=8)
    auto = lowbit.kmeans(big, 64, dim=4, iters=8)
    assert lowbit.sqnr(big, auto.decode()) > lowbit.sqnr(big, full.decode()) - 0.05
    with pytest.raises(TypeError):
        lowbit.kmeans(big, 64, dim=4, max_points_per_centroid="many")


def test_decode_into_out_and_round_trip():
    x = gaussian((64, 48), 12)
    for k, dim in [(16, 1), (100, 2), (400, 4)]:
        cb = lowbit.kmeans(x, k, dim=dim)
        out = np.empty(x.shape, np.float32)
        assert cb.decode(out=out) is out and np.array_equal(out, cb.decode())
        again = lowbit.Codebook(cb.centroids, cb.indices, cb.shape)
        assert np.array_equal(again.decode(), out)
        with pytest.raises(TypeError, match="out"):
            cb.decode(out=np.empty(x.shape, np.float64))
        with pytest.raises(ValueError, match="out"):
            cb.decode(out=np.empty((48, 64), np.float32))


def test_inputs_not_modified_and_read_only_results():
    x = gaussian((100, 8), 13)
    keep = x.copy()
    cb = lowbit.kmeans(x, 16, dim=2)
    assert np.array_equal(x, keep)
    with pytest.raises(ValueError):
        cb.centroids[0, 0] = 1.0


# --- bad input ---------------------------------------------------------------------------------
def test_bad_inputs_raise_clear_errors():
    x = gaussian(100, 14)
    with pytest.raises(ValueError, match="distinct values"):
        lowbit.kmeans(np.repeat(x[:5], 20), 6)
    with pytest.raises(ValueError, match="number of points"):
        lowbit.kmeans(gaussian((10, 4), 1), 11, dim=4)
    with pytest.raises(ValueError, match="distinct points"):
        lowbit.kmeans(np.tile(gaussian((3, 4), 1), (10, 1)), 4, dim=4)
    for bad in (np.nan, np.inf, -np.inf):
        y = x.copy()
        y[17] = bad
        with pytest.raises(ValueError, match="x holds 1 non-finite"):
            lowbit.kmeans(y, 4)
        with pytest.raises(ValueError, match="non-finite"):
            lowbit.kmeans(y.reshape(25, 4), 4, dim=2)
    with pytest.raises(ValueError, match="empty"):
        lowbit.kmeans(np.zeros((0, 4), np.float32), 2)
    with pytest.raises(ValueError, match="at least one dimension"):
        lowbit.kmeans(np.float32(1.0), 2)
    with pytest.raises(ValueError, match="dim=3 must divide"):
        lowbit.kmeans(gaussian((10, 8)), 2, dim=3)
    with pytest.raises(TypeError, match="x must be a floating-point array"):
        lowbit.kmeans(np.arange(100), 4)
    with pytest.raises(TypeError, match="k must be an integer"):
        lowbit.kmeans(x, 4.0)
    for k in (1, 65537, -3):
        with pytest.raises(ValueError, match="k must be in 2..65536"):
            lowbit.kmeans(x, k)
    with pytest.raises(ValueError, match="init must be one of"):
        lowbit.kmeans(x, 4, init="kmeans||")
    with pytest.raises(TypeError, match="init"):
        lowbit.kmeans(x, 4, init=None)
    with pytest.raises(ValueError, match="iters"):
        lowbit.kmeans(x, 4, iters=0)
    with pytest.raises(TypeError, match="dim"):
        lowbit.kmeans(x, 4, dim="2")
    with pytest.raises(ValueError, match="seed"):
        lowbit.kmeans(x, 4, seed=-1)


def test_codebook_constructor_checks():
    cb = lowbit.kmeans(gaussian(101, 15), 16)
    with pytest.raises(TypeError, match="uint8"):
        lowbit.Codebook(cb.centroids, cb.indices.astype(np.int16), cb.shape)
    with pytest.raises(ValueError, match="bytes"):
        lowbit.Codebook(cb.centroids, cb.indices[:-1], cb.shape)
    small = lowbit.kmeans(gaussian(101, 15), 5)
    bad = small.indices.copy()
    bad[3] = 0xFF  # codes 15 >= k = 5
    with pytest.raises(ValueError, match="smaller than k=5"):
        lowbit.Codebook(small.centroids, bad, small.shape)
    with pytest.raises(ValueError, match="non-finite"):
        lowbit.Codebook(np.full((4, 1), np.nan, np.float32), small.indices, small.shape)
    with pytest.raises(ValueError, match="divide"):
        lowbit.Codebook(np.zeros((4, 3), np.float32), np.zeros(50, np.uint8), (101,))
    with pytest.raises(TypeError, match="shape"):
        lowbit.Codebook(cb.centroids, cb.indices, 101)


# --- product quantization ----------------------------------------------------------------------
def test_product_quantize():
    x = gaussian((3000, 32), 16)
    pq = lowbit.product_quantize(x, 8, bits=6)
    assert pq.centroids.shape == (8, 64, 4) and pq.codes.shape == (3000, 8)
    assert pq.codes.dtype == np.uint8 and int(pq.codes.max()) < 64
    y = pq.decode()
    assert y.shape == x.shape and y.dtype == np.float32
    want = np.concatenate([pq.centroids[s][pq.codes[:, s]] for s in range(8)], axis=1)
    assert np.array_equal(y, want)
    assert pq.nbytes == pq.codes.nbytes + pq.centroids.nbytes
    assert lowbit.sqnr(x, y) > 5
    assert sum(pq.inertia) == pytest.approx(sse(x, y), rel=1e-5)
    again = lowbit.product_quantize(x, 8, bits=6)
    assert np.array_equal(again.codes, pq.codes)
    pq3 = lowbit.product_quantize(x.reshape(3, 1000, 32), 4, bits=2)
    assert pq3.codes.shape == (3, 1000, 4) and pq3.decode().shape == (3, 1000, 32)


def test_product_quantize_bad_input():
    x = gaussian((300, 12), 17)
    with pytest.raises(ValueError, match="m=5 must divide"):
        lowbit.product_quantize(x, 5)
    with pytest.raises(ValueError, match="fewer than 2\\*\\*bits"):
        lowbit.product_quantize(x, 4, bits=9)
    with pytest.raises(ValueError, match="bits"):
        lowbit.product_quantize(x, 4, bits=17)
    y = x.copy()
    y[5, 5] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        lowbit.product_quantize(y, 4, bits=4)
    with pytest.raises(TypeError):
        lowbit.product_quantize(np.ones((300, 12), np.int32), 4)


# --- CodebookLinear ----------------------------------------------------------------------------
@pytest.mark.parametrize("activations", ["int8", "int16"])
@pytest.mark.parametrize("k, dim", [(16, 1), (8, 1), (64, 1), (16, 2), (300, 4)])
def test_codebook_linear_matches_decoded_weight(k, dim, activations, threads):
    w = gaussian((70, 136), 18) * 0.1
    b = gaussian(70, 19)
    layer = lowbit.CodebookLinear(w, b, k=k, dim=dim, activations=activations)
    x = gaussian((5, 3, 136), 20)
    want = x @ layer.weight().T + b
    y = layer(x)
    assert y.dtype == np.float32 and y.shape == (5, 3, 70)
    # int8 activations and table on the 4-bit path (k <= 16, dim 1) unless int16; else 13 bits.
    eight = k <= 16 and dim == 1 and activations == "int8"
    assert lowbit.sqnr(want, y) > (30 if eight else 55)
    lowbit.set_num_threads(1)
    assert np.array_equal(layer(x), y)
    assert np.array_equal(layer(x, relu=True), np.maximum(y, 0))
    assert layer.in_features == 136 and layer.out_features == 70
    assert layer.nbytes < w.nbytes


def test_codebook_linear_gemv_and_sizes():
    w = gaussian((256, 512), 21) * 0.05
    layer = lowbit.CodebookLinear(w, None, k=16)
    x = gaussian(512, 22)
    y = layer(x)
    assert y.shape == (256,)
    assert lowbit.sqnr(x @ layer.weight().T, y) > 30
    # 4-bit codes: half a byte per weight, plus the int8 table and the scale.
    assert layer.nbytes == 256 * 512 // 2 + 16 + 4
    assert layer(np.zeros((0, 512), np.float32)).shape == (0, 256)


def test_codebook_linear_bad_input():
    w = gaussian((8, 16), 23)
    layer = lowbit.CodebookLinear(w, k=4)
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., 16\)"):
        layer(gaussian((2, 15)))
    x = gaussian((2, 16))
    x[1, 3] = np.inf
    with pytest.raises(ValueError, match="non-finite"):
        layer(x)
    with pytest.raises(ValueError, match="weight must be 2-D"):
        lowbit.CodebookLinear(gaussian(16), k=4)
    with pytest.raises(ValueError, match="bias must have shape"):
        lowbit.CodebookLinear(w, np.zeros(7, np.float32), k=4)
    with pytest.raises(ValueError, match="dim=3 must divide"):
        lowbit.CodebookLinear(w, k=4, dim=3)
    with pytest.raises(ValueError, match="distinct"):
        lowbit.CodebookLinear(np.ones((8, 16), np.float32), k=4)
    with pytest.raises(TypeError):
        lowbit.CodebookLinear(np.ones((8, 16), np.int64), k=4)
    with pytest.raises(ValueError, match="activations"):
        lowbit.CodebookLinear(w, k=4, activations="int4")


# --- files -------------------------------------------------------------------------------------
def test_save_load_round_trip(tmp_path):
    x = gaussian((40, 24), 24)
    cb = lowbit.kmeans(x, 16, dim=2)
    pq = lowbit.product_quantize(x, 6, bits=3)
    layer = lowbit.CodebookLinear(x, gaussian(40, 25), k=16)
    precise = lowbit.CodebookLinear(x, None, k=16, activations="int16")
    for i, obj in enumerate((cb, pq, layer, lowbit.kmeans(x, 300), precise)):
        lowbit.save(obj, tmp_path / f"o{i}")
        back = lowbit.load(tmp_path / f"o{i}")
        assert type(back) is type(obj)
        if isinstance(obj, lowbit.CodebookLinear):
            xin = gaussian((3, 24), 26)
            assert np.array_equal(back(xin), obj(xin)) and back.activations == obj.activations
        else:
            assert np.array_equal(back.decode(), obj.decode())
    assert lowbit.load(tmp_path / "o0").history == cb.history


def test_from_codebook():
    w = gaussian((30, 40), 27)
    cb = lowbit.kmeans(w, 16)
    layer = lowbit.CodebookLinear.from_codebook(cb)
    x = gaussian((2, 40), 28)
    assert np.array_equal(layer(x), lowbit.CodebookLinear(w, k=16)(x))
    with pytest.raises(TypeError, match="lowbit.Codebook"):
        lowbit.CodebookLinear.from_codebook((cb.centroids, cb.indices))
    with pytest.raises(ValueError, match="2-D"):
        lowbit.CodebookLinear.from_codebook(lowbit.kmeans(gaussian(100), 4))


def test_load_rejects_inconsistent_state():
    from lowbit import io as lio
    cb = lowbit.kmeans(gaussian(101, 29), 5)
    state = {"centroids": cb.centroids, "indices": np.full_like(cb.indices, 0xFF), "shape": cb.shape,
             "history": [], "inertia": None}
    with pytest.raises(ValueError, match="Codebook"):
        lio._BY_NAME["Codebook"].from_state(state)
    state["indices"] = cb.indices.astype(np.uint16)
    with pytest.raises(ValueError, match="Codebook"):
        lio._BY_NAME["Codebook"].from_state(state)


@pytest.mark.parametrize("k,dim,shape", [(16, 1, (9, 131)), (5, 1, (3, 7)), (64, 2, (40, 70)),
                                         (300, 1, (24, 32)), (16, 2, (8, 10))])
def test_codebook_linear_keeps_only_the_plan(k, dim, shape):
    w = np.random.default_rng(k).standard_normal(shape).astype(np.float32)
    cb = lowbit.kmeans(w, k, dim=dim)
    layer = lowbit.CodebookLinear.from_codebook(cb, np.zeros(shape[0], np.float32))
    # The codes live in the plan only; the Codebook is rebuilt from it, equal to the original.
    assert sum(v.nbytes for v in vars(layer).values() if isinstance(v, np.ndarray)) \
        <= cb.centroids.nbytes + shape[0] * 4
    got = layer.codebook
    np.testing.assert_array_equal(got.indices, cb.indices)
    np.testing.assert_array_equal(got.centroids, cb.centroids)
    assert (got.shape, got.history, got.inertia) == (cb.shape, cb.history, cb.inertia)
    np.testing.assert_array_equal(layer.weight(), cb.decode())


# ---- per_row, calibration, outliers ---------------------------------------------------------

def _scaled_rows(out=48, inn=192, seed=0):
    """A layer whose rows have very different scales (about 1e-3 to 1e3 apart)."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((out, inn)) * np.exp(rng.uniform(-3.5, 3.5, (out, 1)))).astype(np.float32)


def _skewed_inputs(n, inn, seed):
    """Inputs where a tenth of the channels are 30x larger (the same channels for every seed)."""
    big = np.random.default_rng(99).random(inn) < 0.1
    x = np.random.default_rng(seed).standard_normal((n, inn))
    return (x * np.where(big, 30.0, 1.0)).astype(np.float32)


def _snr(ref, approx):
    return 10 * math.log10(float(np.sum(ref.astype(np.float64) ** 2)) / sse(ref, approx))


@pytest.mark.parametrize("k", [16, 40])
def test_per_row_beats_one_codebook_and_runs_on_the_kernels(k):
    w = _scaled_rows()
    one, rows = lowbit.CodebookLinear(w, k=k), lowbit.CodebookLinear(w, k=k, per_row=True)
    assert rows.per_row and rows.k == k and rows.dim == 1 and rows.centroids.shape == (48, k)
    assert _snr(w, rows.weight()) > _snr(w, one.weight()) + 3
    x = gaussian((7, 192), 1)
    y = rows(x)
    assert _snr(x @ rows.weight().T, y) > 35  # int8 / int16 activations on the layer's own weight
    # held: 4-bit codes (k <= 16) or a byte per code, a table and a float32 scale per row
    codes = 48 * 192 // 2 if k <= 16 else 48 * 192
    table = 48 * 16 if k <= 16 else 48 * k * 2
    assert rows.nbytes == codes + table + 48 * 4
    with pytest.raises(ValueError, match="one codebook per output row"):
        rows.codebook


def test_calibration_weighting_lowers_output_error_on_held_out_inputs():
    big = np.random.default_rng(99).random(160) < 0.1  # the large channels of _skewed_inputs
    w = gaussian((64, 160), 3) * np.where(big, 0.1, 1.0).astype(np.float32)  # there small weights
    calib, test = _skewed_inputs(512, 160, 1), _skewed_inputs(512, 160, 2)
    for per_row in (False, True):
        plain = lowbit.CodebookLinear(w, k=8, per_row=per_row, activations="int16")
        cal = lowbit.CodebookLinear(w, k=8, per_row=per_row, calibration=calib, activations="int16")
        assert cal.calibrated and not plain.calibrated
        ref = test @ w.T
        assert _snr(ref, cal(test)) > _snr(ref, plain(test)) + 2


def test_outliers_reduce_error_and_are_kept_exactly():
    w = gaussian((40, 128), 5)
    w[np.random.default_rng(6).random(w.shape) < 0.01] *= 25  # heavy tails
    x = gaussian((16, 128), 7)
    for per_row in (False, True):
        base = lowbit.CodebookLinear(w, per_row=per_row, activations="int16")
        lay = lowbit.CodebookLinear(w, per_row=per_row, outliers=0.02, activations="int16")
        indptr, cols, values = lay.sparse
        assert values.size == int(0.02 * w.size) and lay.outliers == values.size / w.size
        rows = np.repeat(np.arange(40), np.diff(indptr))
        np.testing.assert_array_equal(lay.weight()[rows, cols], w[rows, cols])
        assert np.all(np.abs(w[rows, cols]).min() >= np.delete(np.abs(w).ravel(), rows * 128 + cols).max())
        assert _snr(x @ w.T, lay(x)) > _snr(x @ w.T, base(x)) + 1
        assert _snr(x @ lay.weight().T, lay(x)) > 60
        assert lay.nbytes == base.nbytes + values.size * 12 + 41 * 4  # value, delta, column; row pointers
        assert "outliers=" in repr(lay) and ("per_row=True" in repr(lay)) == per_row


def test_new_forms_same_on_every_isa_and_thread_count(threads):
    from conftest import ISAS, using_isa
    w, calib = gaussian((33, 130), 8), _skewed_inputs(64, 130, 9)
    x = gaussian((9, 130), 10)
    kinds = [dict(per_row=True), dict(per_row=True, k=40), dict(per_row=True, activations="int16"),
             dict(calibration=calib, outliers=0.01), dict(per_row=True, calibration=calib, outliers=0.01)]
    ref = None
    for isa in ISAS:
        for t in (1, 2, 3):
            with using_isa(isa):
                lowbit.set_num_threads(t)
                got = [(l.weight(), l(x), l(x[:1])) for l in (lowbit.CodebookLinear(w, **o) for o in kinds)]
            if ref is None:
                ref = got
            for a, b in zip(ref, got):
                for u, v in zip(a, b):
                    np.testing.assert_array_equal(u, v)


def test_new_forms_round_trip_files_and_pickle(tmp_path):
    import pickle
    w, calib, x = _scaled_rows(20, 70), _skewed_inputs(32, 70, 1), gaussian((5, 70), 2)
    bias = gaussian((20,), 3)
    for opts in (dict(per_row=True), dict(per_row=True, k=100, activations="int16"),
                 dict(per_row=True, calibration=calib, outliers=0.03), dict(outliers=0.05)):
        lay = lowbit.CodebookLinear(w, bias, **opts)
        lowbit.save(lay, tmp_path / "l.lowbit")
        for back in (lowbit.load(tmp_path / "l.lowbit"), pickle.loads(pickle.dumps(lay))):
            assert repr(back) == repr(lay) and back.nbytes == lay.nbytes
            assert (back.per_row, back.outliers, back.calibrated) == (lay.per_row, lay.outliers, lay.calibrated)
            np.testing.assert_array_equal(back.weight(), lay.weight())
            np.testing.assert_array_equal(back(x), lay(x))


def test_new_forms_refusals_and_inputs_untouched(tmp_path):
    w, calib = gaussian((8, 64), 1), gaussian((10, 64), 2)
    w0, c0 = w.copy(), calib.copy()
    lay = lowbit.CodebookLinear(w, per_row=True, calibration=calib, outliers=0.1)
    np.testing.assert_array_equal(w, w0)
    np.testing.assert_array_equal(calib, c0)
    bad = [(dict(per_row=1), TypeError, "per_row"), (dict(outliers="x"), TypeError, "outliers"),
           (dict(outliers=1.0), ValueError, "outliers"), (dict(outliers=-0.1), ValueError, "outliers"),
           (dict(calibration=calib[:, :5]), ValueError, "calibration"),
           (dict(calibration=calib.astype(int)), TypeError, "calibration"),
           (dict(calibration=np.full((3, 64), np.nan, np.float32)), ValueError, "calibration"),
           (dict(per_row=True, k=300), ValueError, "k"), (dict(per_row=True, dim=2), ValueError, "dim")]
    for opts, err, name in bad:
        with pytest.raises(err, match=name):
            lowbit.CodebookLinear(w, **opts)
    for l in (lay, lowbit.CodebookLinear(w, outliers=0.1)):
        with pytest.raises(ValueError, match="CodebookLinear with per_row"):
            lowbit.export_runtime([l], tmp_path / "m.lbrt")
        pytest.importorskip("onnx")
        with pytest.raises(ValueError, match="CodebookLinear with per_row"):
            lowbit.export_onnx([l], tmp_path / "m.onnx")
