"""Smoke test of ``lowbit bench fourbit`` (lowbit_bench.fourbit): every variant built, checked
against the float layer and timed once on a small weight."""
from __future__ import annotations

import pytest

pytest.importorskip("pytest_benchmark")

from lowbit_bench import fourbit  # noqa: E402


def test_fourbit_runs_and_prints_every_variant(capsys):
    assert fourbit.main(threads="1", repeat=1, quick=True, shape=(48, 256)) == 0
    out = capsys.readouterr().out
    for name in ("lowbit Int4Linear g32", "lowbit Int4Linear g128", "lowbit QuantizedLinear bits=4",
                 fourbit.INT8):
        assert name in out
    assert out.count("== 4-bit linear layers") == len(fourbit.ROWS)
