"""Calibration over shards on a Dask cluster: observers per shard, merged."""
from __future__ import annotations

from lowbit.observers import MinMaxObserver, observer

from ._common import Runner, pinned_threads, resolve, shards_of


def _observe_shard(x, method, kwargs, transform):
    """On a worker: a new observer (method, kwargs) that has seen one shard."""
    with pinned_threads():
        a = resolve(x)
        if transform is not None:
            a = transform(a)
        return observer(method, **kwargs).observe(a)


def calibrate(data, method="minmax", *, transform=None, client=None, **kwargs):
    """An observer's statistics over sharded data, computed on the workers and merged.

    Pass 1 observes every shard with a :class:`lowbit.MinMaxObserver` and merges them; for the
    histogram methods, pass 2 observes every shard with the method's observer built with
    ``bound=`` the data's ``max(abs(x))`` from pass 1, and merges them
    (:meth:`lowbit.Observer.merge`, in shard order). The merged observer holds exactly the
    statistics one observer computes over all the data at once (the same histograms bit for
    bit), so ``calibrate(...).range()`` equals ``lowbit.calibrate(all_data, method)``.

    Parameters
    ----------
    data : dask.array.Array, list of str or numpy.ndarray
        The values (any number of dimensions, float, finite): a dask array (each block along
        the first axis is a shard), a list of ``.npy``/``.npz`` files (workers need the paths)
        or a numpy array (shards of 65536 rows).
    method : {"minmax", "percentile", "mse", "entropy"}, default "minmax"
        The calibration method (see :func:`lowbit.observer`).
    transform : callable, optional
        Applied on the worker to each shard before it is observed (e.g. a model's layers up to
        the one being calibrated); must be picklable.
    client : distributed.Client, None or "local", default None
        The Dask client (None: the current one); ``"local"``: in this process.
    **kwargs
        The observer's options (``percentile``, ``bits``, ``num_bins``, ``start_bin``,
        ``symmetric``).

    Returns
    -------
    lowbit.observers.Observer
        The merged observer; ``.range()`` is the calibrated range.

    Raises
    ------
    TypeError
        If ``data`` is of another kind or not floating-point, or an option has the wrong type.
    ValueError
        If ``method`` is unknown, an option is out of range, the data holds NaN/Inf, ``bound``
        is passed (it is set by pass 1), or there is no Dask client.
    """
    if "bound" in kwargs:
        raise ValueError("bound is set by calibrate's first pass (the data's max(abs(x))); do not pass it")
    template = observer(method, **kwargs)  # checks method and options before any work
    shards, _ = shards_of(data, "data", ndim=tuple(range(1, 33)))
    runner = Runner(client)
    first = MinMaxObserver(symmetric=template.symmetric)
    for o in runner.map(_observe_shard, shards, "minmax", {"symmetric": template.symmetric}, transform):
        first.merge(o)
    if method == "minmax" or first.count == 0:
        return first
    bound = max(abs(first.min), abs(first.max))
    merged = observer(method, bound=bound, **kwargs)
    for o in runner.map(_observe_shard, shards, method, dict(kwargs, bound=bound), transform):
        merged.merge(o)
    return merged
