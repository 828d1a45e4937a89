import contextlib

import pytest

import lowbit
from lowbit import _core


@contextlib.contextmanager
def using_isa(isa: str, threads: int | None = None):
    """Runs the block on one kernel set (and thread count), restoring both afterwards."""
    old_isa, old_threads = _core.active_isa(), _core.num_threads()
    assert _core.set_isa(isa)
    if threads is not None:
        lowbit.set_num_threads(threads)
    try:
        yield
    finally:
        _core.set_isa(old_isa)
        lowbit.set_num_threads(old_threads)


ISAS = list(_core.supported_isas())


@pytest.fixture(params=ISAS)
def isa(request):
    with using_isa(request.param):
        yield request.param
