"""lowbit.models: inference models (the layer between the tensor API and lowbit.nn).

- layers.py: forward-only layers and Sequential (lowbit.nn subclasses them to train);
- loaders.py: models from arrays, .npz / .safetensors / lowbit files and torch modules;
- safetensors.py: the .safetensors reader and writer;
- quantized.py: QuantizedModel, static int8 layers chained on uint8 codes;
- ptq.py: post-training quantization of a whole model (calibrate_model, quantize_model);
- graph.py: which layers are Linear, their weights, names and sizes in memory;
- encoder.py: transformer encoders (BERT family), from_pretrained and the compiled C++ plan;
- embedding.py: Int4Embedding, an embedding table in 4-bit groups.
"""
from .layers import GELU, Dropout, Layer, LayerNorm, Linear, ReLU, Sequential, Softmax
from .graph import ELEMENTWISE, is_linear, layer_nbytes, linear_indices, make_linear, model_nbytes, weight_of
from .safetensors import read_safetensors, read_safetensors_metadata, write_safetensors
from .loaders import as_model, from_arrays, from_torch, load_model
from .quantized import QuantizedModel
from .embedding import Int4Embedding
from .encoder import Encoder, from_pretrained
from .ptq import calibrate_model, quantize_model
from .surgery import low_rank_layers, prune_hidden_units

__all__ = ["Layer", "Linear", "ReLU", "GELU", "Dropout", "LayerNorm", "Softmax", "Sequential",
           "QuantizedModel", "Encoder", "Int4Embedding", "from_pretrained", "load_model", "from_arrays", "from_torch", "as_model",
           "calibrate_model", "quantize_model", "read_safetensors", "read_safetensors_metadata",
           "write_safetensors", "is_linear", "linear_indices", "make_linear", "weight_of",
           "layer_nbytes", "model_nbytes", "ELEMENTWISE", "low_rank_layers", "prune_hidden_units"]
