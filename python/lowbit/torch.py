"""lowbit.torch: lowbit's quantized layers inside PyTorch models.

Imported only when used (``import lowbit`` does not import torch); needs
``pip install lowbit[torch]``. :func:`quantize` replaces the ``torch.nn.Linear`` modules of any
torch model (a ``torch.nn.Sequential``, transformers' ``BertModel``, a sentence-transformers
model, ...) with :class:`LowbitLinear` modules, which run one of lowbit's layers
(:class:`lowbit.QuantizedLinear`, :class:`lowbit.Int4Linear` or :class:`lowbit.CodebookLinear`)
on the tensors' memory: a float32 CPU tensor is read in place and the result wraps the array
lowbit returns, without copies. Inference only.
"""
from __future__ import annotations

import collections.abc
import copy
import inspect
import warnings

import numpy as np
import torch

from . import io as _io
from ._checks import as_bool
from .codebook import CodebookLinear
from .int4 import Int4Linear
from .linear import QuantizedLinear

#: The lowbit layer of each scheme.
SCHEMES = {"int8": QuantizedLinear, "int4": Int4Linear, "codebook": CodebookLinear}
_SCHEME_OF = {cls: name for name, cls in SCHEMES.items()}

__all__ = ["quantize", "LowbitLinear"]


class LowbitLinear(torch.nn.Module):
    """A ``torch.nn.Module`` that runs a lowbit layer: an inference-only ``torch.nn.Linear``.

    ``module(x)`` computes ``x W^T + b`` with the layer's kernels. A float32, CPU tensor is
    handed to lowbit without a copy (a non-contiguous one is made contiguous first) and the
    output tensor shares the memory of the array lowbit returns. float16, bfloat16 and float64
    inputs are converted to float32; the output is always float32, of shape
    ``(..., out_features)``. The input is never modified.

    The module cannot train: its forward raises :class:`RuntimeError` when gradients are enabled
    and the input requires them, or when the module is in training mode with gradients enabled.
    It starts in eval mode; run it under ``torch.inference_mode()`` or ``torch.no_grad()``, or
    with the model in eval mode and inputs that do not require gradients.

    ``state_dict()`` holds one entry per module, ``<name>._extra_state``: the layer in lowbit's
    file format (:func:`lowbit.save`'s bytes) as a 1-D ``torch.uint8`` tensor.
    ``load_state_dict()`` rebuilds the layer from it (a module of the same scheme and sizes, e.g.
    of a model quantized the same way), so the outputs are identical to the saved model's.
    Modules and whole models also pickle (``torch.save(model)``).

    Parameters
    ----------
    layer : QuantizedLinear or Int4Linear or CodebookLinear
        The lowbit layer to run (kept, not copied).

    Attributes
    ----------
    layer : QuantizedLinear or Int4Linear or CodebookLinear
        The lowbit layer.
    scheme : str
        ``"int8"``, ``"int4"`` or ``"codebook"``: the kind of ``layer``.
    in_features : int
        Size of the last axis of the input.
    out_features : int
        Size of the last axis of the output.

    Raises
    ------
    TypeError
        If ``layer`` is not one of the three lowbit layers.
    """

    def __init__(self, layer):
        super().__init__()
        if type(layer) not in _SCHEME_OF:
            raise TypeError("layer must be a lowbit.QuantizedLinear, Int4Linear or CodebookLinear, "
                            f"got {type(layer).__name__}")
        self._set_layer(layer)
        self.training = False  # inference only: a new module is in eval mode

    def _set_layer(self, layer) -> None:
        self.layer = layer
        self.scheme = _SCHEME_OF[type(layer)]
        self.in_features, self.out_features = layer.in_features, layer.out_features

    @classmethod
    def from_linear(cls, linear, *, scheme="int8", **options) -> "LowbitLinear":
        """The module of a ``torch.nn.Linear``'s weight and bias, quantized by ``scheme``.

        Parameters
        ----------
        linear : torch.nn.Linear
            The float layer (on the CPU; any floating dtype). It is not modified.
        scheme : {"int8", "int4", "codebook"}, default "int8"
            ``"int8"``: :class:`lowbit.QuantizedLinear` (int8 weights, activations quantized
            per row on the fly); ``"int4"``: :class:`lowbit.Int4Linear`; ``"codebook"``:
            :class:`lowbit.CodebookLinear`.
        **options
            Keyword arguments of that layer's constructor (``bits``, ``per_channel``,
            ``act_bits``; ``group_size``, ``method``, ``calibration``; ``k``, ``dim``, ...).

        Returns
        -------
        LowbitLinear
            The module, in eval mode.

        Raises
        ------
        TypeError
            If ``linear`` is not a ``torch.nn.Linear``, ``scheme`` is not a string, or an option
            is not one of the layer's or has the wrong type.
        ValueError
            If ``scheme`` is unknown, the weight is not on the CPU or holds NaN/Inf, or an
            option is out of range (as the layer's constructor says).
        """
        if not isinstance(linear, torch.nn.Linear):
            raise TypeError(f"linear must be a torch.nn.Linear, got {type(linear).__name__}")
        make = SCHEMES[_check_scheme(scheme)]
        weight, bias = linear.weight, linear.bias
        if weight.device.type != "cpu":
            raise ValueError(f"linear must be on the CPU, its weight is on {weight.device}")
        return cls(make(_to_numpy(weight), None if bias is None else _to_numpy(bias), **options))

    def forward(self, x):
        """The layer's output.

        Parameters
        ----------
        x : torch.Tensor, shape (..., in_features)
            A floating-point CPU tensor (float32 is read in place; float16, bfloat16 and float64
            are converted to float32).

        Returns
        -------
        torch.Tensor
            float32 of shape ``(..., out_features)``, without gradient.

        Raises
        ------
        TypeError
            If ``x`` is not a floating-point ``torch.Tensor``.
        ValueError
            If ``x`` is not on the CPU, its last axis is not ``in_features``, or it holds NaN/Inf.
        RuntimeError
            If gradients are enabled and ``x`` requires them, or the module is in training mode
            with gradients enabled (it cannot train).
        """
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(f"x must be a floating-point tensor (float32, float16, bfloat16 or "
                            f"float64), got dtype {x.dtype}")
        if not x.is_cpu:
            raise ValueError(f"x must be on the CPU (lowbit's kernels run there), got device {x.device}")
        if torch.is_grad_enabled() and (x.requires_grad or self.training):
            why = "x requires grad" if x.requires_grad else "the module is in training mode"
            raise RuntimeError(f"LowbitLinear is inference-only and cannot compute gradients ({why}): "
                               "run the model under torch.inference_mode() or torch.no_grad(), "
                               "or call model.eval() and pass inputs that do not require grad")
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"x must have shape (..., {self.in_features}), got {tuple(x.shape)}")
        # Each step only when needed (torch calls cost microseconds, as much as a small GEMV): a
        # contiguous float32 x becomes a 2-D C-contiguous view, lowbit's fastest path.
        if x.requires_grad:
            x = x.detach()
        if x.dtype != torch.float32:
            x = x.to(torch.float32)
        if not x.is_contiguous():
            x = x.contiguous()
        a = x.numpy()
        y = self.layer(a.reshape(-1, self.in_features))
        return torch.from_numpy(y.reshape(a.shape[:-1] + (self.out_features,)))

    def get_extra_state(self):
        """The layer in lowbit's file format, for ``state_dict()``.

        Returns
        -------
        torch.Tensor
            A 1-D ``torch.uint8`` tensor of the bytes :func:`lowbit.save` writes for ``layer``.
        """
        return torch.frombuffer(bytearray(_io.dumps(self.layer)), dtype=torch.uint8)

    def set_extra_state(self, state) -> None:
        """Replaces the layer with the one in ``state``, for ``load_state_dict()``.

        Parameters
        ----------
        state : torch.Tensor
            A 1-D ``torch.uint8`` tensor made by :meth:`get_extra_state` of a module of the same
            scheme and sizes.

        Raises
        ------
        TypeError
            If ``state`` is not a 1-D uint8 tensor.
        ValueError
            If ``state`` is not a valid lowbit file, or holds a layer of another scheme or other
            sizes than this module's.
        """
        if not isinstance(state, torch.Tensor) or state.dtype != torch.uint8 or state.ndim != 1:
            raise TypeError("state must be a 1-D torch.uint8 tensor (a LowbitLinear's extra state), "
                            f"got {_describe(state)}")
        layer = _io.loads(state.detach().cpu().contiguous().numpy().tobytes())
        if type(layer) is not type(self.layer):
            got = _SCHEME_OF.get(type(layer), type(layer).__name__)
            raise ValueError(f"state holds a {type(layer).__name__} (scheme {got!r}) but this module's "
                             f"scheme is {self.scheme!r}: quantize the model with scheme={got!r} "
                             "before loading")
        if (layer.in_features, layer.out_features) != (self.in_features, self.out_features):
            raise ValueError(f"state holds a layer of in_features={layer.in_features}, "
                             f"out_features={layer.out_features}; this module has "
                             f"in_features={self.in_features}, out_features={self.out_features}")
        self._set_layer(layer)

    def extra_repr(self) -> str:
        """The sizes, whether there is a bias, and the scheme, as in the module's repr.

        Returns
        -------
        str
            E.g. ``in_features=384, out_features=1536, bias=True, scheme=int8``.
        """
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.layer.bias is not None}, scheme={self.scheme}")


def quantize(model, *, scheme="int8", inplace=False, skip=None, **options):
    """The torch model with every ``torch.nn.Linear`` replaced by a :class:`LowbitLinear`.

    Modules of exactly the class ``torch.nn.Linear`` are replaced (in the copy, or in ``model``
    itself with ``inplace=True``); subclasses are left alone, e.g. the ``out_proj`` of
    ``torch.nn.MultiheadAttention``, whose weight its owner reads directly. A Linear reachable
    under several names becomes one module at every place. The other modules, their
    parameters and their training mode are unchanged. The result is for inference: see
    :class:`LowbitLinear`.

    Parameters
    ----------
    model : torch.nn.Module
        The float model, on the CPU.
    scheme : {"int8", "int4", "codebook"}, default "int8"
        ``"int8"``: :class:`lowbit.QuantizedLinear`, int8 weights per output channel and
        activations quantized per row on the fly (so a row's output does not depend on the other
        rows of the batch); ``"int4"``: :class:`lowbit.Int4Linear`, 2- to 4-bit weights in
        groups; ``"codebook"``: :class:`lowbit.CodebookLinear`, k-means weight sharing.
    inplace : bool, default False
        Replace the modules of ``model`` itself instead of those of a deep copy.
    skip : collection of str, or callable, optional
        Modules to leave in float. A collection of qualified names, as ``model.named_modules()``
        gives them (``"pooler.dense"``); a name skips that module and every module under it
        (``"pooler"``). Or a callable ``skip(name, module) -> bool`` called for every Linear.
    **options
        Keyword arguments of the scheme's layer, the same for every module: ``bits``,
        ``per_channel``, ``act_bits`` (``"int8"``); ``bits``, ``group_size``, ``method``
        (``"int4"``); ``k``, ``dim``, ``seed``, ``iters``, ``init``, ``activations``
        (``"codebook"``). ``calibration``, for the layers that take one (``method="gptq"``), is
        model inputs instead of one layer's: a tensor (``model(calibration)``), a tuple of
        positional arguments or a mapping of keyword arguments (a tokenizer's output, say).
        The float model runs once on them and each Linear gets the rows it was given.

    Returns
    -------
    torch.nn.Module
        The quantized model: a deep copy of ``model``, or ``model`` itself with ``inplace=True``
        (a ``torch.nn.Linear`` itself becomes a :class:`LowbitLinear`). A model without Linear
        modules to replace is returned as it is (copied), with a :class:`UserWarning`.

    Raises
    ------
    TypeError
        If ``model`` is not a ``torch.nn.Module``, ``scheme`` is not a string, ``inplace`` not a
        bool, ``skip`` neither a collection of strings nor a callable, or an option is not one
        of the scheme's layer or has the wrong type (the message names the module).
    ValueError
        If ``scheme`` is unknown, ``skip`` names a module the model does not have, a weight is
        not on the CPU or holds NaN/Inf, an option is out of range, or a Linear to quantize saw
        no input during calibration.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    make = SCHEMES[_check_scheme(scheme)]
    if not as_bool(inplace, "inplace"):
        model = copy.deepcopy(model)
    targets = _targets(model, skip)
    if not targets:
        warnings.warn(f"quantize: the model ({type(model).__name__}) has no torch.nn.Linear to replace"
                      + (" (after skip)" if skip is not None else ""), UserWarning, stacklevel=2)
        return model
    calib = {}
    if "calibration" in options:
        if "calibration" not in inspect.signature(make).parameters:
            raise TypeError(f"calibration is not an option of scheme={scheme!r} ({make.__name__})")
        if options["calibration"] is not None:
            calib = _layer_inputs(model, targets, options["calibration"])
    new = {}  # id(Linear) -> its LowbitLinear, one per Linear however many names it has
    for name, linear in targets:
        if id(linear) not in new:
            opts = dict(options, calibration=calib[id(linear)]) if calib else options
            try:
                new[id(linear)] = LowbitLinear.from_linear(linear, scheme=scheme, **opts)
            except (TypeError, ValueError) as e:
                raise type(e)(f"module {name!r}: {e}") from e
        if not name:  # the model is a Linear itself
            return new[id(linear)]
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent), child, new[id(linear)])
    return model


def _check_scheme(scheme) -> str:
    if not isinstance(scheme, str):
        raise TypeError(f"scheme must be a string, one of {sorted(SCHEMES)}, got {type(scheme).__name__}")
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {sorted(SCHEMES)}, got {scheme!r}")
    return scheme


def _targets(model, skip) -> list:
    """(qualified name, module) of every torch.nn.Linear to replace, every name of a shared one."""
    named = list(model.named_modules(remove_duplicate=False))
    if skip is None:
        keep = lambda name, m: True  # noqa: E731
    elif callable(skip):
        keep = lambda name, m: not skip(name, m)  # noqa: E731
    else:
        if isinstance(skip, str) or not isinstance(skip, collections.abc.Iterable):
            raise TypeError("skip must be a collection of module names or a callable "
                            f"(name, module) -> bool, got {type(skip).__name__}")
        names = set(skip)
        if not all(isinstance(n, str) for n in names):
            raise TypeError("skip must hold module names (str)")
        unknown = names - {n for n, _ in named}
        if unknown:
            raise ValueError(f"skip names modules the model does not have: {sorted(unknown)}")
        keep = lambda name, m: not any(name == n or name.startswith(n + ".")  # noqa: E731
                                       for n in names)
    return [(n, m) for n, m in named if type(m) is torch.nn.Linear and keep(n, m)]


def _layer_inputs(model, targets, calibration) -> dict:
    """{id(Linear): float32 (rows, in_features)}: what each target saw in one float forward."""
    seen: dict = {}

    def hook(module, args):
        x = args[0].detach().reshape(-1, module.in_features)
        seen.setdefault(id(module), []).append(x.to(torch.float32).numpy().copy())

    handles = [m.register_forward_pre_hook(hook) for m in {id(m): m for _, m in targets}.values()]
    try:
        with torch.no_grad():
            if isinstance(calibration, torch.Tensor):
                model(calibration)
            elif isinstance(calibration, tuple):
                model(*calibration)
            elif isinstance(calibration, collections.abc.Mapping):
                model(**calibration)
            else:
                raise TypeError("calibration must be a torch.Tensor, a tuple of the model's "
                                f"arguments or a mapping of them, got {type(calibration).__name__}")
    finally:
        for h in handles:
            h.remove()
    missing = [name for name, m in targets if id(m) not in seen]
    if missing:
        raise ValueError(f"calibration: these modules saw no input in the model's forward: {missing}")
    return {k: np.concatenate(v) for k, v in seen.items()}


def _to_numpy(t) -> np.ndarray:
    """A float32 numpy array of a parameter (a view when it is float32 already)."""
    return t.detach().to(torch.float32).numpy()


def _describe(v) -> str:
    if isinstance(v, torch.Tensor):
        return f"a {v.ndim}-D tensor of dtype {v.dtype}"
    return type(v).__name__
