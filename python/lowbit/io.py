"""lowbit.save / lowbit.load: a versioned, checksummed file format without pickle.

Layout (all integers little-endian)::

    offset 0   8 bytes   magic b"LOWBIT\\x00\\x1a"
           8   u32       format version (1)
          12   u32       flags (0)
          16   u64       header length H
          24   u64       payload length P
          32   32 bytes  SHA-256 of header + payload
          64   H bytes   header: UTF-8 JSON {"format": "lowbit", "root": ..., "arrays": [...]}
        64+H   P bytes   payload: the arrays' raw bytes, each at a 64-byte aligned offset

The header's "root" is the saved object as a tree of JSON values in which arrays appear as
{"__array__": i} (an entry of "arrays": dtype, shape, offset, nbytes), tuples as
{"__tuple__": [...]}, dicts as {"__dict__": {...}} and objects as
{"__object__": type_name, "state": ...}. Only types in the registry are ever built, from plain
data, and only numeric/bool array dtypes exist, so loading a file never runs code from it.

Any file that is not exactly such a file -- too short, truncated, with trailing bytes, a wrong
magic, an unknown version, a checksum mismatch, malformed JSON, an array out of bounds, an
unknown type or a state its type rejects -- raises ValueError.

Types register with `register(name, cls, to_state, from_state)`: `to_state(obj)` returns a dict
of JSON values, arrays and other registered objects; `from_state(state)` rebuilds the object from
such a dict (already decoded) and raises on anything malformed.

Pickling: registering a type also makes its objects (of exactly that class) pickle as the bytes
of this format -- `pickle.loads` calls `lowbit.io._from_pickle(bytes)`, i.e. `loads`, so nothing
but lowbit's own loader runs -- which lets them cross process boundaries (multiprocessing,
joblib, Dask, Ray). copy.copy / copy.deepcopy go the same way.
"""
from __future__ import annotations

import copyreg
import hashlib
import json
import math
import os
import struct
import tempfile

import numpy as np

MAGIC = b"LOWBIT\x00\x1a"
VERSION = 1
_PREAMBLE = struct.Struct("<8sIIQQ32s")  # 64 bytes
_ALIGN = 64
_DTYPES = {np.dtype(t).newbyteorder("<").str: np.dtype(t).newbyteorder("<") for t in (
    np.bool_, np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64,
    np.float16, np.float32, np.float64)}


class _Entry:
    __slots__ = ("name", "cls", "to_state", "from_state")

    def __init__(self, name, cls, to_state, from_state):
        self.name, self.cls, self.to_state, self.from_state = name, cls, to_state, from_state


_BY_NAME: dict[str, _Entry] = {}
_BY_CLASS: dict[type, _Entry] = {}


def register(name: str, cls: type, to_state, from_state) -> None:
    """Makes `cls` savable under the type name `name` (a later registration of the same name or
    class replaces the earlier one)."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty string, got {name!r}")
    if not isinstance(cls, type):
        raise TypeError(f"cls must be a class, got {type(cls).__name__}")
    if not callable(to_state) or not callable(from_state):
        raise TypeError("to_state and from_state must be callable")
    old = _BY_NAME.pop(name, None)
    if old is not None:
        _BY_CLASS.pop(old.cls, None)
        if copyreg.dispatch_table.get(old.cls) is _reduce:
            del copyreg.dispatch_table[old.cls]
    e = _Entry(name, cls, to_state, from_state)
    _BY_NAME[name] = e
    _BY_CLASS[cls] = e
    copyreg.pickle(cls, _reduce)  # exactly cls: a subclass keeps its own pickling


def _from_pickle(data: bytes):
    """The unpickling side of every registered type: `data` is a lowbit file's bytes, read by
    `loads` (only registered types are built, from plain data)."""
    return loads(data)


def _reduce(obj):
    """The pickling side (a copyreg reducer): the object as the bytes `dumps` writes. An object
    holding something the format cannot store (e.g. a Sequential with an arbitrary callable
    among its layers) keeps Python's default reduction."""
    try:
        data = dumps(obj)
    except TypeError:
        return object.__reduce_ex__(obj, 2)
    return _from_pickle, (data,)


def registered_types() -> list[str]:
    return sorted(_BY_NAME)


def _entry_for(obj) -> _Entry | None:
    """The registration of obj's class, else of its nearest registered base class (an
    unregistered subclass of lowbit.nn.Linear saves as "nn.Linear", not as the forward-only
    "models.Linear" registered earlier)."""
    for cls in type(obj).__mro__:
        e = _BY_CLASS.get(cls)
        if e is not None:
            return e
    return None


# --------------------------------------------------------------------------- encoding

class _Encoder:
    def __init__(self):
        self.arrays: list[np.ndarray] = []

    def enc(self, v, where: str):
        if v is None or isinstance(v, (bool, str)):
            return v
        if isinstance(v, (int, np.integer)) and not isinstance(v, np.bool_):
            return int(v)
        if isinstance(v, np.bool_):
            return bool(v)
        if isinstance(v, (float, np.floating)):
            f = float(v)
            return f if math.isfinite(f) else {"__float__": repr(f)}
        if isinstance(v, np.ndarray):
            if v.dtype.newbyteorder("<").str not in _DTYPES or v.dtype.kind not in "biuf":
                raise TypeError(f"cannot save the array at {where}: dtype {v.dtype} is not a "
                                "bool/integer/float dtype")
            self.arrays.append(np.asarray(v, dtype=v.dtype.newbyteorder("<"), order="C"))  # keeps 0-d
            return {"__array__": len(self.arrays) - 1}
        if isinstance(v, tuple):
            return {"__tuple__": [self.enc(x, f"{where}[{i}]") for i, x in enumerate(v)]}
        if isinstance(v, list):
            return [self.enc(x, f"{where}[{i}]") for i, x in enumerate(v)]
        if isinstance(v, dict):
            out = {}
            for k, x in v.items():
                if not isinstance(k, str):
                    raise TypeError(f"cannot save {where}: dict keys must be strings, got {k!r}")
                out[k] = self.enc(x, f"{where}.{k}")
            return {"__dict__": out}
        e = _entry_for(v)
        if e is None:
            raise TypeError(f"cannot save {where}: objects of type {type(v).__name__} are not "
                            f"savable (savable: {', '.join(sorted(_BY_NAME))})")
        state = e.to_state(v)
        if not isinstance(state, dict):
            raise TypeError(f"to_state of {e.name} must return a dict, got {type(state).__name__}")
        return {"__object__": e.name, "state": self.enc(state, f"{where}<{e.name}>")}


def dumps(obj) -> bytes:
    """The bytes lowbit.save writes for obj."""
    en = _Encoder()
    root = en.enc(obj, "obj")
    table, chunks, off = [], [], 0
    for a in en.arrays:
        pad = (-off) % _ALIGN
        if pad:
            chunks.append(b"\x00" * pad)
            off += pad
        raw = a.tobytes()
        table.append({"dtype": a.dtype.str, "shape": list(a.shape), "offset": off,
                      "nbytes": len(raw)})
        chunks.append(raw)
        off += len(raw)
    header = json.dumps({"format": "lowbit", "root": root, "arrays": table},
                        separators=(",", ":"), allow_nan=False).encode("utf-8")
    payload = b"".join(chunks)
    digest = hashlib.sha256(header + payload).digest()
    return _PREAMBLE.pack(MAGIC, VERSION, 0, len(header), len(payload), digest) + header + payload


def _as_path(path, name="path") -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a str or os.PathLike, got {type(path).__name__}")
    return os.fspath(path)


def save(obj, path) -> None:
    """Write an object to a file in lowbit's file format.

    The file (versioned, checksummed, without pickle; see :doc:`formats`) is replaced
    atomically: written to a temporary file in the same directory, then renamed.

    Parameters
    ----------
    obj : object
        What to save: a QTensor, Codebook, a layer, a model, ... (the registered types, see
        ``lowbit.io.registered_types()``), or None, bools, numbers, strings, numeric/bool
        numpy arrays, and lists, tuples and str-keyed dicts of these.
    path : str or os.PathLike
        The file to write.

    Raises
    ------
    TypeError
        If ``path`` is not a str or os.PathLike, or ``obj`` holds something the format cannot
        store (an unregistered type, an array of another dtype, a dict key that is not a
        string).
    OSError
        If the file cannot be written.
    """
    p = _as_path(path)
    data = dumps(obj)
    d = os.path.dirname(os.path.abspath(p))
    fd, tmp = tempfile.mkstemp(prefix=".lowbit-", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, p)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# --------------------------------------------------------------------------- decoding

class _Decoder:
    def __init__(self, arrays):
        self.arrays = arrays
        self.given: set[int] = set()  # arrays already handed out once

    def dec(self, v, depth=0):
        if depth > 200:
            raise ValueError("lowbit file is corrupt: nesting too deep")
        if v is None or isinstance(v, (bool, int, float, str)):
            return v
        if isinstance(v, list):
            return [self.dec(x, depth + 1) for x in v]
        if not isinstance(v, dict) or len(v) not in (1, 2):
            raise ValueError(f"lowbit file is corrupt: unexpected value {str(v)[:80]}")
        if "__array__" in v and len(v) == 1:
            i = v["__array__"]
            if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < len(self.arrays):
                raise ValueError(f"lowbit file is corrupt: bad array reference {i!r}")
            if i in self.given:  # referenced again: its own copy, never an alias
                return self.arrays[i].copy()
            self.given.add(i)  # first reference: the fresh array _parse_arrays made
            return self.arrays[i]
        if "__tuple__" in v and len(v) == 1 and isinstance(v["__tuple__"], list):
            return tuple(self.dec(x, depth + 1) for x in v["__tuple__"])
        if "__dict__" in v and len(v) == 1 and isinstance(v["__dict__"], dict):
            return {k: self.dec(x, depth + 1) for k, x in v["__dict__"].items()}
        if "__float__" in v and len(v) == 1 and v["__float__"] in ("inf", "-inf", "nan"):
            return float(v["__float__"])
        if "__object__" in v and "state" in v and len(v) == 2:
            name = v["__object__"]
            e = _BY_NAME.get(name) if isinstance(name, str) else None
            if e is None:
                raise ValueError(f"lowbit file holds an object of unknown type {name!r} "
                                 f"(known: {', '.join(sorted(_BY_NAME))})")
            state = self.dec(v["state"], depth + 1)
            if not isinstance(state, dict):
                raise ValueError(f"lowbit file is corrupt: the state of {name} is not a dict")
            try:
                return e.from_state(state)
            except ValueError as err:
                raise ValueError(f"lowbit file holds an invalid {name}: {err}") from None
            except (TypeError, KeyError, IndexError, AttributeError, OverflowError) as err:
                raise ValueError(f"lowbit file holds an invalid {name}: "
                                 f"{type(err).__name__}: {err}") from None
        raise ValueError(f"lowbit file is corrupt: unexpected value {str(v)[:80]}")


def _parse_arrays(table, payload: bytes) -> list[np.ndarray]:
    if not isinstance(table, list):
        raise ValueError("lowbit file is corrupt: the array table is not a list")
    out = []
    for i, t in enumerate(table):
        if not isinstance(t, dict) or set(t) != {"dtype", "shape", "offset", "nbytes"}:
            raise ValueError(f"lowbit file is corrupt: array entry {i} is malformed")
        dt = _DTYPES.get(t["dtype"]) if isinstance(t["dtype"], str) else None
        if dt is None:
            raise ValueError(f"lowbit file is corrupt: array {i} has unsupported dtype {t['dtype']!r}")
        shape, off, nb = t["shape"], t["offset"], t["nbytes"]
        if (not isinstance(shape, list) or len(shape) > 32
                or not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 2**48 for s in shape)):
            raise ValueError(f"lowbit file is corrupt: array {i} has a bad shape {shape!r}")
        for v in (off, nb):
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"lowbit file is corrupt: array {i} has a bad offset/size")
        if math.prod(shape) * dt.itemsize != nb or off + nb > len(payload):
            raise ValueError(f"lowbit file is corrupt: array {i} (shape {shape}, {nb} bytes at {off}) "
                             f"does not fit the payload of {len(payload)} bytes")
        out.append(np.frombuffer(payload, dtype=dt, count=math.prod(shape), offset=off)
                   .reshape(shape).astype(dt.newbyteorder("="), copy=True))
    return out


def loads(data: bytes):
    """The object in `data` (bytes of a lowbit file); ValueError if they are not a valid one."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < _PREAMBLE.size:
        if data and not MAGIC.startswith(data[:len(MAGIC)]):
            raise ValueError("not a lowbit file (wrong magic bytes)")
        raise ValueError(f"not a lowbit file, or truncated: {len(data)} bytes, shorter than the "
                         f"{_PREAMBLE.size}-byte preamble")
    magic, version, flags, hlen, plen, digest = _PREAMBLE.unpack_from(data)
    if magic != MAGIC:
        raise ValueError(f"not a lowbit file (wrong magic bytes {magic!r}, expected {MAGIC!r})")
    if version != VERSION:
        raise ValueError(f"unsupported lowbit file version {version} (this lowbit reads version {VERSION})")
    if flags != 0:
        raise ValueError(f"lowbit file is corrupt: unknown flags {flags:#x}")
    want = _PREAMBLE.size + hlen + plen
    if want != len(data):
        what = "truncated" if len(data) < want else "has trailing bytes"
        raise ValueError(f"lowbit file is corrupt ({what}): the preamble announces {want} bytes, "
                         f"the file has {len(data)}")
    body = memoryview(data)[_PREAMBLE.size:]  # views, not copies of the whole file
    if hashlib.sha256(body).digest() != digest:
        raise ValueError("lowbit file is corrupt: checksum mismatch (SHA-256 of header and payload)")
    try:
        header = json.loads(bytes(body[:hlen]).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise ValueError(f"lowbit file is corrupt: the header is not valid JSON ({e})") from None
    if not isinstance(header, dict) or header.get("format") != "lowbit" or "root" not in header:
        raise ValueError("lowbit file is corrupt: the header is not a lowbit header")
    arrays = _parse_arrays(header.get("arrays"), body[hlen:])
    try:
        return _Decoder(arrays).dec(header["root"])
    except RecursionError:
        raise ValueError("lowbit file is corrupt: nesting too deep") from None


def load(path):
    """Read the object saved by :func:`lowbit.save`.

    Only registered types are ever built, from plain data, so loading a file never runs code
    from it.

    Parameters
    ----------
    path : str or os.PathLike
        The file to read.

    Returns
    -------
    object
        The saved object.

    Raises
    ------
    TypeError
        If ``path`` is not a str or os.PathLike.
    ValueError
        If the file is not a valid lowbit file (truncated, corrupted, foreign, wrong version,
        an unknown type or a state its type rejects), or ``path`` is a directory.
    OSError
        If the file is missing or cannot be read.
    """
    p = _as_path(path)
    if os.path.isdir(p):
        raise ValueError(f"path {p!r} is a directory, not a lowbit file")
    with open(p, "rb") as f:
        data = f.read()
    return loads(data)


# --------------------------------------------------------------------------- validation helpers

def need(state: dict, key: str, kinds, what: str):
    """state[key], checked to be an instance of `kinds` (ValueError naming `what` otherwise)."""
    if key not in state:
        raise ValueError(f"{what} is missing {key!r}")
    v = state[key]
    kinds_t = kinds if isinstance(kinds, tuple) else (kinds,)
    if not isinstance(v, kinds_t) or (isinstance(v, bool) and bool not in kinds_t):
        raise ValueError(f"{what}: {key!r} has the wrong type {type(v).__name__}")
    return v


def need_array(state: dict, key: str, what: str, *, dtype=None, shape=None, kind=None) -> np.ndarray:
    a = need(state, key, np.ndarray, what)
    if dtype is not None and a.dtype != np.dtype(dtype):
        raise ValueError(f"{what}: {key!r} must be {np.dtype(dtype)}, got {a.dtype}")
    if kind is not None and a.dtype.kind not in kind:
        raise ValueError(f"{what}: {key!r} has dtype {a.dtype}")
    if shape is not None and tuple(a.shape) != tuple(shape):
        raise ValueError(f"{what}: {key!r} must have shape {tuple(shape)}, got {a.shape}")
    return a


def need_shape(state: dict, key: str, what: str) -> tuple:
    s = need(state, key, (tuple, list), what)
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in s):
        raise ValueError(f"{what}: {key!r} is not a shape")
    return tuple(s)


def need_axis(state, what, ndim):
    """state["axis"]: None or an axis of an array of `ndim` dimensions."""
    axis = state.get("axis")
    if axis is not None and (isinstance(axis, bool) or not isinstance(axis, int) or not 0 <= axis < ndim):
        raise ValueError(f"{what}: bad axis {axis!r}")
    return axis
