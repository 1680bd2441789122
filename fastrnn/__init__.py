"""fastrnn: a fast CPU engine for RNN, LSTM and GRU, inference and training.

import fastrnn as fr
lstm = fr.LSTM(64, 128, num_layers=2)
y, (h_n, c_n) = lstm(x)                  # x (T, B, 64)
"""

# isort: off
from .simd import simd_level  # first: FASTRNN_ISA applies before anything runs

# isort: on
# fr.onnx.load / save: the onnx package itself is imported on use
from . import interop, onnx, serialization
from .cells import GRUCell, LSTMCell, RNNCell
from .embedding import Embedding
from .interop import from_torch
from .layers import GRU, LSTM, RNN
from .linear import Linear
from .loss import cross_entropy
from .optim import SGD, Adagrad, Adam, AdamW, CosineLR, StepLR, clip_grad_norm_, clip_grad_value_
from .serialization import load
from .stream import Stream
from .tbptt import TBPTT
from .threads import get_num_threads, set_num_threads

__version__ = "0.1.0"

# what fr.load rebuilds from a file
serialization.register(RNN, LSTM, GRU, RNNCell, LSTMCell, GRUCell, Embedding, Linear)

__all__ = [
    "RNN",
    "LSTM",
    "GRU",
    "RNNCell",
    "LSTMCell",
    "GRUCell",
    "load",
    "Embedding",
    "Linear",
    "cross_entropy",
    "SGD",
    "Adam",
    "AdamW",
    "Adagrad",
    "clip_grad_norm_",
    "get_num_threads",
    "set_num_threads",
    "clip_grad_value_",
    "StepLR",
    "CosineLR",
    "TBPTT",
    "from_torch",
    "interop",
    "onnx",
    "Stream",
    "simd_level",
]
