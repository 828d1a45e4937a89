"""Transformer encoders (BERT family): :func:`from_pretrained` reads a Hugging Face folder into an
:class:`Encoder`; ``lowbit.quantize_model(encoder, ..., scheme=...)`` gives one whose linear
layers are lowbit's, run as one compiled C++ plan (``lowbit::Encoder``, csrc/include/lowbit/
encoder.h), the plan ``lowbit.export_runtime`` writes for ``lowbit_infer``."""
from __future__ import annotations

import json
import os

import numpy as np

from .. import _core
from .. import io as _io
from .._checks import as_int
from ..codebook import CodebookLinear
from ..int4 import Int4Linear
from ..linear import QuantizedLinear
from ..quant import QTensor, quantize
from .embedding import Int4Embedding
from .layers import Linear
from .safetensors import read_safetensors

#: ``hidden_act`` values of config.json and the GELU form each names (0 erf, 1 tanh)
GELU_FORMS = {"gelu": 0, "gelu_python": 0, "gelu_new": 1, "gelu_pytorch_tanh": 1}
#: the four linear layers of an encoder block, as :attr:`Encoder.layers` names them
LINEARS = ("qkv", "out", "ffn_in", "ffn_out")
_NORMS = ("ln1_gamma", "ln1_beta", "ln2_gamma", "ln2_beta")
#: the layers an encoder's linear layers may be
_LAYERS = (Linear, QuantizedLinear, Int4Linear, CodebookLinear)
#: config.json keys -> Encoder.config keys
_CONFIG = {"vocab_size": "vocab", "max_position_embeddings": "max_positions",
           "type_vocab_size": "type_vocab", "hidden_size": "hidden", "num_attention_heads": "heads",
           "num_hidden_layers": "layers", "intermediate_size": "intermediate"}


def _plan_linear(layer):
    """The C++ plan's description of a quantized linear layer, or None if the plan cannot run it."""
    if isinstance(layer, QuantizedLinear) and layer.act_scale is None:
        return ("int8", layer._packed._packed, layer._w_scale, layer.bias, layer.act_bits)
    if isinstance(layer, Int4Linear):
        return ("int4", layer._w, layer.bias, layer.rotation)
    return None


class Encoder:
    """A BERT-family transformer encoder: embeddings, then ``config["layers"]`` blocks of
    multi-head self-attention and a GELU feed-forward network, each followed by a residual
    LayerNorm, as Hugging Face's ``BertModel`` computes them.

    Built by :func:`lowbit.models.from_pretrained`; ``lowbit.quantize_model(encoder, ...,
    scheme=...)`` returns a copy with lowbit linear layers. When every linear layer is a dynamic
    :class:`lowbit.QuantizedLinear` or an :class:`lowbit.Int4Linear`, a call is one call into a
    C++ plan (``lowbit::Encoder``: no Python per layer; attention, LayerNorm, softmax and GELU on
    lowbit's kernels; padding tokens skipped in :meth:`encode`), the plan that
    :func:`lowbit.export_runtime` writes for ``lowbit_infer``; otherwise numpy runs it.

    Parameters
    ----------
    config : dict
        ``vocab``, ``max_positions``, ``type_vocab``, ``hidden``, ``heads``, ``layers``,
        ``intermediate`` (int), ``eps`` (float, LayerNorm's), ``gelu`` (0 erf form, 1 tanh form).
    embeddings : dict of numpy.ndarray
        ``word`` (vocab, hidden), ``position`` (max_positions, hidden), ``type`` (type_vocab,
        hidden), ``ln_gamma`` and ``ln_beta`` (hidden,). ``word`` may be a
        :class:`lowbit.QTensor` of 8 bits, symmetric, one scale per row (``axis=0``): the
        quantized encoders hold it so (a quarter of the float table's bytes); or a
        :class:`lowbit.models.Int4Embedding` (4-bit groups).
    layers : list of dict
        Per block: ``qkv`` (queries, keys and values in one layer of ``3 hidden`` outputs),
        ``out``, ``ffn_in``, ``ffn_out`` (lowbit layers: :class:`lowbit.models.Linear`,
        :class:`lowbit.QuantizedLinear`, :class:`lowbit.Int4Linear` or
        :class:`lowbit.CodebookLinear`) and ``ln1_gamma``, ``ln1_beta``, ``ln2_gamma``,
        ``ln2_beta`` (hidden,).
    tokenizer : str or None, optional
        Path of a ``tokenizer.json`` (read with the ``tokenizers`` package when text is given).
    max_length : int or None, optional
        Longest input in tokens :meth:`tokenize` keeps (default ``config["max_positions"]``).

    Raises
    ------
    ValueError
        If a shape does not match ``config``.
    """

    def __init__(self, config, embeddings, layers, *, tokenizer=None, max_length=None):
        self.config = {k: (float(config[k]) if k == "eps" else int(config[k]))
                       for k in ("vocab", "max_positions", "type_vocab", "hidden", "heads", "layers",
                                 "intermediate", "eps", "gelu")}
        c = self.config
        h = c["hidden"]
        small = [k for k in _CONFIG.values() if c[k] < 1]
        if small:
            raise ValueError(f"config: {', '.join(small)} must be at least 1")
        if h % c["heads"] or len(layers) != c["layers"] or c["gelu"] not in (0, 1):
            raise ValueError("config: hidden must be a multiple of heads, layers the number of "
                             "blocks given, gelu 0 or 1")
        want = {"word": (c["vocab"], h), "position": (c["max_positions"], h),
                "type": (c["type_vocab"], h), "ln_gamma": (h,), "ln_beta": (h,)}
        self.embeddings = {}
        word = embeddings["word"]
        if isinstance(word, QTensor):
            if word.shape != want["word"] or word.bits != 8 or word.axis != 0 or not word.symmetric:
                raise ValueError("embeddings['word'] as a QTensor must be 8-bit, symmetric, per row "
                                 f"(axis=0), of shape {want['word']}")
        if isinstance(word, Int4Embedding) and word.shape != want["word"]:
            raise ValueError(f"embeddings['word'] must have shape {want['word']}, got {word.shape}")
        if isinstance(word, (QTensor, Int4Embedding)):
            self.embeddings["word"] = word
            want.pop("word")
        for k, shape in want.items():
            a = np.ascontiguousarray(embeddings[k], np.float32)
            if a.shape != shape:
                raise ValueError(f"embeddings[{k!r}] must have shape {shape}, got {a.shape}")
            self.embeddings[k] = a
        sizes = {"qkv": (h, 3 * h), "out": (h, h), "ffn_in": (h, c["intermediate"]),
                 "ffn_out": (c["intermediate"], h)}
        self.layers = []
        for i, blk in enumerate(layers):
            d = {}
            for k in LINEARS:
                lin = blk[k]
                if not isinstance(lin, _LAYERS):
                    raise TypeError(f"layers[{i}][{k!r}] must be a lowbit Linear, QuantizedLinear, "
                                    f"Int4Linear or CodebookLinear, got {type(lin).__name__}")
                if (lin.in_features, lin.out_features) != sizes[k]:
                    raise ValueError(f"layers[{i}][{k!r}] must map {sizes[k][0]} to {sizes[k][1]} "
                                     f"features, got {lin.in_features} -> {lin.out_features}")
                d[k] = lin
            for k in _NORMS:
                a = np.ascontiguousarray(blk[k], np.float32)
                if a.shape != (h,):
                    raise ValueError(f"layers[{i}][{k!r}] must have shape ({h},), got {a.shape}")
                d[k] = a
            self.layers.append(d)
        self.tokenizer_path = None if tokenizer is None else os.fspath(tokenizer)
        self.max_length = c["max_positions"] if max_length is None else \
            as_int(max_length, "max_length", 1, c["max_positions"])
        self._plan = None
        self._tokenizer = None

    # ---- the compiled plan ---------------------------------------------------------------------
    @property
    def compiled(self) -> bool:
        """Whether calls run as one C++ plan (every linear layer a dynamic QuantizedLinear or an
        Int4Linear)."""
        return all(_plan_linear(blk[k]) is not None for blk in self.layers for k in LINEARS)

    def plan(self):
        """The C++ plan (``lowbit._core.Encoder``), built on first use and shared by later calls.

        Returns
        -------
        lowbit._core.Encoder
            The plan (its ``forward`` takes token ids back to back; ``save`` gives the file).

        Raises
        ------
        ValueError
            If a linear layer is not one the plan runs (see :attr:`compiled`).
        """
        if self._plan is None:
            if not self.compiled:
                raise ValueError("the C++ plan runs encoders whose linear layers are all dynamic "
                                 "QuantizedLinear or Int4Linear (quantize it with "
                                 "lowbit.quantize_model(encoder, None, scheme='int8'))")
            e = self.embeddings
            blocks = [tuple(_plan_linear(b[k]) for k in LINEARS) + tuple(b[k] for k in _NORMS)
                      for b in self.layers]
            word = e["word"]
            if isinstance(word, QTensor):
                word = (word.int_repr(), word.scale)
            elif isinstance(word, Int4Embedding):
                word = (word.group_size, word.codes, word.scale.view(np.uint16).reshape(-1),
                        word.zero.reshape(-1))
            self._plan = _core.Encoder.from_parts(self.config, word, e["position"], e["type"],
                                                  e["ln_gamma"], e["ln_beta"], blocks)
        return self._plan

    # ---- inputs --------------------------------------------------------------------------------
    def _ids(self, input_ids, attention_mask, token_type_ids):
        ids = np.asarray(input_ids)
        if ids.dtype.kind not in "iu":
            raise TypeError(f"input_ids must be an integer array, got dtype {ids.dtype}")
        if ids.ndim == 1:
            ids = ids[None]
        if ids.ndim != 2:
            raise ValueError(f"input_ids must have shape (batch, tokens), got {ids.shape}")
        B, T = ids.shape
        if T > self.config["max_positions"]:
            raise ValueError(f"input_ids has {T} tokens, the model takes at most "
                             f"{self.config['max_positions']}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.config["vocab"]):
            raise ValueError(f"input_ids must be in [0, {self.config['vocab']})")
        out = [ids.astype(np.int32)]
        for name, a, top in (("attention_mask", attention_mask, 2),
                             ("token_type_ids", token_type_ids, self.config["type_vocab"])):
            if a is None:
                out.append(None)
                continue
            a = np.asarray(a)
            if a.dtype.kind not in "iub":
                raise TypeError(f"{name} must be an integer or bool array, got dtype {a.dtype}")
            a = a.reshape(ids.shape) if a.size == ids.size else a
            if a.shape != ids.shape:
                raise ValueError(f"{name} must have the shape of input_ids {ids.shape}, got {a.shape}")
            if a.size and (a.min() < 0 or a.max() >= top):
                raise ValueError(f"{name} must be in [0, {top})")
            out.append(a.astype(np.int32))
        return out

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None) -> np.ndarray:
        """The last hidden states.

        Parameters
        ----------
        input_ids : array_like of int, shape (batch, tokens) or (tokens,)
            Token ids, ``0 <= id < config["vocab"]``.
        attention_mask : array_like of int or bool, optional
            1 for the tokens attention may look at, 0 for padding (default: all 1). Padding
            tokens still get hidden states (computed as Hugging Face computes them).
        token_type_ids : array_like of int, optional
            Segment ids (default 0).

        Returns
        -------
        numpy.ndarray
            float32, ``(batch, tokens, hidden)``.

        Raises
        ------
        TypeError
            If an argument is not an integer array.
        ValueError
            If a shape does not match ``input_ids`` or a value is out of range.
        """
        ids, mask, types = self._ids(input_ids, attention_mask, token_type_ids)
        B, T = ids.shape
        if self.compiled:
            start = np.arange(B + 1, dtype=np.int64) * T
            y = self.plan().forward(ids.ravel(), None if types is None else types.ravel(), start,
                                    None if mask is None else (mask.ravel() != 0).astype(np.uint8))
            return y.reshape(B, T, self.config["hidden"])
        return self._numpy_forward(ids, mask, types)

    def _numpy_forward(self, ids, mask, types, capture=None):
        """numpy's run of the same computation, (B, T, hidden); ``capture`` (a dict) receives each
        linear layer's inputs at the valid tokens, by ``"{block}.{name}"``."""
        c, e = self.config, self.embeddings
        B, T = ids.shape
        h, H = c["hidden"], c["heads"]
        D = h // H
        valid = np.ones((B, T), bool) if mask is None else mask != 0
        keys = valid | ~valid.any(1, keepdims=True)  # no valid key: attend to every token
        word = e["word"]
        if isinstance(word, QTensor):  # scale * codes, as the plan gathers them
            w = word.int_repr()[ids].astype(np.float32) * word.scale[ids][..., None]
        elif isinstance(word, Int4Embedding):
            w = word.rows(ids)
        else:
            w = word[ids]
        x = w + (e["type"][0 if types is None else types]) + e["position"][:T][None]
        x = _core.layernorm(x.reshape(-1, h), None, e["ln_gamma"], e["ln_beta"], c["eps"])
        bias = np.where(keys, 0.0, -np.inf).astype(np.float32)[:, None, None, :]

        def lin(i, name, a):
            if capture is not None:
                capture.setdefault(f"{i}.{name}", []).append(a[valid.ravel()])
            return np.asarray(self.layers[i][name](a), np.float32)

        for i, blk in enumerate(self.layers):
            qkv = lin(i, "qkv", x).reshape(B, T, 3, H, D).transpose(2, 0, 3, 1, 4)  # 3,B,H,T,D
            s = (qkv[0] @ qkv[1].transpose(0, 1, 3, 2)) * np.float32(1.0 / np.sqrt(D)) + bias
            p = _core.softmax(s.reshape(-1, T)).reshape(B, H, T, T)
            ctx = (p @ qkv[2]).transpose(0, 2, 1, 3).reshape(-1, h)
            x = _core.layernorm(lin(i, "out", ctx), x, blk["ln1_gamma"], blk["ln1_beta"], c["eps"])
            f = _core.gelu(lin(i, "ffn_in", x), c["gelu"])
            x = _core.layernorm(lin(i, "ffn_out", f), x, blk["ln2_gamma"], blk["ln2_beta"], c["eps"])
        return x.reshape(B, T, h)

    # ---- text ----------------------------------------------------------------------------------
    def tokenize(self, sentences):
        """Token ids and attention mask of sentences, padded to the longest.

        Needs the ``tokenizers`` package (``pip install lowbit[text]``) and a tokenizer.json.

        Parameters
        ----------
        sentences : str or list of str
            The text.

        Returns
        -------
        tuple of numpy.ndarray
            ``(input_ids, attention_mask)``, int64, ``(len(sentences), longest)``; inputs longer
            than :attr:`max_length` tokens are truncated.

        Raises
        ------
        TypeError
            If ``sentences`` is not a string or a list of strings.
        ValueError
            If the encoder has no tokenizer.
        ImportError
            If the ``tokenizers`` package is missing.
        """
        if isinstance(sentences, str):
            sentences = [sentences]
        if not isinstance(sentences, (list, tuple)) or not all(isinstance(s, str) for s in sentences):
            raise TypeError("sentences must be a string or a list of strings")
        if self.tokenizer_path is None:
            raise ValueError("this encoder has no tokenizer (from_pretrained reads the folder's "
                             "tokenizer.json); pass input_ids to __call__ instead")
        if self._tokenizer is None:
            try:
                from tokenizers import Tokenizer
            except ImportError:
                raise ImportError("Encoder.tokenize needs the tokenizers package: "
                                  "pip install lowbit[text]") from None
            tok = Tokenizer.from_file(self.tokenizer_path)
            tok.no_padding()
            tok.enable_truncation(self.max_length)
            self._tokenizer = tok
        encs = self._tokenizer.encode_batch(list(sentences))
        T = max([len(s.ids) for s in encs] + [1])
        ids = np.zeros((len(encs), T), np.int64)
        mask = np.zeros((len(encs), T), np.int64)
        for i, s in enumerate(encs):
            ids[i, :len(s.ids)] = s.ids
            mask[i, :len(s.ids)] = 1
        return ids, mask

    def encode(self, sentences, *, batch_size=64) -> np.ndarray:
        """Sentence embeddings as sentence-transformers computes them: the mean of the last hidden
        states over the sentence's tokens, L2-normalized.

        The compiled plan runs the tokens of a batch back to back, with no padding.

        Parameters
        ----------
        sentences : str, list of str or tuple of arrays
            Text (tokenized with :meth:`tokenize`), or ``(input_ids, attention_mask)``.
        batch_size : int, default 64
            Sentences per call.

        Returns
        -------
        numpy.ndarray
            float32, ``(n, hidden)``.

        Raises
        ------
        TypeError
            As :meth:`tokenize` and :meth:`__call__`.
        ValueError
            As :meth:`tokenize` and :meth:`__call__`.
        """
        if isinstance(sentences, tuple) and len(sentences) == 2 and not isinstance(sentences[0], str):
            ids, mask = sentences
        else:
            ids, mask = self.tokenize(sentences)
        ids, mask, _ = self._ids(ids, mask, None)
        bs = as_int(batch_size, "batch_size", 1)
        out = []
        for s in range(0, ids.shape[0], bs):
            out.append(self._pooled(ids[s:s + bs], mask[s:s + bs]))
        y = np.concatenate(out) if out else np.zeros((0, self.config["hidden"]), np.float32)
        return y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), np.float32(1e-12))

    def _pooled(self, ids, mask):
        """Mean over each row's valid tokens of the last hidden states (B, hidden)."""
        valid = mask != 0
        if not self.compiled:
            x = self._numpy_forward(ids, mask, None)
            w = valid[..., None].astype(np.float32)
            return (x * w).sum(1) / np.maximum(w.sum(1), 1.0)
        lengths = valid.sum(1)
        start = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        # positions are the tokens' indices in the padded row, as for a padded call
        if not all(valid[b, :n].all() for b, n in enumerate(lengths)):
            x = self(ids, mask)
            w = valid[..., None].astype(np.float32)
            return (x * w).sum(1) / np.maximum(w.sum(1), 1.0)
        y = self.plan().forward(ids[valid], None, start, None)
        sums = np.zeros((len(ids), y.shape[1]), np.float32)
        some = lengths > 0  # reduceat over the non-empty sentences only (an empty one adds 0)
        if some.any():
            sums[some] = np.add.reduceat(y, start[:-1][some], axis=0)
        return sums / np.maximum(lengths, 1)[:, None].astype(np.float32)

    # ---- sizes ---------------------------------------------------------------------------------
    @property
    def nbytes(self) -> int:
        """Bytes the encoder holds: embeddings, LayerNorms and linear layers (as held)."""
        from .graph import layer_nbytes
        n = sum(a.nbytes for a in self.embeddings.values())
        for blk in self.layers:
            n += sum(layer_nbytes(blk[k]) for k in LINEARS) + sum(blk[k].nbytes for k in _NORMS)
        return int(n)

    def __repr__(self) -> str:
        c = self.config
        kinds = sorted({type(b[k]).__name__ for b in self.layers for k in LINEARS})
        return (f"Encoder(layers={c['layers']}, hidden={c['hidden']}, heads={c['heads']}, "
                f"intermediate={c['intermediate']}, vocab={c['vocab']}, linears={'/'.join(kinds)})")

    # ---- quantization --------------------------------------------------------------------------
    def with_linears(self, convert) -> "Encoder":
        """A copy whose linear layers are ``convert(name, layer)`` (``name`` as ``"3.ffn_in"``);
        embeddings and LayerNorms are shared (never modified).

        Parameters
        ----------
        convert : callable
            ``(name, layer) -> layer`` of the same shape.

        Returns
        -------
        Encoder
            The new encoder.
        """
        blocks = [{**blk, **{k: convert(f"{i}.{k}", blk[k]) for k in LINEARS}}
                  for i, blk in enumerate(self.layers)]
        return Encoder(self.config, self.embeddings, blocks, tokenizer=self.tokenizer_path,
                       max_length=self.max_length)

    def linear_inputs(self, calibration_data, *, per_sentence=False) -> dict:
        """Each linear layer's inputs over calibration data, at the valid tokens (the float run).

        Parameters
        ----------
        calibration_data : list of str or tuple of arrays
            Sentences, or ``(input_ids, attention_mask)``.
        per_sentence : bool, default False
            Scale each sentence's rows by ``1 / sqrt(its tokens)``, so that every sentence weighs
            the same in ``X^T X`` (the "sentence-balanced" second moment GPTQ then uses: short
            inputs are not drowned out by long ones).

        Returns
        -------
        dict of str to numpy.ndarray
            ``{"{block}.{name}": (tokens, in_features) float32}``.
        """
        if isinstance(calibration_data, tuple) and len(calibration_data) == 2:
            ids, mask = calibration_data
        else:
            ids, mask = self.tokenize(calibration_data)
        ids, mask, _ = self._ids(ids, mask, None)
        cap: dict = {}
        for s in range(0, ids.shape[0], 64):
            self._numpy_forward(ids[s:s + 64], mask[s:s + 64], None, capture=cap)
        out = {k: np.concatenate(v) for k, v in cap.items()}
        if per_sentence:
            n = (mask != 0).sum(1)
            w = np.repeat(1.0 / np.sqrt(np.maximum(n, 1)), n).astype(np.float32)[:, None]
            out = {k: v * w for k, v in out.items()}
        return out


def quantize_encoder(encoder, calibration_data=None, *, scheme="int8", embeddings="int8",
                     embedding_group_size=32, **options) -> Encoder:
    """A copy of an encoder with every linear layer quantized (``lowbit.quantize_model``'s
    encoder branch).

    ``scheme="int8"``: :class:`lowbit.QuantizedLinear` with dynamic per-row activations
    (options: ``bits``, ``per_channel``, ``act_bits``); no calibration needed.
    ``scheme="int4"``: :class:`lowbit.Int4Linear` (options: ``bits``, ``group_size``,
    ``method``, ``rotate``); ``method="gptq"`` takes each layer's inputs from
    ``calibration_data`` (sentences or ``(input_ids, attention_mask)``) run through the float
    encoder, each sentence weighing the same (:meth:`Encoder.linear_inputs` with
    ``per_sentence=True``). ``rotate=True`` with ``method="gptq"``, group 64, was the study's
    best uniform 4-bit recipe on all-MiniLM-L6-v2 (``bench/studies/minilm_4bit``).
    ``scheme="codebook"``: :class:`lowbit.CodebookLinear` (options: its keyword arguments, e.g.
    ``k``, ``per_row``, ``outliers``); with ``calibration_data``, each layer gets its own inputs
    on it (sentence-balanced, as for GPTQ) as ``calibration``: the clustering is weighted by
    their per-channel second moments.

    Parameters
    ----------
    encoder : Encoder
        A float encoder (e.g. from :func:`from_pretrained`); it is not modified.
    calibration_data : list of str, tuple of arrays or None
        Sentences or ``(input_ids, attention_mask)``; needed by ``method="gptq"``, used by
        ``scheme="codebook"`` (calibration-weighted clustering) when given.
    scheme : {"int8", "int4", "codebook"}, default "int8"
        The layer every linear becomes.
    embeddings : {"int8", "int4", "float32"}, default "int8"
        How the word embeddings are held: int8 with one scale per token (a quarter of the bytes;
        for all-MiniLM-L6-v2 11 MiB instead of 45), 4-bit in groups
        (:class:`lowbit.models.Int4Embedding`: 4.75 bits a value for groups of 32, 6.6 MiB for
        all-MiniLM-L6-v2; on its 32 test sentences with float linear layers the embeddings' cosine
        to float stayed >= 0.998, where one 4-bit scale per token gave 0.957) or as they are.
    embedding_group_size : int, default 32
        ``embeddings="int4"``: values per group (even, dividing the hidden size).
    **options
        Keyword arguments of that layer.

    Returns
    -------
    Encoder
        The quantized encoder (embeddings and LayerNorms shared with ``encoder``).

    Raises
    ------
    TypeError
        If ``encoder`` is not an Encoder, or an option is not the layer's.
    ValueError
        If ``scheme`` or ``embeddings`` is unknown, ``embedding_group_size`` does not fit the
        hidden size, the encoder is quantized already, or
        ``method="gptq"`` has no calibration data.
    """
    if not isinstance(encoder, Encoder):
        raise TypeError(f"encoder must be a lowbit.models.Encoder, got {type(encoder).__name__}")
    if scheme not in ("int8", "int4", "codebook"):
        raise ValueError(f"scheme must be 'int8', 'int4' or 'codebook', got {scheme!r}")
    if embeddings not in ("int8", "int4", "float32"):
        raise ValueError(f"embeddings must be 'int8', 'int4' or 'float32', got {embeddings!r}")
    if embeddings == "int4":
        g = as_int(embedding_group_size, "embedding_group_size", 2)
        if g % 2 or encoder.config["hidden"] % g:
            raise ValueError(f"embedding_group_size must be even and divide hidden="
                             f"{encoder.config['hidden']}, got {g}")
    if any(not isinstance(blk[k], Linear) for blk in encoder.layers for k in LINEARS):
        raise ValueError("the encoder's linear layers are quantized already; quantize the float "
                         "encoder (lowbit.models.from_pretrained)")
    inputs = None
    if scheme == "int4" and options.get("method", "rtn") == "gptq":
        if calibration_data is None:
            raise ValueError("calibration_data is needed for method='gptq' (sentences or "
                             "(input_ids, attention_mask))")
        inputs = encoder.linear_inputs(calibration_data, per_sentence=True)
    if scheme == "codebook" and calibration_data is not None:
        if "calibration" in options:
            raise TypeError("calibration is taken from calibration_data for scheme='codebook'; "
                            "do not pass it as an option")
        inputs = encoder.linear_inputs(calibration_data, per_sentence=True)

    def convert(name, lin):
        w, b = lin.weight, lin.bias
        if scheme == "int8":
            return QuantizedLinear(w, b, **options)
        if scheme == "int4":
            return Int4Linear(w, b, calibration=None if inputs is None else inputs[name], **options)
        return CodebookLinear(w, b, calibration=None if inputs is None else inputs[name], **options)

    out = encoder.with_linears(convert)
    if embeddings == "int8":
        out.embeddings["word"] = quantize(out.embeddings["word"], bits=8, axis=0, symmetric=True)
    elif embeddings == "int4":
        out.embeddings["word"] = Int4Embedding(out.embeddings["word"], embedding_group_size)
    return out


def from_pretrained(folder, *, max_length=None) -> Encoder:
    """A BERT-family encoder from a Hugging Face folder.

    Reads ``config.json`` and ``model.safetensors`` (lowbit's own reader: no extra package);
    ``tokenizer.json``, if present, is used by :meth:`Encoder.tokenize` (the ``tokenizers``
    package); ``sentence_bert_config.json``'s ``max_seq_length``, if present, is the default
    ``max_length``. Nothing is downloaded.

    Parameters
    ----------
    folder : str or path-like
        The folder (e.g. a sentence-transformers model such as all-MiniLM-L6-v2).
    max_length : int, optional
        Longest input in tokens (default: the folder's ``max_seq_length``, else the model's
        ``max_position_embeddings``).

    Returns
    -------
    Encoder
        The float encoder.

    Raises
    ------
    ValueError
        If the folder lacks a file, the model is not a BERT-family encoder lowbit runs
        (``model_type`` bert; absolute positions; a GELU activation), or a weight is missing or
        has the wrong shape.
    """
    folder = os.fspath(folder)
    for f in ("config.json", "model.safetensors"):
        if not os.path.isfile(os.path.join(folder, f)):
            raise ValueError(f"folder {folder!r} has no {f}")
    with open(os.path.join(folder, "config.json")) as f:
        cfg = json.load(f)
    if cfg.get("model_type", "bert") != "bert" or cfg.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError(f"{folder}: lowbit runs BERT encoders with absolute positions, got "
                         f"model_type={cfg.get('model_type')!r}")
    act = cfg.get("hidden_act", "gelu")
    if act not in GELU_FORMS:
        raise ValueError(f"{folder}: hidden_act {act!r} is not one of {', '.join(GELU_FORMS)}")
    try:
        config = {v: int(cfg[k]) for k, v in _CONFIG.items()}
    except KeyError as e:
        raise ValueError(f"{folder}/config.json has no {e.args[0]}") from None
    config.update(eps=float(cfg.get("layer_norm_eps", 1e-12)), gelu=GELU_FORMS[act])
    st = read_safetensors(os.path.join(folder, "model.safetensors"))
    prefix = "bert." if "bert.embeddings.word_embeddings.weight" in st else ""

    def get(name):
        if prefix + name not in st:
            raise ValueError(f"{folder}/model.safetensors has no {prefix + name}")
        return np.asarray(st[prefix + name], np.float32)

    emb = {"word": get("embeddings.word_embeddings.weight"),
           "position": get("embeddings.position_embeddings.weight"),
           "type": get("embeddings.token_type_embeddings.weight"),
           "ln_gamma": get("embeddings.LayerNorm.weight"), "ln_beta": get("embeddings.LayerNorm.bias")}
    blocks = []
    for i in range(config["layers"]):
        p = f"encoder.layer.{i}."
        qkv = [p + f"attention.self.{n}" for n in ("query", "key", "value")]
        blocks.append({
            "qkv": Linear(np.concatenate([get(n + ".weight") for n in qkv]),
                          np.concatenate([get(n + ".bias") for n in qkv])),
            "out": Linear(get(p + "attention.output.dense.weight"), get(p + "attention.output.dense.bias")),
            "ln1_gamma": get(p + "attention.output.LayerNorm.weight"),
            "ln1_beta": get(p + "attention.output.LayerNorm.bias"),
            "ffn_in": Linear(get(p + "intermediate.dense.weight"), get(p + "intermediate.dense.bias")),
            "ffn_out": Linear(get(p + "output.dense.weight"), get(p + "output.dense.bias")),
            "ln2_gamma": get(p + "output.LayerNorm.weight"), "ln2_beta": get(p + "output.LayerNorm.bias")})
    if max_length is None:
        sb = os.path.join(folder, "sentence_bert_config.json")
        if os.path.isfile(sb):
            with open(sb) as f:
                max_length = json.load(f).get("max_seq_length")
        max_length = min(int(max_length or config["max_positions"]), config["max_positions"])
    tok = os.path.join(folder, "tokenizer.json")
    return Encoder(config, emb, blocks, tokenizer=tok if os.path.isfile(tok) else None,
                   max_length=max_length)


def _register_io() -> None:
    """Encoder in lowbit.save / lowbit.load, and so in pickle (the file format's bytes: loading
    builds only lowbit's registered types from plain data)."""
    what = "Encoder"

    def to_state(e):
        return {"config": dict(e.config), "embeddings": dict(e.embeddings),
                "layers": [dict(b) for b in e.layers], "tokenizer": e.tokenizer_path,
                "max_length": e.max_length}

    def from_state(s):
        config = _io.need(s, "config", dict, what)
        embeddings = _io.need(s, "embeddings", dict, what)
        layers = _io.need(s, "layers", list, what)
        tokenizer = s.get("tokenizer")
        if tokenizer is not None and not isinstance(tokenizer, str):
            raise ValueError(f"{what}: tokenizer must be a path or None")
        try:
            return Encoder(config, embeddings, layers, tokenizer=tokenizer,
                           max_length=_io.need(s, "max_length", int, what))
        except (KeyError, TypeError) as e:
            raise ValueError(f"{what}: malformed state ({e})") from None

    _io.register(what, Encoder, to_state, from_state)


_register_io()
