"""`lowbit demo` end to end (quick budgets) and the other commands' entry points."""
import subprocess
import sys

import pytest

pytest.importorskip("sklearn")


def test_demo_runs_end_to_end(tmp_path):
    r = subprocess.run([sys.executable, "-m", "lowbit", "demo", "--quick"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    out = r.stdout
    for row in ("| teacher | float32 (numpy)", "| teacher | int8 QuantizedLinear",
                "| student (distilled) | int8 QuantizedLinear", "| teacher | int8, 7-bit operands",
                "4-bit codebook"):
        assert row in out
    assert "finished in" in out
    if "accuracy against size and latency:" in out:  # matplotlib installed
        assert (tmp_path / "lowbit_demo_tradeoffs.png").stat().st_size > 10_000


def test_bench_rejects_unknown_names():
    r = subprocess.run([sys.executable, "-m", "lowbit", "bench", "nosuchbench"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "nosuchbench" in (r.stdout + r.stderr)
