"""Training throughput: lowbit.nn (numpy, hand-written backward) against the same model in PyTorch.

The model is an MLP 64-512-512-10 (ReLU), trained with softmax cross-entropy and Adam (lr 1e-3) on
mini-batches of 64 random rows; one timed call is one epoch of ``EPOCH_ROWS`` rows (shuffle,
forward, backward, Adam update for every batch):

  * ``lowbit.nn.fit``: ``lowbit.nn.fit(model, x, y, epochs=1, batch_size=64)`` (Adam updated in
    place; float32; numpy's BLAS);
  * ``lowbit.nn step loop``: the same steps without fit's bookkeeping (forward/backward/Adam);
  * ``torch Adam (default)``: the usual loop -- ``zero_grad``, ``cross_entropy(model(xb), yb)``,
    ``backward``, ``step`` -- with ``torch.optim.Adam``'s defaults;
  * ``torch Adam (fused)``: the same with ``torch.optim.Adam(fused=True)``.

samples/s = rows / seconds per epoch (median of ``repeat`` interleaved samples). The ratio is
lowbit.nn.fit's throughput over torch's default Adam (the target is >= 1.0x on one thread).
Thread counts are set alike for numpy's BLAS (threadpoolctl), torch and lowbit.
"""
from __future__ import annotations

import numpy as np

from . import common

SIZES = (64, 512, 512, 10)
BATCH = 64
EPOCH_ROWS = 2048
QUICK_EPOCH_ROWS = 512
LR = 1e-3

FIT = "lowbit.nn.fit"
LOOP = "lowbit.nn step loop"
TORCH = "torch Adam (default)"
TORCH_FUSED = "torch Adam (fused)"


def make_data(rows: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, SIZES[0]), dtype=np.float32)
    y = rng.integers(0, SIZES[-1], rows)
    return x, y


def lowbit_cases(x, y):
    """(name, fn) pairs: one epoch of lowbit.nn training per call."""
    import lowbit
    from lowbit.nn.functional import _cross_entropy

    fit_model = lowbit.nn.MLP(list(SIZES), seed=0)
    seeds = iter(range(1 << 30))

    def run_fit():
        lowbit.nn.fit(fit_model, x, y, epochs=1, batch_size=BATCH, lr=LR, seed=next(seeds))

    loop_model = lowbit.nn.MLP(list(SIZES), seed=0)
    opt = lowbit.nn.Adam(LR)
    rng = np.random.default_rng(0)

    def run_loop():
        order = rng.permutation(x.shape[0])
        for s in range(0, x.shape[0], BATCH):
            idx = order[s:s + BATCH]
            z = loop_model.forward(x[idx], train=True)
            _, g = _cross_entropy(z, y[idx])
            loop_model.backward(g, need_input_grad=False)
            opt.step(loop_model.parameters(), loop_model.gradients())

    return [(FIT, run_fit), (LOOP, run_loop)], (fit_model, loop_model)


def torch_cases(torch, x, y):
    """(name, fn) pairs: one epoch of the same training in PyTorch per call."""
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    cases = []
    for name, kw in ((TORCH, {}), (TORCH_FUSED, {"fused": True})):
        torch.manual_seed(0)
        layers = []
        for i, (a, b) in enumerate(zip(SIZES[:-1], SIZES[1:])):
            layers.append(torch.nn.Linear(a, b))
            if i < len(SIZES) - 2:
                layers.append(torch.nn.ReLU())
        model = torch.nn.Sequential(*layers)
        try:
            opt = torch.optim.Adam(model.parameters(), lr=LR, **kw)
        except (TypeError, RuntimeError, ValueError) as e:  # fused Adam unsupported in this build
            common.progress(f"[train] {name} skipped: {e}")
            continue
        gen = torch.Generator().manual_seed(0)

        def run(model=model, opt=opt, gen=gen):
            order = torch.randperm(xt.shape[0], generator=gen)
            for s in range(0, xt.shape[0], BATCH):
                idx = order[s:s + BATCH]
                opt.zero_grad(set_to_none=True)
                loss = torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx])
                loss.backward()
                opt.step()

        cases.append((name, run))
    return cases


def main(threads=(1,), repeat=5, quick=False) -> int:
    """Prints samples/s of forward+backward+Adam (batch 64, MLP 64-512-512-10) for lowbit.nn and
    PyTorch (when installed) at each thread count, and lowbit.nn.fit / torch default Adam.
    Returns 0 (1 if lowbit's training produced a non-finite loss)."""
    thread_list = common.parse_threads(threads)
    repeat = common.check_repeat(repeat)
    rows = QUICK_EPOCH_ROWS if quick else EPOCH_ROWS
    min_sample = 0.05 if quick else 0.3
    x, y = make_data(rows)
    torch = common.optional_import("torch")
    status = 0
    all_timings = []
    for t in thread_list:
        common.progress(f"[train] MLP {'-'.join(map(str, SIZES))}, batch {BATCH}, {rows} rows per call, "
                        f"{t} thread(s) ...")
        with common.Threads(t):
            cases, models = lowbit_cases(x, y)
            if torch is not None:
                cases += torch_cases(torch, x, y)
            timings = common.measure(cases, repeat=repeat, min_sample=min_sample, warmup=0.1)
            header = common.describe(t, peers=("numpy", "torch"))
        all_timings += list(timings.values())
        for m in models:
            z = m(x[:256])
            if not np.all(np.isfinite(z)):
                print(f"[train] lowbit.nn produced non-finite outputs after training ({t} threads)")
                status = 1
        ref = timings.get(TORCH)
        rows_out = []
        for name, tm in timings.items():
            sps = rows / tm.median
            ratio = common.fmt_ratio(sps, rows / ref.median) if ref is not None else "-"
            rows_out.append((name, f"{sps:,.0f}", f"{rows / min(tm.samples):,.0f}", ratio,
                             f"{tm.spread:.1%}"))
        print(f"== training throughput: MLP {'-'.join(map(str, SIZES))}, batch {BATCH}, "
              f"forward+backward+Adam, float32 ==")
        print("\n".join(header))
        print(f"timing: median of {repeat} samples (each >= {min_sample * 1e3:.0f} ms), tools interleaved; "
              f"one call = one epoch of {rows} rows; 'vs torch' = samples/s over {TORCH}'s"
              + ("" if torch is not None else "; torch is not installed"))
        print(common.format_table(["tool", "samples/s", "best samples/s", "vs torch", "noise"], rows_out))
        if ref is not None and FIT in timings:
            r = (rows / timings[FIT].median) / (rows / ref.median)
            print(f"lowbit.nn.fit / {TORCH}: {r:.2f}x ({'meets' if r >= 1.0 else 'below'} the 1.0x target"
                  + ("; quick mode: short samples, noisy -- not the reference measurement)" if quick else ")"))
        print()
    print(common.noise_summary(all_timings))
    print()
    return status


if __name__ == "__main__":
    import sys

    sys.exit(main())
