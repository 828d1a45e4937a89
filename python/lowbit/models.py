"""Whole models: loading, post-training quantization, per-layer reports, mixed precision.

A model is a `lowbit.nn.Sequential` (layers: Linear, ReLU, GELU, Dropout, LayerNorm, Softmax,
or any callable such as a `lowbit.QuantizedLinear`).

- `load_model(src, activation=...)`: from a dict of arrays, an `.npz` or `.safetensors` file
  (read by lowbit itself, no package needed), a lowbit file, a PyTorch `state_dict`,
  `nn.Sequential` or custom module made of such layers (torch is imported only when given one).
  Arrays do not record the activation between the layers: it comes from the .safetensors
  metadata or the caller, never from a guess.
- `quantize_model(model, calibration_data)`: every Linear becomes a `QuantizedLinear` with int8
  (or `bits`) weights and *static* uint8 activation parameters from calibration; the result is a
  `QuantizedModel` whose chains Linear [-> ReLU] -> Linear pass uint8 codes from one layer to the
  next, requantized (and ReLU'd) in the GEMM epilogue, never going back to float in between.
- `layer_report(model, data, labels)`: per Linear: SQNR of weights and outputs, sizes, latency,
  and the sensitivity (accuracy lost when only that layer is quantized); `format_report`,
  `plot_report`.
- `mixed_precision(model, data, labels, max_accuracy_drop=..., size_budget=...)`: float / int8 /
  codebook / int4 per layer, chosen greedily from measured accuracy and sizes.
"""
from __future__ import annotations

import math
import os
import time

import numpy as np

from . import io as _io
from . import nn as _nnmod
from ._checks import as_bool, as_float32, as_int, check_finite
from .calibrate import METHODS, observer, range_to_qparams
from .linear import QuantizedLinear
from .quant import quantize, sqnr

ELEMENTWISE = ("ReLU", "GELU", "Dropout", "Identity")  # layers that act on each value alone


def _nn():
    from . import nn

    return nn


# --------------------------------------------------------------------------- model helpers

def is_linear(layer) -> bool:
    """A float lowbit.nn.Linear (including its subclasses)."""
    return isinstance(layer, _nn().Linear)


def make_linear(weight, bias=None):
    """A float32 lowbit.nn.Linear holding copies of weight (out, in) and bias (out,) or None."""
    w = as_float32(weight, "weight")
    b = None if bias is None else as_float32(bias, "bias")
    return _nn().Linear.from_arrays(w, b)


def clone_model(model):
    """An independent copy of a Sequential model (immutable quantized layers are shared)."""
    model = as_model(model)
    return model.copy()


def as_model(model, name="model"):
    """`model` as a lowbit.nn.Sequential: a Sequential passes through, a list of layers is wrapped,
    anything load_model accepts is loaded."""
    nn = _nn()
    if isinstance(model, nn.Sequential):
        return model
    if isinstance(model, list):
        return nn.Sequential(model)
    if isinstance(model, (dict, str, os.PathLike)) or _is_torch(model):
        return load_model(model)
    raise TypeError(f"{name} must be a lowbit.nn.Sequential, a list of layers, a dict of arrays, "
                    f"a file path or a torch model, got {type(model).__name__}")


def linear_indices(model) -> list[int]:
    """Positions in model.layers of the float Linear layers."""
    return [i for i, layer in enumerate(model.layers) if is_linear(layer)]


def _weight_of(layer) -> np.ndarray:
    eff = getattr(layer, "_effective_weight", None)
    w = eff(False) if callable(eff) else layer.weight
    return np.asarray(w, np.float32)


def _layer_name(model, i: int) -> str:
    layer = model.layers[i]
    shape = ""
    if hasattr(layer, "in_features") and hasattr(layer, "out_features"):
        shape = f" {layer.in_features}->{layer.out_features}"
    return f"{i}:{type(layer).__name__}{shape}"


def _nbytes(layer) -> int:
    """Bytes to store the layer: a QuantizedLinear's codes (4-bit ones packed two per byte) +
    scales + bias, another layer's nbytes, or a float layer's parameters. (Runtime copies such as
    the GEMM kernels' padded weight panels are not counted.)"""
    if isinstance(layer, QuantizedLinear):
        return int(layer.weight_q.nbytes + (0 if layer.bias is None else layer.bias.nbytes))
    if hasattr(layer, "nbytes"):
        return int(layer.nbytes)
    if isinstance(layer, _nnmod.Layer):
        return int(sum(p.nbytes for p in layer.parameters()))
    return 0


def model_nbytes(model) -> int:
    """Bytes of all layers' parameters (float arrays, or the quantized layers' nbytes)."""
    return int(sum(_nbytes(layer) for layer in as_model(model).layers))


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
    nn = _nn()
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
    """A Sequential from named arrays: groups "<prefix>.weight" / "<prefix>.bias" (PyTorch
    state_dict names such as "0.weight", "layers.2.bias", "fc1.weight"). A 2-D weight makes a
    Linear, a 1-D weight with a bias of the same shape a LayerNorm (eps 1e-5). When every prefix
    ends in an index (nn.Sequential numbering) an `activation` layer fills each gap in the
    numbering; otherwise one goes between consecutive Linear layers. Arrays do not say which
    activation the model had, so where a gap needs one `activation` must be given: "relu",
    "gelu" (exact erf, torch.nn.GELU()), "gelu_tanh" or None (no activation layers); ValueError
    otherwise (lowbit does not guess)."""
    nn = _nn()
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
        unknown = set(g) - {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"}
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
        prev = None
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


_ST_DTYPES = {"F16": np.float16, "F32": np.float32, "F64": np.float64, "I8": np.int8,
              "U8": np.uint8, "I16": np.int16, "I32": np.int32, "I64": np.int64, "BOOL": np.bool_,
              "BF16": "bf16"}


def read_safetensors(path) -> dict:
    """The arrays of a .safetensors file, read without the safetensors package (the format: u64
    little-endian header size, a JSON header of {name: {dtype, shape, data_offsets}}, the data).
    BF16 is widened to float32. A malformed file raises ValueError."""
    return _read_safetensors(path)[0]


def read_safetensors_metadata(path) -> dict:
    """The string metadata (the header's "__metadata__", {} when absent) of a .safetensors file;
    load_model reads the model's "activation" there."""
    return _read_safetensors(path)[1]


def _read_safetensors(path) -> tuple[dict, dict]:
    import json

    p = os.fspath(path)
    with open(p, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError(f"{p}: not a safetensors file (too short)")
    n = int.from_bytes(data[:8], "little")
    if n > len(data) - 8 or n > 100_000_000:
        raise ValueError(f"{p}: not a safetensors file (header size {n} exceeds the file)")
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ValueError(f"{p}: not a safetensors file (the header is not JSON)") from None
    if not isinstance(header, dict):
        raise ValueError(f"{p}: not a safetensors file (the header is not a JSON object)")
    body = memoryview(data)[8 + n:]
    out = {}
    meta = header.get("__metadata__") or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise ValueError(f"{p}: the safetensors __metadata__ must map names to strings")
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dt = _ST_DTYPES[info["dtype"]]
            shape = [int(s) for s in info["shape"]]
            lo, hi = (int(v) for v in info["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{p}: tensor {name!r} has an unsupported or malformed entry {info!r}") from None
        count = math.prod(shape)
        item = 2 if dt == "bf16" else np.dtype(dt).itemsize
        if not (0 <= lo <= hi <= len(body)) or hi - lo != count * item or any(s < 0 for s in shape):
            raise ValueError(f"{p}: tensor {name!r} does not fit the file")
        raw = bytes(body[lo:hi])
        if dt == "bf16":
            u = np.frombuffer(raw, "<u2").astype(np.uint32) << 16
            arr = u.view(np.float32)
        else:
            arr = np.frombuffer(raw, np.dtype(dt).newbyteorder("<")).astype(dt)
        out[name] = arr.reshape(shape)
    return out, dict(meta)


def write_safetensors(arrays: dict, path, *, metadata=None) -> None:
    """Writes numeric arrays as a .safetensors file (readable by the safetensors package).
    `metadata`: a dict of strings stored as the header's "__metadata__", e.g.
    {"activation": "gelu"} so that load_model knows the activation between the layers."""
    import json

    rev = {np.dtype(v): k for k, v in _ST_DTYPES.items() if v != "bf16"}
    header, chunks, off = {}, [], 0
    if metadata:
        if not isinstance(metadata, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                      for k, v in metadata.items()):
            raise TypeError("metadata must be a dict of str -> str")
        header["__metadata__"] = dict(metadata)
    for name, a in arrays.items():
        a = np.ascontiguousarray(a)
        if a.dtype not in rev:
            raise TypeError(f"arrays[{name!r}]: dtype {a.dtype} has no safetensors code")
        raw = a.astype(a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": rev[a.dtype], "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        chunks.append(raw)
        off += len(raw)
    h = json.dumps(header).encode("utf-8")
    h += b" " * ((-len(h)) % 8)
    with open(os.fspath(path), "wb") as f:
        f.write(len(h).to_bytes(8, "little") + h + b"".join(chunks))


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
    """A Sequential from a PyTorch model: an nn.Sequential (nested ones are flattened) of Linear,
    ReLU, GELU, Dropout, LayerNorm (last-axis), Softmax(dim=-1), Identity and Flatten; a single
    nn.Linear; a custom nn.Module whose child modules, in registration order, are such a chain
    (checked: the lowbit model must compute what the module's forward computes on a random
    input, else ValueError); or a state_dict (see from_arrays: `activation` must be given where
    the layers leave a gap, a state_dict does not record it). Any other module raises ValueError."""
    import torch

    nn = _nn()
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
    """A lowbit.nn.Sequential from `src`: a Sequential (returned as is), a dict of arrays, a path
    to an .npz, .safetensors or lowbit file (by content), or a PyTorch model / state_dict.

    Arrays (dicts, .npz, .safetensors, state_dicts) do not say which activation goes between the
    Linear layers: it is taken from a .safetensors file's metadata ({"activation": ...}) when
    present, else from `activation` ("relu", "gelu" (exact erf), "gelu_tanh" or None for none);
    when neither says and the layers leave a gap, ValueError (lowbit does not guess). A torch
    model or a lowbit file carries its own architecture. PyTorch's .pt / .pth files (pickles)
    are refused with ValueError."""
    nn = _nn()
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
            arrays, meta = _read_safetensors(p)
            act = _resolve_activation(activation, meta.get("activation"), p)
            return from_arrays(arrays, activation=act, source=p)
        raise ValueError(f"{p} is not a model file lowbit reads (lowbit, .npz, .safetensors)")
    raise TypeError(f"src must be a model, a dict of arrays, a path or a torch model, got {type(src).__name__}")


# --------------------------------------------------------------------------- quantized model

def _is_static_q(layer) -> bool:
    return isinstance(layer, QuantizedLinear) and layer.act_scale is not None


class QuantizedModel(_nnmod.Sequential):
    """An inference-only Sequential whose chains of static QuantizedLinear layers run on uint8
    codes: for Linear [-> ReLU] -> Linear, the first layer's int32 accumulators are requantized
    straight to the next layer's input codes (ReLU fused) by QuantizedLinear.forward_quantized.
    `fuse=False` (or forward(..., return_hidden=True)) runs the layers one by one instead."""

    def __init__(self, layers, *, fuse=True):
        super().__init__(layers)
        self.fuse = as_bool(fuse, "fuse")

    def _epilogue(self, i: int) -> tuple[int, bool]:
        """(index of the first layer after i that is not fused into its epilogue, whether a ReLU
        is fused): Dropout (identity at inference) and one ReLU are absorbed."""
        nn, layers = _nnmod, self.layers
        j, relu = i + 1, False
        while j < len(layers) and isinstance(layers[j], nn.Dropout):
            j += 1
        if j < len(layers) and isinstance(layers[j], nn.ReLU):
            relu = True
            j += 1
            while j < len(layers) and isinstance(layers[j], (nn.Dropout, nn.ReLU)):
                j += 1
        return j, relu

    def forward(self, x, train=False, rng=None, *, return_hidden=False):
        if train:
            raise ValueError("a QuantizedModel is inference-only (train must be False)")
        if return_hidden or not self.fuse:
            return super().forward(x, train=False, rng=rng, return_hidden=return_hidden)
        h = as_float32(x, "x")
        n_in = self.in_features
        if h.ndim == 0 or (n_in is not None and h.shape[-1] != n_in):
            raise ValueError(f"x must have shape (..., {n_in}), got {h.shape}")
        layers, codes, i = self.layers, None, 0
        while i < len(layers):
            layer = layers[i]
            if not _is_static_q(layer):
                h = np.asarray(layer(h), dtype=np.float32)
                i += 1
                continue
            if codes is None:
                codes = quantize(h, bits=8, symmetric=False, scale=layer.act_scale,
                                 zero_point=layer.act_zero_point).int_repr()
            j, relu = self._epilogue(i)
            nxt = layers[j] if j < len(layers) else None
            if _is_static_q(nxt):  # stay in uint8: requantize to the next layer's input codes
                codes = layer.forward_quantized(codes, nxt.act_scale, nxt.act_zero_point, relu=relu)
            else:
                h = ((codes.astype(np.float32) - np.float32(layer.act_zero_point))
                     * np.float32(layer.act_scale))
                h = layer(h, relu=relu)
                codes = None
            i = j
        return h


def _register_io() -> None:
    def qm_from(s):
        layers = _io.need(s, "layers", list, "QuantizedModel")
        for k, layer in enumerate(layers):
            if not callable(layer):
                raise ValueError(f"QuantizedModel: layers[{k}] is not a layer")
        return QuantizedModel(layers, fuse=_io.need(s, "fuse", bool, "QuantizedModel"))

    _io.register("QuantizedModel", QuantizedModel,
                 lambda m: {"layers": list(m.layers), "fuse": m.fuse}, qm_from)


_register_io()


# --------------------------------------------------------------------------- calibration

def _batches(data, name="calibration_data", batch_size=512):
    """float32 batches (2-D or more) from an array or an iterable of arrays."""
    if isinstance(data, np.ndarray) or (isinstance(data, (list, tuple)) and data
                                         and not isinstance(data[0], np.ndarray)):
        a = as_float32(data, name)
        if a.ndim < 2 or a.shape[0] == 0:
            raise ValueError(f"{name} must be a non-empty (samples, features) array, got shape {a.shape}")
        check_finite(a, name)
        return [a[s:s + batch_size] for s in range(0, a.shape[0], batch_size)]
    try:
        items = list(data)
    except TypeError:
        raise TypeError(f"{name} must be an array or an iterable of arrays, got {type(data).__name__}") from None
    out = []
    for k, b in enumerate(items):
        a = as_float32(b, f"{name}[{k}]")
        check_finite(a, f"{name}[{k}]")
        out.append(a)
    if not out:
        raise ValueError(f"{name} is empty")
    return out


def _skip_set(skip, model) -> set:
    n = len(model.layers)
    if isinstance(skip, (int, np.integer)) and not isinstance(skip, bool):
        skip = (skip,)
    try:
        items = list(skip)
    except TypeError:
        raise TypeError(f"skip must be a sequence of layer indices, got {type(skip).__name__}") from None
    out = set()
    for s in items:
        s = as_int(s, "skip entries", -n, n - 1)
        out.add(s % n)
    return out


def calibrate_model(model, calibration_data, *, method="minmax", **observer_kwargs) -> dict:
    """{layer index: (lo, hi)} of the input of every float Linear of `model`, observed over the
    calibration batches with observer(method)."""
    model = as_model(model)
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    lin = linear_indices(model)
    obs = {i: observer(method, **observer_kwargs) for i in lin}
    for batch in _batches(calibration_data):
        h = batch
        for i, layer in enumerate(model.layers):
            if i in obs:
                obs[i].observe(h)
            h = np.asarray(layer(h), np.float32)
    return {i: o.range() for i, o in obs.items()}


def _quantized_linear(layer, rng, *, bits, per_channel):
    scale, zp = range_to_qparams(*rng, bits=8)
    return QuantizedLinear(_weight_of(layer), layer.bias, bits=bits, per_channel=per_channel,
                           act_scale=scale, act_zero_point=zp)


def quantize_model(model, calibration_data, *, method="minmax", bits=8, per_channel=True, skip=(),
                   fuse=True):
    """A QuantizedModel: every float Linear of `model` (except the layer indices in `skip`) becomes
    a QuantizedLinear with `bits`-bit symmetric weights (per output channel when per_channel) and
    static uint8 activation parameters from the range `method` ("minmax", "percentile", "mse",
    "entropy") finds for its input over `calibration_data` (an array (N, features) or an iterable
    of batches). Other layers are kept (copied). The model given is not modified."""
    model = as_model(model)
    bits = as_int(bits, "bits", 2, 8)
    per_channel = as_bool(per_channel, "per_channel")
    skipped = _skip_set(skip, model)
    ranges = calibrate_model(model, calibration_data, method=method)
    layers = []
    for i, layer in enumerate(model.layers):
        if i in ranges and i not in skipped:
            layers.append(_quantized_linear(layer, ranges[i], bits=bits, per_channel=per_channel))
        else:
            layers.append(layer.copy() if hasattr(layer, "copy") else layer)
    return QuantizedModel(layers, fuse=fuse)


# --------------------------------------------------------------------------- evaluation

def _labels(labels, n, name="labels") -> np.ndarray:
    y = np.asarray(labels)
    if y.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer array of class labels, got dtype {y.dtype}")
    if y.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) (one label per row of data), got {y.shape}")
    return y.astype(np.int64)


def _predict(model, x, batch_size=1024) -> np.ndarray:
    out = [np.asarray(model(x[s:s + batch_size])) for s in range(0, x.shape[0], batch_size)]
    return np.concatenate(out, axis=0)


def accuracy(model, data, labels) -> float:
    """Fraction of rows of `data` whose argmax output equals the label."""
    x = as_float32(data, "data")
    y = _labels(labels, x.shape[0])
    return float(np.mean(_predict(model, x).argmax(axis=-1) == y))


def _probs(z: np.ndarray) -> np.ndarray:
    """Rows of z as probabilities: as they are when they already are (a Softmax last layer), else
    softmax(z)."""
    z = z.astype(np.float64)
    if z.size and z.min() >= 0 and np.allclose(z.sum(axis=-1), 1.0, atol=1e-4):
        return z
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def mean_kl(reference, approx) -> float:
    """Mean over rows of KL(p_reference || p_approx) in nats, outputs taken as logits (or as
    probabilities when they already are)."""
    p, q = _probs(np.asarray(reference)), _probs(np.asarray(approx))
    tiny = 1e-30
    return float(np.mean(np.sum(p * (np.log(p + tiny) - np.log(q + tiny)), axis=-1)))


def _time(fn, repeat: int, *, warmup: float = 0.05, min_sample: float = 0.005) -> float:
    """Seconds per call of fn, timed as lowbit's benchmarks do: one first call (set-up), untimed
    calls for `warmup` seconds (caches, worker threads, clock frequency: the first calls after an
    idle pause run slow), then `repeat` samples of enough calls to last `min_sample` seconds
    each, garbage collection off; the median of the samples' time per call. (A single call of a
    small layer is too short to time: one scheduler tick in it turns 0.02 ms into 8 ms.)"""
    import gc

    fn()
    calls, t0 = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= warmup and calls >= 2:
            break
    inner = max(1, math.ceil(min_sample / max(elapsed / calls, 1e-9)))
    was = gc.isenabled()
    gc.disable()
    try:
        ts = []
        for _ in range(repeat):
            t = time.perf_counter()
            for _ in range(inner):
                fn()
            ts.append((time.perf_counter() - t) / inner)
    finally:
        if was:
            gc.enable()
    return float(np.median(ts))


def _layer_inputs(model, x) -> list:
    """The input of every layer of `model` for data x."""
    ins, h = [], x
    for layer in model.layers:
        ins.append(h)
        h = np.asarray(layer(h), np.float32)
    return ins


def _with_layer(model, i, new_layer):
    layers = list(model.layers)
    layers[i] = new_layer
    return QuantizedModel(layers)


def layer_report(model, calibration_data, labels=None, *, method="minmax", bits=8, per_channel=True,
                 repeat=5, max_rows=2048) -> list[dict]:
    """One dict per float Linear of `model`:

    index, name, in_features, out_features; weight_sqnr_db (dequantized vs float weight);
    output_sqnr_db (the quantized layer vs the float layer on the layer's float inputs over the
    calibration data); float_bytes, quant_bytes; float_ms, quant_ms (time of one call on the
    calibration batch, as the benchmarks time: after a warm-up, the median over `repeat` samples
    of at least 5 ms of calls each); accuracy_float, accuracy_quant (the whole model with only this layer
    quantized) and sensitivity = accuracy_float - accuracy_quant in percentage points (without
    labels the float model's own predictions are the labels: agreement); kl, the mean
    KL(float || only this layer quantized) of the model's outputs in nats, a finer measure of the
    same thing when int8 changes no prediction.

    The calibration data (first `max_rows` rows) is used for everything."""
    model = as_model(model)
    x = np.concatenate(_batches(calibration_data), axis=0)
    y = None if labels is None else _labels(labels, x.shape[0])
    n = as_int(max_rows, "max_rows", 1)
    x = x[:n]
    repeat = as_int(repeat, "repeat", 1, 1000)
    ranges = calibrate_model(model, x, method=method)
    float_out = _predict(model, x)
    y = float_out.argmax(axis=-1) if y is None else y[:n]
    acc_float = float(np.mean(float_out.argmax(axis=-1) == y))
    ins = _layer_inputs(model, x)
    rows = []
    for i, rng_ in ranges.items():
        layer = model.layers[i]
        q = _quantized_linear(layer, rng_, bits=bits, per_channel=per_channel)
        w = _weight_of(layer)
        xi = ins[i]
        ref = np.asarray(layer(xi), np.float32)
        got = q(xi)
        only = _with_layer(model, i, q)
        out_q = _predict(only, x)
        accq = float(np.mean(out_q.argmax(axis=-1) == y))
        rows.append({
            "index": i, "name": _layer_name(model, i),
            "in_features": int(w.shape[1]), "out_features": int(w.shape[0]),
            "weight_sqnr_db": float(sqnr(w, q.weight_q.dequantize())),
            "output_sqnr_db": float(sqnr(ref, got)),
            "float_bytes": _nbytes(layer), "quant_bytes": _nbytes(q),
            "float_ms": 1e3 * _time(lambda f=layer, v=xi: f(v), repeat),
            "quant_ms": 1e3 * _time(lambda f=q, v=xi: f(v), repeat),
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


# --------------------------------------------------------------------------- mixed precision

def available_choices() -> tuple:
    """The per-layer precisions mixed_precision can pick here: "float", "int8", "int4", and
    "codebook" when lowbit.CodebookLinear exists."""
    import lowbit

    base = ("float", "int8", "int4")
    return base + (("codebook",) if hasattr(lowbit, "CodebookLinear") else ())


def _build(layer, choice, rng_, *, per_channel, codebook_k):
    if choice == "float":
        return layer
    if choice in ("int8", "int4"):
        return _quantized_linear(layer, rng_, bits=8 if choice == "int8" else 4, per_channel=per_channel)
    import lowbit

    return lowbit.CodebookLinear(_weight_of(layer), layer.bias, k=codebook_k)


def mixed_precision(model, data, labels, *, max_accuracy_drop=None, size_budget=None,
                    choices=None, method="minmax", per_channel=True, codebook_k=16):
    """A QuantizedModel choosing per Linear layer among `choices` (default available_choices():
    float, int8, int4 and, when lowbit.CodebookLinear exists, a codebook of `codebook_k`
    centroids), measured on (data, labels):

    - max_accuracy_drop (points, e.g. 0.5): start from float everywhere and repeatedly apply the
      change of one layer to a smaller choice that costs the least accuracy per byte saved, as long
      as the whole model stays within the allowed drop;
    - size_budget (bytes of all layers): the same greedy steps until the model fits the budget
      (ValueError if even the smallest choices do not fit); with both, the budget is met first and
      the steps go on while the accuracy allows.

    Activations of quantized layers use static ranges calibrated on `data` with `method`. The
    result has .plan: one dict per Linear (index, name, choice, bytes) and .accuracy,
    .float_accuracy, .nbytes."""
    model = as_model(model)
    if max_accuracy_drop is None and size_budget is None:
        raise ValueError("give max_accuracy_drop (points) and/or size_budget (bytes)")
    if max_accuracy_drop is not None:
        if isinstance(max_accuracy_drop, bool) or not isinstance(max_accuracy_drop, (int, float, np.number)):
            raise TypeError(f"max_accuracy_drop must be a number of points, got {type(max_accuracy_drop).__name__}")
        if not (math.isfinite(float(max_accuracy_drop)) and max_accuracy_drop >= 0):
            raise ValueError(f"max_accuracy_drop must be >= 0, got {max_accuracy_drop}")
    if size_budget is not None:
        size_budget = as_int(size_budget, "size_budget", 1)
    avail = available_choices()
    choices = avail if choices is None else tuple(choices)
    for c in choices:
        if c not in avail:
            raise ValueError(f"choices may hold {', '.join(avail)}; {c!r} is not available")
    if "float" not in choices:
        choices = ("float",) + choices
    x = as_float32(data, "data")
    check_finite(x, "data")
    y = _labels(labels, x.shape[0])
    lin = linear_indices(model)
    ranges = calibrate_model(model, x, method=method)
    built = {(i, c): _build(model.layers[i], c, ranges[i], per_channel=per_channel, codebook_k=codebook_k)
             for i in lin for c in choices}
    size = {k: _nbytes(v) for k, v in built.items()}
    current = {i: "float" for i in lin}
    other_bytes = sum(_nbytes(layer) for k, layer in enumerate(model.layers) if k not in lin)

    def assemble(cur):
        layers = list(model.layers)
        for i, c in cur.items():
            layers[i] = built[(i, c)]
        return QuantizedModel(layers)

    def total(cur):
        return other_bytes + sum(size[(i, c)] for i, c in cur.items())

    acc_float = accuracy(model, x, y)
    acc = acc_float
    limit = None if max_accuracy_drop is None else acc_float - float(max_accuracy_drop) / 100.0
    while True:
        over = size_budget is not None and total(current) > size_budget
        best = None
        for i in lin:
            for c in choices:
                saved = size[(i, current[i])] - size[(i, c)]
                if saved <= 0:
                    continue
                trial = dict(current)
                trial[i] = c
                a = accuracy(assemble(trial), x, y)
                if not over and limit is not None and a < limit - 1e-12:
                    continue
                if not over and limit is None:
                    continue  # budget met and no accuracy goal: stop shrinking
                key = ((acc - a) / saved, -saved)
                if best is None or key < best[0]:
                    best = (key, i, c, a)
        if best is None:
            break
        _, i, c, a = best
        current[i], acc = c, a
    if size_budget is not None and total(current) > size_budget:
        raise ValueError(f"size_budget={size_budget} bytes cannot be met: the smallest choices take "
                         f"{total(current)} bytes")
    out = assemble(current)
    out.plan = [{"index": i, "name": _layer_name(model, i), "choice": current[i],
                 "bytes": size[(i, current[i])]} for i in lin]
    out.accuracy, out.float_accuracy, out.nbytes = acc, acc_float, total(current)
    return out


# --------------------------------------------------------------------------- command line

def _cli_errors(fn):
    """Runs a command body: bad input (missing file, wrong format, wrong shapes) prints one line to
    stderr and returns exit code 2 instead of a traceback."""
    import functools
    import sys

    @functools.wraps(fn)
    def run(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (ValueError, TypeError, OSError, ImportError) as e:
            print(f"lowbit {fn.__name__[4:]}: error: {e}", file=sys.stderr)
            return 2

    return run


def _load_npy(path, what):
    p = os.fspath(path)
    try:
        return np.load(p, allow_pickle=False)
    except ValueError as e:
        raise ValueError(f"{what} {p!r} is not a .npy array file without pickled objects ({e})") from None


@_cli_errors
def cli_quantize(model_path, calib_path, *, method="minmax", out=None, bits=8, per_channel=True,
                 stream=None, activation=_UNSET) -> int:
    """`lowbit quantize MODEL --calib DATA.npy --method M -o OUT`: loads, quantizes, saves."""
    import sys

    stream = stream or sys.stdout
    model = load_model(model_path, activation=activation)
    if not linear_indices(model):
        raise ValueError(f"{model_path} has no float Linear layers to quantize")
    calib = as_float32(_load_npy(calib_path, "--calib"), "the calibration data")
    qm = quantize_model(model, calib, method=method, bits=bits, per_channel=per_channel)
    out = out or os.path.splitext(os.fspath(model_path))[0] + f".int{bits}.lowbit"
    _io.save(qm, out)
    fb, qb = model_nbytes(model), model_nbytes(qm)
    yf, yq = _predict(model, calib), _predict(qm, calib)
    agree = float(np.mean(yf.argmax(-1) == yq.argmax(-1)))
    print(f"quantized {len(linear_indices(model))} Linear layers ({method}, {bits}-bit weights, "
          f"static uint8 activations): {fb} -> {qb} bytes ({fb / max(qb, 1):.2f}x smaller)", file=stream)
    print(f"on the calibration data: output SQNR {sqnr(yf, yq):.1f} dB, argmax agreement "
          f"{100 * agree:.2f}%", file=stream)
    print(f"wrote {out}", file=stream)
    return 0


@_cli_errors
def cli_report(model_path, calib_path, *, labels_path=None, method="minmax", bits=8, png=None,
               stream=None, activation=_UNSET) -> int:
    """`lowbit report MODEL --calib DATA.npy`: the per-layer table, and a PNG when matplotlib is
    installed (`png`, default MODEL.report.png)."""
    import sys

    stream = stream or sys.stdout
    model = load_model(model_path, activation=activation)
    if not linear_indices(model):
        raise ValueError(f"{model_path} has no float Linear layers to report on")
    calib = as_float32(_load_npy(calib_path, "--calib"), "the calibration data")
    labels = None if labels_path is None else _load_npy(labels_path, "--labels")
    rows = layer_report(model, calib, labels, method=method, bits=bits)
    print(format_report(rows), file=stream)
    if labels is None:
        print("(sensitivity: drop in agreement with the float model's own predictions, in points; "
              "pass --labels for accuracy)", file=stream)
    png = png or os.path.splitext(os.fspath(model_path))[0] + ".report.png"
    try:
        plot_report(rows, png)
        print(f"wrote {png}", file=stream)
    except ImportError as e:
        print(f"(no plot: {e})", file=stream)
    return 0
