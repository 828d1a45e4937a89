import os
import subprocess
import sys

import pytest

import lowbit
from lowbit import _core


def test_cpu_info_fields():
    info = lowbit.cpu_info()
    assert info["arch"] in ("x86_64", "aarch64", "arm", "unknown")
    assert isinstance(info["features"], list)
    assert info["isa"] in info["supported_isas"]
    assert info["supported_isas"][0] == "scalar"
    assert info["threads"] == lowbit.get_num_threads() >= 1
    assert isinstance(info["note"], str)


def test_default_isa_is_the_best_supported():
    env = {k: v for k, v in os.environ.items() if k != "LOWBIT_ISA"}
    out = subprocess.run([sys.executable, "-c", "import lowbit; print(lowbit.cpu_info()['isa'])"],
                         env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert out == _core.supported_isas()[-1]


def _import_with(env_isa):
    env = dict(os.environ, LOWBIT_ISA=env_isa)
    return subprocess.run([sys.executable, "-c", "import lowbit; print(lowbit.cpu_info()['isa'])"],
                          env=env, capture_output=True, text=True)


def test_isa_override_can_downgrade():
    r = _import_with("scalar")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "scalar"


@pytest.mark.parametrize("bad", ["avx1024", "sve9"])
def test_isa_override_rejects_unsupported(bad):
    r = _import_with(bad)
    assert r.returncode != 0
    assert "ValueError" in r.stderr and "supported" in r.stderr and "scalar" in r.stderr


def test_unsupported_real_isa_is_rejected():
    other = "neon" if lowbit.cpu_info()["arch"] == "x86_64" else "avx2"
    r = _import_with(other)
    assert r.returncode != 0 and "ValueError" in r.stderr


def test_threads_setting_and_env():
    old = lowbit.get_num_threads()
    try:
        lowbit.set_num_threads(1)
        assert lowbit.get_num_threads() == 1
        with pytest.raises(ValueError):
            lowbit.set_num_threads(0)
        with pytest.raises(TypeError):
            lowbit.set_num_threads(1.5)
    finally:
        lowbit.set_num_threads(old)
    env = dict(os.environ, LOWBIT_NUM_THREADS="3")
    out = subprocess.run([sys.executable, "-c", "import lowbit; print(lowbit.get_num_threads())"],
                         env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert out == "3"


def test_info_command_runs():
    r = subprocess.run([sys.executable, "-m", "lowbit", "info"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "isa:" in r.stdout and lowbit.cpu_info()["isa"] in r.stdout
