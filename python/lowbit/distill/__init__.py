"""lowbit.distill: knowledge distillation in numpy (Hinton et al. 2015), hints (FitNets), several
teachers, soft targets precomputed and streamed in chunks, and quantization-aware distillation.

For example::

    teacher = lowbit.nn.MLP([64, 512, 512, 10], dropout=0.2); lowbit.nn.fit(teacher, x, y, epochs=100)
    student = lowbit.nn.MLP([64, 32, 10], seed=1)
    lowbit.distill.Distiller(teacher, student, temperature=4.0, alpha=0.5).fit(x, y, epochs=300)

Quantization-aware distillation: distill into ``prepare_qat(student)``, then ``convert_qat`` gives
QuantizedLinear layers (int8 inference). Codebook fine-tuning: ``prepare_codebook(student)``.
"""
from lowbit.nn.functional import kd_loss
from lowbit.nn.quantized import (FakeQuantLinear, SharedWeightLinear, convert_qat, prepare_codebook,
                                 prepare_qat, quantize_dynamic)
from lowbit.nn.training import History
from .distiller import Distiller, chunks_from_files

__all__ = ["Distiller", "History", "kd_loss", "chunks_from_files", "prepare_qat", "convert_qat",
           "quantize_dynamic", "prepare_codebook", "FakeQuantLinear", "SharedWeightLinear"]
