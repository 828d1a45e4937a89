"""A .safetensors reader and writer (the format is a JSON header and raw little-endian arrays), so loading one needs no extra package."""
from __future__ import annotations

import json
import math
import os

import numpy as np

_ST_DTYPES = {"F16": np.float16, "F32": np.float32, "F64": np.float64, "I8": np.int8,
              "U8": np.uint8, "I16": np.int16, "I32": np.int32, "I64": np.int64, "BOOL": np.bool_,
              "BF16": "bf16"}


def read_safetensors(path) -> dict:
    """The arrays of a .safetensors file, read without the safetensors package.

    The format: u64 little-endian header size, a JSON header of
    ``{name: {dtype, shape, data_offsets}}``, the data. BF16 is widened to float32.

    Parameters
    ----------
    path : str or os.PathLike
        The file.

    Returns
    -------
    dict of str to numpy.ndarray
        The arrays by name.

    Raises
    ------
    ValueError
        If the file is malformed or holds an unsupported dtype.
    OSError
        If the file cannot be read.
    """
    return read_with_metadata(path)[0]


def read_safetensors_metadata(path) -> dict:
    """The string metadata of a .safetensors file.

    :func:`lowbit.load_model` reads the model's ``"activation"`` there.

    Parameters
    ----------
    path : str or os.PathLike
        The file.

    Returns
    -------
    dict of str to str
        The header's ``"__metadata__"`` (``{}`` when absent).

    Raises
    ------
    ValueError
        If the file is malformed.
    OSError
        If the file cannot be read.
    """
    return read_with_metadata(path)[1]


def read_with_metadata(path) -> tuple[dict, dict]:
    """(arrays, metadata) of a .safetensors file."""
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
    """Write numeric arrays as a .safetensors file (readable by the safetensors package).

    Parameters
    ----------
    arrays : dict of str to array_like
        The arrays by name: float16/32/64, int8/16/32/64, uint8 or bool.
    path : str or os.PathLike
        The file to write.
    metadata : dict of str to str, optional
        Stored as the header's ``"__metadata__"``, e.g. ``{"activation": "gelu"}`` so that
        :func:`lowbit.load_model` knows the activation between the layers.

    Raises
    ------
    TypeError
        If ``metadata`` is not a dict of str -> str, or an array has a dtype safetensors has
        no code for.
    OSError
        If the file cannot be written.
    """
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
