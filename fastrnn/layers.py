"""The sequence layers users call: RNN, LSTM, GRU, with PyTorch's
constructor arguments, parameter names, shapes and results."""
import numpy as np

from . import _core
from ._validate import as_dtype, as_lengths, as_real_array, as_state, positive_int
from .module import Module

GATES = {_core.RNN_TANH: 1, _core.RNN_RELU: 1, _core.LSTM: 4, _core.GRU: 3}


def run_direction(cell, params, suffix, x, h0, c0, lengths, reverse, y, h_n, c_n,
                  peephole=False, linear_before_reset=True, cache=None):
    """One layer-direction through C; parameters named `weight_ih{suffix}` etc."""
    _core.layer_forward(cell, peephole, linear_before_reset,
                        params["weight_ih" + suffix], params["weight_hh" + suffix],
                        params.get("bias_ih" + suffix), params.get("bias_hh" + suffix),
                        params.get("weight_peep" + suffix),
                        x, h0, c0, lengths, reverse, y, h_n, c_n, cache)


class _RNNBase(Module):
    """What RNN, LSTM and GRU share: the layer stack, directions, batch_first,
    lengths and initial states."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 bidirectional=False, dtype=np.float32, seed=None, **options):
        self._configure(input_size=input_size, hidden_size=hidden_size, num_layers=num_layers,
                        bias=bias, batch_first=batch_first, bidirectional=bidirectional,
                        dtype=dtype, **options)
        self._init_params(seed)

    def _configure(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                   bidirectional=False, dtype="float32", **options):
        self.input_size = positive_int(input_size, "input_size")
        self.hidden_size = positive_int(hidden_size, "hidden_size")
        self.num_layers = positive_int(num_layers, "num_layers")
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.bidirectional = bool(bidirectional)
        self.dtype = as_dtype(dtype)
        self._configure_cell(**options)

    def _configure_cell(self):
        """Cell-specific options (nonlinearity, peephole, linear_before_reset)."""

    @property
    def num_directions(self):
        return 2 if self.bidirectional else 1

    def config(self):
        return dict(input_size=self.input_size, hidden_size=self.hidden_size,
                    num_layers=self.num_layers, bias=self.bias, batch_first=self.batch_first,
                    bidirectional=self.bidirectional, dtype=self.dtype.name, **self._cell_config())

    def _suffixes(self):
        """(layer, direction, suffix) in PyTorch's parameter order."""
        for layer in range(self.num_layers):
            for d in range(self.num_directions):
                yield layer, d, f"_l{layer}" + ("_reverse" if d else "")

    def _param_shapes(self):
        G, H = GATES[self._cell], self.hidden_size
        shapes = {}
        for layer, _, sfx in self._suffixes():
            I = self.input_size if layer == 0 else self.num_directions * H
            shapes["weight_ih" + sfx] = (G * H, I)
            shapes["weight_hh" + sfx] = (G * H, H)
            if self.bias:
                shapes["bias_ih" + sfx] = (G * H,)
                shapes["bias_hh" + sfx] = (G * H,)
            if getattr(self, "peephole", False):
                shapes["weight_peep" + sfx] = (3 * H,)
        return shapes

    def __repr__(self):
        extra = "".join(f", {k}={v!r}" for k, v in self._cell_config().items())
        return (f"{type(self).__name__}({self.input_size}, {self.hidden_size}, "
                f"num_layers={self.num_layers}, bias={self.bias}, batch_first={self.batch_first}, "
                f"bidirectional={self.bidirectional}{extra}, dtype={self.dtype.name})")

    def _has_cell_state(self):
        return self._cell == _core.LSTM

    def _initial_state(self, state, B, unbatched):
        """h0 (and c0) as (L*D, B, H) arrays, or None for zeros."""
        if state is None:
            return None, None
        LD, H = self.num_layers * self.num_directions, self.hidden_size
        shape = (LD, H) if unbatched else (LD, B, H)
        if self._has_cell_state():
            if not isinstance(state, (tuple, list)) or len(state) != 2:
                raise TypeError(f"state: expected a tuple (h0, c0) for {type(self).__name__}, "
                                f"got {type(state).__name__}")
            h0 = as_state(state[0], "state[0] (h0)", shape, self.dtype)
            c0 = as_state(state[1], "state[1] (c0)", shape, self.dtype)
            return h0.reshape(LD, B, H), c0.reshape(LD, B, H)
        if isinstance(state, (tuple, list)) and len(state) == 2 and not np.isscalar(state[0]) \
                and np.ndim(state[0]) == len(shape):
            raise TypeError(f"state: expected one array h0 for {type(self).__name__}, got a pair")
        return as_state(state, "state (h0)", shape, self.dtype).reshape(LD, B, H), None

    def __call__(self, x, state=None, lengths=None):
        """Inference over a batch of sequences.

        x: (T, B, I), or (B, T, I) with batch_first, or unbatched (T, I).
        state: h0 (L*D, B, H) or for LSTM (h0, c0); None for zeros.
        lengths: B ints in [0, T], any order: outputs past a sequence's length
        are zero and its final state is the one at its own last step.
        Returns (y, h_n), for LSTM (y, (h_n, c_n)), shaped as PyTorch's."""
        y, h_n, c_n = self._forward(x, state, lengths)
        return (y, (h_n, c_n)) if self._has_cell_state() else (y, h_n)

    def _forward(self, x, state, lengths, caches=None):
        x = as_real_array(x, "x", self.dtype)
        if x.ndim not in (2, 3):
            raise ValueError(f"x: expected a 3-D (T, B, I) or unbatched 2-D (T, I) array, "
                             f"got shape {x.shape}")
        unbatched = x.ndim == 2
        if unbatched:
            x = x[:, None, :]
        elif self.batch_first:
            x = np.ascontiguousarray(x.transpose(1, 0, 2))
        T, B, I = x.shape
        if I != self.input_size:
            raise ValueError(f"x: expected input_size {self.input_size} features in the last "
                             f"dimension, got shape {x.shape if not unbatched else x.shape[::2]}")
        h0, c0 = self._initial_state(state, B, unbatched)
        if lengths is not None:
            lengths = as_lengths(lengths, B, T)
        H, D = self.hidden_size, self.num_directions
        h_n = np.empty((self.num_layers * D, B, H), self.dtype)
        c_n = np.empty_like(h_n) if self._has_cell_state() else None
        for layer in range(self.num_layers):
            y = np.empty((T, B, D * H), self.dtype)
            for d in range(D):
                k = layer * D + d
                cache = caches[k] if caches is not None else None
                run_direction(self._cell, self._params, f"_l{layer}" + ("_reverse" if d else ""),
                              x, None if h0 is None else h0[k], None if c0 is None else c0[k],
                              lengths, d == 1, y[:, :, d * H:(d + 1) * H], h_n[k],
                              None if c_n is None else c_n[k],
                              getattr(self, "peephole", False),
                              getattr(self, "linear_before_reset", True), cache)
            x = y
        if unbatched:
            y, h_n = y[:, 0], h_n[:, 0]
            c_n = None if c_n is None else c_n[:, 0]
        elif self.batch_first:
            y = np.ascontiguousarray(y.transpose(1, 0, 2))
        return y, h_n, c_n


class RNN(_RNNBase):
    """Elman RNN: h' = tanh or relu(W_ih x + b_ih + W_hh h + b_hh)."""

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, bidirectional=False, dtype=np.float32, seed=None):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, bidirectional,
                         dtype, seed, nonlinearity=nonlinearity)

    def _configure_cell(self, nonlinearity="tanh"):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        self._cell = _core.RNN_TANH if nonlinearity == "tanh" else _core.RNN_RELU

    def _cell_config(self):
        return {"nonlinearity": self.nonlinearity}


class LSTM(_RNNBase):
    """LSTM, gate order i, f, g, o; with peephole=True, i and f also see
    c(t-1) and o sees c(t) through `weight_peep_l{k}` (3H: i, f, o)."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 bidirectional=False, peephole=False, proj_size=0, dtype=np.float32, seed=None):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, bidirectional,
                         dtype, seed, peephole=peephole, proj_size=proj_size)

    def _configure_cell(self, peephole=False, proj_size=0):
        if positive_int(proj_size, "proj_size", minimum=0) != 0:
            raise ValueError(f"proj_size: LSTM projections are not supported yet, got {proj_size}")
        self.peephole = bool(peephole)
        self.proj_size = 0
        self._cell = _core.LSTM

    def _cell_config(self):
        return {"peephole": self.peephole}


class GRU(_RNNBase):
    """GRU, gate order r, z, n. linear_before_reset=True is PyTorch's form,
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn)); False is the original,
    n = tanh(W_in x + b_in + W_hn (r * h) + b_hn)."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 bidirectional=False, linear_before_reset=True, dtype=np.float32, seed=None):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, bidirectional,
                         dtype, seed, linear_before_reset=linear_before_reset)

    def _configure_cell(self, linear_before_reset=True):
        self.linear_before_reset = bool(linear_before_reset)
        self._cell = _core.GRU

    def _cell_config(self):
        return {"linear_before_reset": self.linear_before_reset}
