"""lowbit.nn: a small numpy neural-network toolkit (float32, forward and backward by hand) for
training teachers and students: layers, Sequential/MLP, losses, SGD/Adam, ``fit``, and
quantization-aware training / codebook fine-tuning.

    model = lowbit.nn.MLP([64, 512, 512, 10], dropout=0.2, seed=0)
    hist = lowbit.nn.fit(model, x, y, epochs=100, lr=3e-3, schedule="cosine")
    logits = model(x_test)

Every layer here subclasses the forward-only lowbit.models layer of the same name and adds the
training pass; ``trainable(model)`` turns a loaded (forward-only) model into one that trains.
"""
from .layers import GELU, MLP, Dropout, Layer, LayerNorm, Linear, ReLU, Sequential, Softmax, trainable
from .functional import cross_entropy, kd_loss, log_softmax, mse_loss, softmax
from .optim import SGD, Adam, Optimizer, learning_rate
from .training import History, evaluate, fit
from .quantized import (FakeQuantLinear, SharedWeightLinear, convert_qat, fake_quantize_rows,
                        fake_quantize_static, fake_quantize_weight, prepare_codebook, prepare_qat,
                        quantize_dynamic)

__all__ = [
    "Layer", "Linear", "ReLU", "GELU", "Dropout", "LayerNorm", "Softmax", "Sequential", "MLP", "trainable",
    "cross_entropy", "kd_loss", "log_softmax", "softmax", "mse_loss",
    "Optimizer", "SGD", "Adam", "learning_rate",
    "History", "fit", "evaluate",
    "FakeQuantLinear", "SharedWeightLinear", "prepare_qat", "convert_qat", "quantize_dynamic",
    "prepare_codebook", "fake_quantize_weight", "fake_quantize_rows", "fake_quantize_static",
]
