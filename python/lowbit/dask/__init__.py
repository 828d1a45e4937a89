"""lowbit.dask: soft targets, calibration, k-means and model compression on a Dask cluster.

Imported only when used (``import lowbit`` does not import Dask); needs
``pip install lowbit[dask]`` (``dask[distributed]``). Every function runs on the current Dask
client (or the one passed as ``client=``; ``client="local"`` runs the same tasks in this
process) and returns what the single-process computation returns, bit for bit:

- :func:`soft_targets`, :func:`stream`: a teacher's soft targets over a dask array, a list of
  .npy shards or an iterator of arrays, written as .npy shards and streamed into
  :meth:`lowbit.distill.Distiller.fit_stream`;
- :func:`calibrate`: an observer's statistics per shard, merged (:meth:`lowbit.Observer.merge`);
- :func:`kmeans`: Lloyd's algorithm as map (per-shard exact sums and counts) and reduce;
  :func:`product_quantize`: the subspaces' k-means in parallel;
- :func:`compress_many`: many models quantized on the workers, saved as lowbit files.

How to run on a real cluster, and the memory each step needs per worker: ``docs/dask.rst``.
"""
try:
    import dask as _dask  # noqa: F401
    import distributed as _distributed  # noqa: F401
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("lowbit.dask needs Dask's distributed scheduler: pip install lowbit[dask] "
                      f"(dask[distributed]); {e}") from e

from .calib import calibrate
from .kmeans import KMeansResult, kmeans, product_quantize
from .many import compress_many
from .soft import SoftTargetShards, soft_targets, stream

__all__ = ["soft_targets", "stream", "SoftTargetShards", "calibrate", "kmeans", "KMeansResult",
           "product_quantize", "compress_many"]
