"""lowbit.export_runtime: the file layout and the errors. (That the C++ runtime reproduces Python
bit for bit, natively and on aarch64 under qemu, is checked by tests/runtime/check_runtime.py in
CI.)"""
import struct
import zlib

import numpy as np
import pytest

import lowbit
from lowbit import nn


def small_model():
    rng = np.random.default_rng(0)
    return nn.Sequential([lowbit.QuantizedLinear(rng.standard_normal((5, 4)).astype(np.float32)),
                          nn.ReLU(), nn.Dropout(0.5),
                          lowbit.QuantizedLinear(rng.standard_normal((3, 5)).astype(np.float32),
                                                 np.ones(3, np.float32), act_scale=0.1)])


def test_file_layout_and_checksum(tmp_path):
    path = tmp_path / "m.lbrt"
    n = lowbit.export_runtime(small_model(), path)
    data = path.read_bytes()
    assert len(data) == n and data[:4] == b"LBRT"
    version, n_layers, fin, fout = struct.unpack("<IIII", data[4:20])
    assert (version, n_layers, fin, fout) == (1, 3, 4, 3)  # Dropout is left out
    assert struct.unpack("<I", data[-4:])[0] == zlib.crc32(data[:-4])


def test_reference_of_dynamic_layers_is_the_layers_one_by_one():
    """Dynamic layers do not chain on codes: the runtime (the reference) runs them one by one."""
    m = small_model()
    x = np.random.default_rng(1).standard_normal((6, 4)).astype(np.float32)
    want = m.layers[3](np.maximum(m.layers[0](x), 0))
    np.testing.assert_array_equal(lowbit.deploy.runtime_reference(m, x), want)


def test_unsupported_models_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"layer 0 \(Linear\) cannot be exported"):
        lowbit.export_runtime(nn.MLP([4, 3]), tmp_path / "x")
    with pytest.raises(ValueError, match="no QuantizedLinear"):
        lowbit.export_runtime([nn.ReLU()], tmp_path / "x")
    a = lowbit.QuantizedLinear(np.ones((5, 4), np.float32))
    with pytest.raises(ValueError, match="takes 4 features but receives 5"):
        lowbit.export_runtime([a, a], tmp_path / "x")
    with pytest.raises(TypeError, match="model must be"):
        lowbit.export_runtime(42, tmp_path / "x")


def test_codebook_layers_are_written_compactly(tmp_path):
    rng = np.random.default_rng(2)
    w = rng.standard_normal((64, 128)).astype(np.float32)
    cb4 = lowbit.CodebookLinear(w, np.ones(64, np.float32), k=16)
    cb8 = lowbit.CodebookLinear(w[:, :64], None, k=64, dim=2, activations="int16")
    path = tmp_path / "cb.lbrt"
    n = lowbit.export_runtime([cb4, nn.ReLU(), cb8], path)
    data = path.read_bytes()
    version, n_layers, fin, fout = struct.unpack("<IIII", data[4:20])
    assert (version, n_layers, fin, fout) == (2, 3, 128, 64)  # codebook layers need version 2
    kind, K, N, k, dim, flags = struct.unpack("<6I", data[20:44])
    assert (kind, K, N, k, dim, flags) == (3, 128, 64, 16, 1, 1)
    # 4-bit codes two a byte, 16 centroids, a bias; then the 8-bit layer with its pairs.
    first = 24 + 16 * 4 + 64 * 128 // 2 + 64 * 4
    second = 24 + 64 * 2 * 4 + 64 * 32
    assert n == 20 + first + 4 + second + 4
    assert data[20 + first:24 + first] == struct.pack("<I", 2)  # the ReLU
    assert struct.unpack("<6I", data[24 + first:48 + first]) == (3, 64, 64, 64, 2, 2)
    x = rng.standard_normal((3, 128)).astype(np.float32)
    np.testing.assert_array_equal(lowbit.deploy.runtime_reference([cb4, nn.ReLU(), cb8], x),
                                  cb8(np.maximum(cb4(x), 0)))
