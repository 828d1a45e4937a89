"""pytest-benchmark: training throughput of lowbit.nn against PyTorch (issue 5).

One benchmarked call is one epoch of 1024 random rows through an MLP 64-512-512-10 (ReLU) with
batch 64: forward, softmax cross-entropy, backward and an Adam step per batch, on one thread
(numpy's BLAS via threadpoolctl, torch.set_num_threads(1)). Compare the two means:
samples/s = 1024 / mean seconds. The torch case is skipped when torch is not installed.

    pytest bench/bench_train.py --benchmark-only
    pytest bench/bench_train.py --benchmark-disable     # as a smoke test
"""
import numpy as np
import pytest

pytest.importorskip("pytest_benchmark")

import lowbit  # noqa: E402

SIZES = [64, 512, 512, 10]
ROWS, BATCH = 1024, 64


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return rng.standard_normal((ROWS, SIZES[0]), dtype=np.float32), rng.integers(0, SIZES[-1], ROWS)


@pytest.fixture
def one_thread():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def test_train_lowbit_nn(benchmark, data, one_thread):
    x, y = data
    model = lowbit.nn.MLP(SIZES, seed=0)
    seeds = iter(range(1 << 30))

    def epoch():
        return lowbit.nn.fit(model, x, y, epochs=1, batch_size=BATCH, lr=1e-3, seed=next(seeds))

    hist = benchmark(epoch)
    benchmark.extra_info["samples_per_call"] = ROWS
    assert np.isfinite(hist.loss[-1])


def test_train_torch(benchmark, data, one_thread):
    torch = pytest.importorskip("torch")
    x, y = data
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(64, 512), torch.nn.ReLU(), torch.nn.Linear(512, 512),
                                    torch.nn.ReLU(), torch.nn.Linear(512, 10))
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)

        def epoch():
            order = torch.randperm(ROWS)
            for s in range(0, ROWS, BATCH):
                idx = order[s:s + BATCH]
                opt.zero_grad(set_to_none=True)
                loss = torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx])
                loss.backward()
                opt.step()
            return float(loss.detach())

        loss = benchmark(epoch)
        benchmark.extra_info["samples_per_call"] = ROWS
        assert np.isfinite(loss)
    finally:
        torch.set_num_threads(old)
