"""Models from arrays, files and torch modules. Arrays do not record the activation between layers: it comes from the .safetensors metadata or the caller, never from a guess."""
from __future__ import annotations

import os

import numpy as np

from .. import io as _io
from .._checks import as_float32, check_finite
from . import layers as nn
from .graph import is_linear, make_linear
from .safetensors import read_with_metadata

# --------------------------------------------------------------------------- loading

class _Unset:
    """The default of `activation`: the file's metadata says it, else the caller must."""

    def __repr__(self) -> str:
        return "<from the file's metadata, else required>"


_UNSET = _Unset()
_ACTIVATIONS = ("relu", "gelu", "gelu_tanh", None)
_ACT_HELP = ("pass activation='relu', 'gelu' (exact erf, as torch.nn.GELU()), 'gelu_tanh' or None "
             "(no activation layers)")


def _canon_activation(activation):
    """activation checked: 'relu', 'gelu', 'gelu_tanh' or None ('none' and 'identity' mean None)."""
    if activation in (None, "none", "identity"):
        return None
    if not isinstance(activation, str) or activation not in _ACTIVATIONS:
        raise ValueError(f"activation must be 'relu', 'gelu', 'gelu_tanh' or None, got {activation!r}")
    return activation


def _activation_layer(activation):
    activation = _canon_activation(activation)
    if activation is None:
        return None
    if activation == "relu":
        return nn.ReLU()
    return nn.GELU(approximate="none" if activation == "gelu" else "tanh")


def _resolve_activation(activation, stored, source: str):
    """The activation to use: the caller's, else the one stored in the file's metadata (`stored`,
    None when absent); _UNSET when neither says. A caller's value that contradicts the metadata
    raises ValueError."""
    if stored is not None:
        if not isinstance(stored, str):
            raise ValueError(f"{source}: the metadata's activation must be a string, got {stored!r}")
        try:
            stored = _canon_activation(stored)
        except ValueError:
            raise ValueError(f"{source}: the metadata names the activation {stored!r}, which lowbit "
                             "does not have ('relu', 'gelu', 'gelu_tanh' or 'none')") from None
        if activation is _UNSET:
            return stored
        if _canon_activation(activation) != stored:
            raise ValueError(f"{source}: activation={activation!r} was given but the file's metadata "
                             f"says {stored!r}")
    return activation


def _group_arrays(arrays: dict) -> list[tuple[str, dict]]:
    groups: dict[str, dict] = {}
    for key, v in arrays.items():
        if not isinstance(key, str):
            raise TypeError(f"arrays keys must be strings like '0.weight', got {key!r}")
        prefix, _, leaf = key.rpartition(".")
        groups.setdefault(prefix, {})[leaf] = v
    return list(groups.items())


def _trailing_int(prefix: str):
    last = prefix.rpartition(".")[2]
    return int(last) if last.isdigit() else None


def from_arrays(arrays, *, activation=_UNSET, source="arrays"):
    """A Sequential from named arrays.

    The arrays are grouped as ``"<prefix>.weight"`` / ``"<prefix>.bias"`` (PyTorch state_dict
    names such as ``"0.weight"``, ``"layers.2.bias"``, ``"fc1.weight"``). A 2-D weight makes a
    Linear, a 1-D weight with a bias of the same shape a LayerNorm (eps 1e-5). When every
    prefix ends in an index (nn.Sequential numbering) the layers are ordered by it and an
    ``activation`` layer fills each gap in the numbering; otherwise the layers keep the order
    given and one goes between consecutive Linear layers. Arrays do not say which activation
    the model had, so where a gap needs one ``activation`` must be given (lowbit does not
    guess).

    Parameters
    ----------
    arrays : dict of str to array_like
        The named float arrays (copied, as float32), finite.
    activation : {"relu", "gelu", "gelu_tanh"} or None, optional
        The activation between the layers: ``"relu"``, ``"gelu"`` (exact erf,
        torch.nn.GELU()), ``"gelu_tanh"`` or None (no activation layers; ``"none"`` and
        ``"identity"`` mean None too). Required only where the layers leave a gap.
    source : str, default "arrays"
        What the arrays came from, named in error messages.

    Returns
    -------
    lowbit.models.Sequential
        The model.

    Raises
    ------
    TypeError
        If ``arrays`` is not a dict, a key is not a string, or an array is not a float array.
    ValueError
        If ``arrays`` is empty, a group is neither a Linear nor a LayerNorm (or holds other
        names), an array holds NaN/Inf, the widths of consecutive layers do not match,
        ``activation`` is unknown, or a gap needs an activation and none was given.
    """
    if not isinstance(arrays, dict):
        raise TypeError(f"arrays must be a dict of name -> array, got {type(arrays).__name__}")
    if not arrays:
        raise ValueError("arrays is empty: no layers to build")
    if activation is not _UNSET:
        _canon_activation(activation)  # validates early
    gaps = []

    def fill(after, before):
        if activation is _UNSET:
            gaps.append((after, before))
            return
        act = _activation_layer(activation)
        if act is not None:
            layers.append(act)
    groups = _group_arrays(arrays)
    built = []
    for prefix, g in groups:
        if {"running_mean", "running_var"} & set(g):  # a BatchNorm: not a LayerNorm, refuse
            raise ValueError(f"arrays: group {prefix!r} holds running statistics (a BatchNorm), "
                             "which lowbit's models do not have; fold it into the Linear before it")
        unknown = set(g) - {"weight", "bias"}
        if "weight" not in g or unknown:
            raise ValueError(f"arrays: group {prefix!r} must hold 'weight' (and optionally 'bias'), "
                             f"got {sorted(g)}")
        w = as_float32(np.asarray(g["weight"]), f"arrays[{prefix + '.weight'!r}]")
        b = g.get("bias")
        b = None if b is None else as_float32(np.asarray(b), f"arrays[{prefix + '.bias'!r}]")
        check_finite(w, f"arrays[{prefix + '.weight'!r}]")
        if w.ndim == 2:
            if b is not None and b.shape != (w.shape[0],):
                raise ValueError(f"arrays[{prefix + '.bias'!r}] must have shape ({w.shape[0]},), got {b.shape}")
            layer = make_linear(w, b)
        elif w.ndim == 1 and b is not None and b.shape == w.shape:
            layer = nn.LayerNorm(int(w.shape[0]))
            layer.weight = w.copy()
            layer.bias = b.copy()
        else:
            raise ValueError(f"arrays: group {prefix!r} is neither a Linear (2-D weight) nor a "
                             f"LayerNorm (1-D weight and bias), weight shape {w.shape}")
        built.append((prefix, layer))
    # the layer order: by index when numbered, else as given
    idx = [_trailing_int(p) for p, _ in built]
    layers = []
    if all(i is not None for i in idx) and len(set(idx)) == len(idx):
        order = sorted(range(len(built)), key=lambda k: idx[k])
        prev, prev_k = None, None
        for k in order:
            if prev is not None and idx[k] - prev > 1:
                fill(built[prev_k][0], built[k][0])
            layers.append(built[k][1])
            prev, prev_k = idx[k], k
    else:
        prev = None
        for prefix, layer in built:
            if prev is not None and is_linear(prev[1]) and is_linear(layer):
                fill(prev[0], prefix)
            layers.append(layer)
            prev = (prefix, layer)
    if gaps:
        where = ", ".join(f"{a!r} -> {b!r}" for a, b in gaps[:3]) + (", ..." if len(gaps) > 3 else "")
        raise ValueError(
            f"{source}: the activation between the layers is unknown ({len(gaps)} gap(s) to fill: "
            f"{where}) and lowbit does not guess it; {_ACT_HELP}, or store it in the .safetensors "
            "file's metadata ({\"activation\": ...}, see write_safetensors)")
    _check_chain(layers)
    return nn.Sequential(layers)


def _check_chain(layers) -> None:
    width = None
    for i, layer in enumerate(layers):
        n_in = getattr(layer, "in_features", None) or getattr(layer, "features", None)
        if width is not None and n_in is not None and n_in != width:
            raise ValueError(f"layer {i} ({type(layer).__name__}) takes {n_in} features but the layer "
                             f"before it gives {width}")
        n_out = getattr(layer, "out_features", None) or getattr(layer, "features", None)
        if n_out is not None:
            width = n_out


def _is_torch(obj) -> bool:
    """A torch object (a module of any class, user-defined ones included, or a state_dict).
    torch is never imported here: a torch object exists only once torch has been imported."""
    import sys

    torch = sys.modules.get("torch")
    if torch is None:
        return False
    if isinstance(obj, (torch.nn.Module, torch.Tensor)):
        return True
    # a state_dict: an (Ordered)dict whose values are torch tensors
    if isinstance(obj, dict) and obj:
        return all(isinstance(v, torch.Tensor) for v in obj.values())
    return False


def _to_numpy(t) -> np.ndarray:
    return t.detach().cpu().float().numpy() if hasattr(t, "detach") else np.asarray(t)


_TORCH_LEAVES = "Linear, ReLU, GELU, Dropout, LayerNorm, Softmax, Identity, Flatten"


def from_torch(obj, *, activation=_UNSET):
    """A Sequential from a PyTorch model (needs torch).

    Accepted: an nn.Sequential (nested ones are flattened) of Linear, ReLU, GELU, Dropout,
    LayerNorm (last-axis), Softmax(dim=-1), Identity and Flatten; a single nn.Linear; a custom
    nn.Module whose child modules, in registration order, are such a chain (checked: the lowbit
    model must compute what the module's forward computes on a random input, else
    ValueError); or a state_dict (see :func:`from_arrays`). Any other module raises
    ValueError. The weights are copied as float32.

    Parameters
    ----------
    obj : torch.nn.Module or dict
        The module, or a state_dict (a dict of tensors or arrays).
    activation : {"relu", "gelu", "gelu_tanh"} or None, optional
        State_dicts only (a module carries its own): the activation where the layers leave a
        gap, which a state_dict does not record; see :func:`from_arrays`.

    Returns
    -------
    lowbit.models.Sequential
        The model (forward-only).

    Raises
    ------
    ImportError
        If torch is not installed.
    TypeError
        If ``obj`` is neither a torch.nn.Module nor a dict.
    ValueError
        If the module holds an unsupported layer or none, its layers do not chain, a custom
        module's forward computes something else than the chain of its children, or (for a
        state_dict) as in :func:`from_arrays`.
    """
    import torch

    if isinstance(obj, dict):
        return from_arrays({k: _to_numpy(v) for k, v in obj.items()}, activation=activation,
                           source="the state_dict")
    if not isinstance(obj, torch.nn.Module):
        raise TypeError(f"obj must be a torch.nn.Module or a state_dict, got {type(obj).__name__}")
    layers, read = [], []  # read: names of the modules taken, in order
    custom = []  # modules whose forward torch does not define: the reading must be checked

    def walk(m, where):
        name = where or "model"
        if not type(m).__module__.startswith("torch."):
            custom.append(type(m).__name__)
        if isinstance(m, torch.nn.Sequential):
            for cname, child in m.named_children():
                walk(child, f"{where}.{cname}" if where else cname)
            return
        read.append(name)
        if isinstance(m, torch.nn.Linear):
            layers.append(make_linear(_to_numpy(m.weight), None if m.bias is None else _to_numpy(m.bias)))
        elif isinstance(m, torch.nn.ReLU):
            layers.append(nn.ReLU())
        elif isinstance(m, torch.nn.GELU):
            layers.append(nn.GELU(approximate="tanh" if m.approximate == "tanh" else "none"))
        elif isinstance(m, torch.nn.Dropout):
            layers.append(nn.Dropout(float(m.p)) if m.p < 1 else nn.Dropout(0.0))
        elif isinstance(m, torch.nn.LayerNorm):
            if len(m.normalized_shape) != 1:
                raise ValueError(f"module {name}: only LayerNorm over the last axis is supported")
            ln = nn.LayerNorm(int(m.normalized_shape[0]), eps=float(m.eps))
            if m.weight is not None:
                ln.weight = _to_numpy(m.weight).astype(np.float32)
            if m.bias is not None:
                ln.bias = _to_numpy(m.bias).astype(np.float32)
            layers.append(ln)
        elif isinstance(m, torch.nn.Softmax):
            if m.dim not in (-1, None, 1):
                raise ValueError(f"module {name}: only Softmax over the last axis is supported")
            layers.append(nn.Softmax())
        elif isinstance(m, (torch.nn.Identity, torch.nn.Flatten)):
            pass
        elif type(m).__module__.startswith("torch.") or not any(True for _ in m.children()):
            raise ValueError(f"module {name} of type {type(m).__name__} is not supported: lowbit "
                             f"reads {_TORCH_LEAVES}, nn.Sequential, and custom modules whose "
                             "child modules form a chain of those")
        else:  # a custom module: its children, in registration order
            read.pop()
            for cname, child in m.named_children():
                walk(child, f"{where}.{cname}" if where else cname)

    walk(obj, "")
    if not layers:
        raise ValueError(f"the torch model ({type(obj).__name__}) holds no supported layers "
                         f"({_TORCH_LEAVES})")
    try:
        _check_chain(layers)
    except ValueError as e:
        if not custom:
            raise
        raise ValueError(f"{type(obj).__name__}: lowbit reads a custom module as the chain of its "
                         f"child modules in registration order ({', '.join(read)}), but they do "
                         f"not chain ({e}); pass an equivalent torch.nn.Sequential") from None
    model = nn.Sequential(layers)
    if custom:
        _check_torch_reading(obj, model, read, sorted(set(custom)))
    return model


def _check_torch_reading(obj, model, read, custom) -> None:
    """Runs obj (eval mode, no grad) and the lowbit model on one random input: a custom module's
    forward may use functional calls (F.relu), another order or skip connections that its
    children do not show, and a wrong reading must not pass silently."""
    import torch

    what = type(obj).__name__
    if custom != [what]:
        what += f" (custom module{'s' if len(custom) > 1 else ''} {', '.join(custom)})"
    n_in = model.in_features
    if n_in is None:
        raise ValueError(f"{what}: the input width of the chain read from its children is unknown, "
                         "so the reading cannot be checked; pass a torch.nn.Sequential")
    x = np.random.default_rng(0).standard_normal((8, n_in)).astype(np.float32)
    p = next(obj.parameters(), None)
    dtype = p.dtype if p is not None and p.dtype.is_floating_point else torch.float32
    device = p.device if p is not None else "cpu"
    modes = [(m, m.training) for m in obj.modules()]
    try:
        obj.eval()
        with torch.no_grad():
            want = _to_numpy(obj(torch.from_numpy(x).to(device=device, dtype=dtype)))
    except Exception as e:  # noqa: BLE001 -- any failure of the user's forward
        raise ValueError(f"{what}: lowbit reads it as the chain of its child modules "
                         f"({', '.join(read)}) but could not run its forward on a float tensor of "
                         f"shape (8, {n_in}) to check that reading ({type(e).__name__}: {e}); pass "
                         "a torch.nn.Sequential") from None
    finally:
        for m, t in modes:
            m.training = t
    got = np.asarray(model(x), np.float32)
    scale = max(1.0, float(np.max(np.abs(want)))) if want.size else 1.0
    if want.shape != got.shape or not np.allclose(got, want, rtol=1e-4, atol=1e-4 * scale):
        diff = (f"max difference {float(np.max(np.abs(got - want))):.3g}" if want.shape == got.shape
                else f"output shape {want.shape}, the chain gives {got.shape}")
        raise ValueError(
            f"{what}: lowbit reads a custom module as the chain of its child modules in "
            f"registration order ({', '.join(read)}), but its forward computes something else "
            f"({diff} on a random input) -- e.g. functional calls such as F.relu, another order, "
            "or skip connections. Pass an equivalent torch.nn.Sequential, or its state_dict() "
            "with activation=...")


def _torch_file_error(p: str, kind: str) -> ValueError:
    return ValueError(
        f"{p} is {kind}: lowbit does not load pickled files (unpickling can run arbitrary code). "
        "Save the weights as .safetensors instead (safetensors.torch.save_file(model.state_dict(), "
        "'model.safetensors', metadata={'activation': 'relu'}) or lowbit.models.write_safetensors), "
        "or load the model in torch yourself and pass the torch model to load_model")


def load_model(src, *, activation=_UNSET):
    """Load a model: a :class:`lowbit.models.Sequential` from a file, arrays or a torch model.

    The model is forward-only; :func:`lowbit.nn.trainable` makes it trainable. Arrays (dicts,
    .npz, .safetensors, state_dicts) do not say which activation goes between the Linear
    layers: it is taken from a .safetensors file's metadata (``{"activation": ...}``) when
    present, else from ``activation``; when neither says and the layers leave a gap,
    ValueError (lowbit does not guess). A torch model or a lowbit file carries its own
    architecture. PyTorch's .pt / .pth files (pickles) are refused with ValueError:
    unpickling can run arbitrary code.

    Parameters
    ----------
    src : Sequential, dict, str, os.PathLike or torch.nn.Module
        A Sequential (returned as is), a dict of arrays (see :func:`lowbit.models.from_arrays`),
        a path to an .npz, .safetensors or lowbit file (recognized by content; a lowbit file
        holding a single layer gives a one-layer Sequential), or a PyTorch model / state_dict
        (see :func:`lowbit.models.from_torch`).
    activation : {"relu", "gelu", "gelu_tanh"} or None, optional
        For arrays: the activation between the layers, ``"relu"``, ``"gelu"`` (exact erf),
        ``"gelu_tanh"`` or None for none. Given for a .safetensors file whose metadata names
        an activation, it must agree with it.

    Returns
    -------
    lowbit.models.Sequential
        The model.

    Raises
    ------
    TypeError
        If ``src`` is none of the accepted kinds.
    ValueError
        If the file is not a model file lowbit reads (a pickle, a foreign or malformed file, a
        lowbit file holding something else), ``activation`` is unknown or contradicts the
        file's metadata, or a gap between layers needs an activation and none was given.
    OSError
        If the file cannot be read.
    """
    if isinstance(src, nn.Sequential):
        return src
    if _is_torch(src):
        return from_torch(src, activation=activation)
    if isinstance(src, dict):
        return from_arrays(src, activation=activation)
    if isinstance(src, (str, os.PathLike)):
        p = os.fspath(src)
        with open(p, "rb") as f:
            head = f.read(8)
        if head == _io.MAGIC:
            obj = _io.load(p)
            if isinstance(obj, nn.Sequential):
                return obj
            if callable(obj):
                return nn.Sequential([obj])
            raise ValueError(f"{p} holds a {type(obj).__name__}, not a model")
        if head[:4] == b"PK\x03\x04":  # a zip archive: .npz, or torch.save's format
            import zipfile

            try:
                with zipfile.ZipFile(p) as z:
                    names = z.namelist()
            except zipfile.BadZipFile as e:
                raise ValueError(f"{p} is not a valid zip archive (.npz): {e}") from None
            if any(n.rpartition("/")[2] == "data.pkl" for n in names):
                raise _torch_file_error(p, "a PyTorch file (torch.save)")
            if not all(n.endswith(".npy") for n in names):
                raise ValueError(f"{p} is a zip archive but not an .npz of arrays (it holds "
                                 f"{', '.join(n for n in names if not n.endswith('.npy'))[:200]})")
            with np.load(p, allow_pickle=False) as z:
                return from_arrays({k: z[k] for k in z.files}, activation=activation,
                                   source=p)
        if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:  # pickle PROTO opcode
            raise _torch_file_error(p, "a Python pickle (e.g. a legacy torch.save file)")
        if len(head) == 8 and int.from_bytes(head, "little") < 100_000_000:
            arrays, meta = read_with_metadata(p)
            act = _resolve_activation(activation, meta.get("activation"), p)
            return from_arrays(arrays, activation=act, source=p)
        raise ValueError(f"{p} is not a model file lowbit reads (lowbit, .npz, .safetensors)")
    raise TypeError(f"src must be a model, a dict of arrays, a path or a torch model, got {type(src).__name__}")


def as_model(model, name="model"):
    """A model as a :class:`lowbit.models.Sequential`.

    Parameters
    ----------
    model : Sequential, list, dict, str, os.PathLike or torch.nn.Module
        A Sequential (returned as is), a list of layers (wrapped), or a dict of arrays, a path
        or a torch model (loaded with :func:`lowbit.load_model`, without an ``activation``).
    name : str, default "model"
        The argument's name in error messages.

    Returns
    -------
    lowbit.models.Sequential
        The model.

    Raises
    ------
    TypeError
        If ``model`` is none of the accepted kinds.
    ValueError
        If loading fails (see :func:`lowbit.load_model`).
    """
    if isinstance(model, nn.Sequential):
        return model
    if isinstance(model, list):
        return nn.Sequential(model)
    if isinstance(model, (dict, str, os.PathLike)) or _is_torch(model):
        return load_model(model)
    raise TypeError(f"{name} must be a lowbit Sequential, a list of layers, a dict of arrays, "
                    f"a file path or a torch model, got {type(model).__name__}")
