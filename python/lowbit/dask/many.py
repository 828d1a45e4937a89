"""Many models compressed on a Dask cluster, each saved as a lowbit file."""
from __future__ import annotations

import os
import re

from lowbit.codebook import CodebookLinear
from lowbit.io import save

from ._common import Runner, Shard, as_out_dir, pinned_threads

_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
METHODS = ("int8", "codebook")


def _codebook_model(model, *, k=16, dim=1, seed=0, iters=25):
    """Every Linear of the model as a CodebookLinear (k-means codebook of its weight)."""
    from lowbit.models import Sequential, as_model, linear_indices, weight_of

    m = as_model(model)
    layers = list(m.layers)
    for i in linear_indices(m):
        layer = layers[i]
        layers[i] = CodebookLinear(weight_of(layer), getattr(layer, "bias", None), k=k, dim=dim,
                                          seed=seed, iters=iters)
    return Sequential(layers)


def _compress_one(model, name, calibration, method, options, out):
    """On a worker: load (a path), compress, save to out/name.lowbit; returns the path."""
    from lowbit.models import load_model, quantize_model

    with pinned_threads():
        if isinstance(model, str):
            model = load_model(model)
        if callable(method):
            result = method(model, **options)
        elif method == "int8":
            result = quantize_model(model, calibration, **options)
        else:
            result = _codebook_model(model, **options)
        path = os.path.join(out, f"{name}.lowbit")
        save(result, path)  # atomic: a temporary file, then a rename
        return path


def compress_many(models, out, *, method="int8", calibration=None, client=None, **options):
    """Compress many models (or layers) on the workers, each saved as ``out/<name>.lowbit``.

    Each model is a task: loaded on the worker when given as a path, compressed, and written
    with :func:`lowbit.save` (atomically: a retried task after a killed worker rewrites the
    same file). The files equal those one process writes with the same calls.

    Parameters
    ----------
    models : dict of str to model or path
        Names (letters, digits, ``_``, ``.``, ``-``) to models: anything
        :func:`lowbit.models.as_model` takes, or a path :func:`lowbit.load_model` reads on the
        worker.
    out : str or os.PathLike
        The directory for the files (created if missing).
    method : {"int8", "codebook"} or callable, default "int8"
        ``"int8"``: :func:`lowbit.quantize_model` (``calibration`` needed); ``"codebook"``:
        every Linear as a :class:`lowbit.CodebookLinear` (options ``k``, ``dim``, ``seed``,
        ``iters``); a callable ``f(model, **options)`` returning any object
        :func:`lowbit.save` stores (picklable).
    calibration : array_like or dict, optional
        For ``"int8"``: calibration inputs for every model, or a dict of them by name.
    client : distributed.Client, None or "local", default None
        The Dask client (None: the current one); ``"local"``: in this process.
    **options
        Passed to the method (e.g. ``bits``, ``per_channel``, ``k``).

    Returns
    -------
    dict of str to str
        Each name's file.

    Raises
    ------
    TypeError
        If ``models`` is not a dict, ``method`` is neither a known name nor callable, or
        ``out`` is not a path.
    ValueError
        If a name is not a plain file name, ``method`` is unknown, ``"int8"`` has no
        calibration data for a model, ``out`` is not a directory, or there is no Dask client.
    """
    if not isinstance(models, dict):
        raise TypeError(f"models must be a dict of name -> model or path, got {type(models).__name__}")
    if not models:
        raise ValueError("models must not be empty")
    for name in models:
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(f"models: name {name!r} must be a plain file name (letters, digits, _ . -)")
    if not callable(method):
        if not isinstance(method, str):
            raise TypeError(f"method must be \"int8\", \"codebook\" or a callable, got {type(method).__name__}")
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)} or a callable, got {method!r}")
    calib = {}
    for name in models:
        c = calibration.get(name) if isinstance(calibration, dict) else calibration
        if method == "int8" and c is None:
            raise ValueError(f"calibration: method \"int8\" needs calibration data for model {name!r}")
        calib[name] = c
    out_dir = as_out_dir(out)
    names = list(models)
    shards = [Shard(i, "array", os.fspath(models[n]) if isinstance(models[n], os.PathLike) else models[n])
              for i, n in enumerate(names)]
    runner = Runner(client)
    paths = runner.map(_compress_one, shards, method, options, out_dir, each=[(n, calib[n]) for n in names])
    return dict(zip(names, paths))
