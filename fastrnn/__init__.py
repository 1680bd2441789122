"""fastrnn: a fast CPU engine for RNN, LSTM and GRU, inference and training.

    import fastrnn as fr
    lstm = fr.LSTM(64, 128, num_layers=2)
    y, (h_n, c_n) = lstm(x)                  # x (T, B, 64)
"""
from .cells import GRUCell, LSTMCell, RNNCell
from .layers import GRU, LSTM, RNN
from .serialization import load

__version__ = "0.1.0"

MODELS = {cls.__name__: cls for cls in (RNN, LSTM, GRU, RNNCell, LSTMCell, GRUCell)}

__all__ = ["RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell", "load"]
