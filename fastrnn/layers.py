"""The sequence layers users call: RNN, LSTM, GRU, with PyTorch's
constructor arguments, parameter names, shapes and results."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _core
from ._validate import as_dtype, as_lengths, as_one_state, as_real_array, as_state, positive_int
from .module import Module, Trainable
from .stream import make_stream
from .threads import get_num_threads

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, DTypeLike

    from .stream import Stream

GATES = {_core.RNN_TANH: 1, _core.RNN_RELU: 1, _core.LSTM: 4, _core.GRU: 3}


def rnn_cell_kind(nonlinearity):
    """The C cell of an Elman RNN with this nonlinearity."""
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
    return _core.RNN_TANH if nonlinearity == "tanh" else _core.RNN_RELU


def _probability(p, name):
    """A float in [0, 1], as PyTorch checks its dropout."""
    if isinstance(p, bool) or not isinstance(p, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a number in [0, 1], got {type(p).__name__}")
    if not 0 <= p <= 1:
        raise ValueError(f"{name}: expected a number in [0, 1], got {p}")
    return float(p)


def dropout_generator(seed):
    """The generator of a layer's dropout masks: a stream of its own, apart
    from the one that initialised the weights with the same seed."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,)))


def run_direction(
    cell,
    params,
    suffix,
    x,
    h0,
    c0,
    lengths,
    reverse,
    y,
    h_n,
    c_n,
    peephole=False,
    linear_before_reset=True,
    cache=None,
    module=None,
):
    """One layer-direction through C; parameters named `weight_ih{suffix}` etc.;
    with `module`, its cached packed weights."""
    packed = packed_ih = packed_hr = None
    w_hr = params.get("weight_hr" + suffix)
    if module is not None:
        packed = module._packed("weight_hh" + suffix)
        packed_ih = module._packed("weight_ih" + suffix)
        if w_hr is not None:
            packed_hr = module._packed("weight_hr" + suffix)
    w_ih, w_hh = params["weight_ih" + suffix], params["weight_hh" + suffix]
    b_ih, b_hh = params.get("bias_ih" + suffix), params.get("bias_hh" + suffix)
    w_peep = params.get("weight_peep" + suffix)
    num_threads = get_num_threads()
    # Positional, each value named as its parameter: keywords would cost a
    # cell step (LSTMCell) a few percent in argument parsing.
    _core.layer_forward(
        cell,
        peephole,
        linear_before_reset,
        w_ih,
        w_hh,
        b_ih,
        b_hh,
        w_peep,
        x,
        h0,
        c0,
        lengths,
        reverse,
        y,
        h_n,
        c_n,
        cache,
        packed,
        num_threads,
        packed_ih,
        w_hr,
        packed_hr,
    )


class _RNNBase(Trainable, Module):
    """What RNN, LSTM and GRU share: the layer stack, directions, batch_first,
    lengths and initial states."""

    # Options of some cells, at their defaults for the others: read as plain
    # attributes, they never take Module.__getattr__'s AttributeError path
    # (a few microseconds a call, on every forward and backward).
    peephole = False
    linear_before_reset = True
    proj_size = 0

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        bidirectional: bool = False,
        dtype: DTypeLike = np.float32,
        seed: int | None = None,
        dropout: float = 0.0,
        **options: Any,
    ) -> None:
        self._configure(
            input_size=input_size,
            hidden_size=hidden_size,
            num_layers=num_layers,
            bias=bias,
            batch_first=batch_first,
            bidirectional=bidirectional,
            dtype=dtype,
            dropout=dropout,
            **options,
        )
        if self.dropout > 0 and self.num_layers == 1:
            warnings.warn(
                "dropout is applied to the outputs of every layer but the last, so "
                f"dropout={self.dropout} with num_layers=1 does nothing",
                stacklevel=3,
            )
        self._init_params(seed)
        self.seed_dropout(seed)

    def _configure(
        self,
        input_size,
        hidden_size,
        num_layers=1,
        bias=True,
        batch_first=False,
        bidirectional=False,
        dtype="float32",
        dropout=0.0,
        **options,
    ):
        self.dropout = _probability(dropout, "dropout")
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
    def num_directions(self) -> int:
        """2 for a bidirectional layer, else 1 (D in the shapes)."""
        return 2 if self.bidirectional else 1

    @property
    def output_size(self) -> int:
        """Features of h per direction: proj_size for a projected LSTM, else
        hidden_size."""
        return self.proj_size or self.hidden_size

    def config(self) -> dict[str, Any]:
        return dict(
            input_size=self.input_size,
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
            bias=self.bias,
            batch_first=self.batch_first,
            bidirectional=self.bidirectional,
            dtype=self.dtype.name,
            dropout=self.dropout,
            **self._cell_config(),
        )

    def _suffixes(self):
        """(layer, direction, suffix) in PyTorch's parameter order."""
        for layer in range(self.num_layers):
            for d in range(self.num_directions):
                yield layer, d, f"_l{layer}" + ("_reverse" if d else "")

    def _param_shapes(self):
        G, H, R = GATES[self._cell], self.hidden_size, self.output_size
        shapes = {}
        for layer, _, sfx in self._suffixes():
            I = self.input_size if layer == 0 else self.num_directions * R
            shapes["weight_ih" + sfx] = (G * H, I)
            shapes["weight_hh" + sfx] = (G * H, R)
            if self.bias:
                shapes["bias_ih" + sfx] = (G * H,)
                shapes["bias_hh" + sfx] = (G * H,)
            if R != H:
                shapes["weight_hr" + sfx] = (R, H)
            if self.peephole:
                shapes["weight_peep" + sfx] = (3 * H,)
        return shapes

    def __repr__(self):
        extra = "".join(f", {k}={v!r}" for k, v in self._cell_config().items())
        return (
            f"{type(self).__name__}({self.input_size}, {self.hidden_size}, "
            f"num_layers={self.num_layers}, bias={self.bias}, batch_first={self.batch_first}, "
            f"bidirectional={self.bidirectional}{extra}, dtype={self.dtype.name})"
        )

    def _has_cell_state(self):
        return self._cell == _core.LSTM

    def _initial_state(self, state, B, unbatched):
        """h0 (L*D, B, R) (and c0 (L*D, B, H)) arrays, or None for zeros."""
        if state is None:
            return None, None
        LD, H, R = self.num_layers * self.num_directions, self.hidden_size, self.output_size
        shape = (LD, R) if unbatched else (LD, B, R)
        if self._has_cell_state():
            if not isinstance(state, (tuple, list)) or len(state) != 2:
                raise TypeError(
                    f"state: expected a tuple (h0, c0) for {type(self).__name__}, "
                    f"got {type(state).__name__}"
                )
            h0 = as_state(state[0], "state[0] (h0)", shape, self.dtype)
            c0 = as_state(state[1], "state[1] (c0)", shape[:-1] + (H,), self.dtype)
            return h0.reshape(LD, B, R), c0.reshape(LD, B, H)
        return as_one_state(
            state,
            "state (h0)",
            shape,
            self.dtype,
            f"state: expected one array h0 for {type(self).__name__}, got a pair",
        ).reshape(LD, B, R), None

    def __call__(
        self,
        x: ArrayLike,
        state: ArrayLike | tuple[ArrayLike, ArrayLike] | None = None,
        lengths: ArrayLike | None = None,
    ) -> tuple[np.ndarray, Any]:
        """Inference over a batch of sequences.

        x: (T, B, I), or (B, T, I) with batch_first, or unbatched (T, I);
        any real array-like, converted to the layer's dtype.
        state: h0 (L*D, B, H) or for LSTM (h0, c0) with c0 (L*D, B, H);
        unbatched (L*D, H); None for zeros. (A projected LSTM's h0, h_n and
        y have proj_size features, not H.)
        lengths: B ints in [0, T], any order: outputs past a sequence's length
        are zero and its final state is the one at its own last step.
        Returns (y, h_n), for LSTM (y, (h_n, c_n)), shaped as PyTorch's:
        y (T, B, D*H) or (B, T, D*H) with batch_first, or (T, D*H)
        unbatched; h_n and c_n (L*D, B, H), or (L*D, H) unbatched.
        Raises ValueError or TypeError, naming the argument, for a wrong
        shape or dtype. (The state is typed Any: an array, or for LSTM a
        pair of arrays, so that `y, h_n = gru(x)` type-checks.)"""
        y, h_n, c_n = self._forward(x, state, lengths)
        return (y, (h_n, c_n)) if self._has_cell_state() else (y, h_n)

    def _forward(self, x, state, lengths, trace=None):
        """y (T, B, D*H) or as the user shaped x, h_n, c_n. With `trace` (a
        TrainingCache) also fills the caches for backward, records each
        layer's input and applies inter-layer dropout."""
        x = as_real_array(x, "x", self.dtype)
        if x.ndim not in (2, 3):
            raise ValueError(
                f"x: expected a 3-D (T, B, I) or unbatched 2-D (T, I) array, got shape {x.shape}"
            )
        unbatched = x.ndim == 2
        if unbatched:
            x = x[:, None, :]
        elif self.batch_first:
            x = np.ascontiguousarray(x.transpose(1, 0, 2))
        T, B, I = x.shape
        if I != self.input_size:
            raise ValueError(
                f"x: expected input_size {self.input_size} features in the last "
                f"dimension, got shape {x.shape if not unbatched else x.shape[::2]}"
            )
        h0, c0 = self._initial_state(state, B, unbatched)
        if lengths is not None:
            lengths = as_lengths(lengths, B, T)
        H, R, D = self.hidden_size, self.output_size, self.num_directions
        P = self.proj_size
        h_n = np.empty((self.num_layers * D, B, R), self.dtype)
        c_n = np.empty((self.num_layers * D, B, H), self.dtype) if self._has_cell_state() else None
        if trace is not None:
            trace.start(T, B, lengths, unbatched)
        for layer in range(self.num_layers):
            if trace is not None:
                trace.inputs.append(x)
            y = np.empty((T, B, D * R), self.dtype)
            for d in range(D):
                k = layer * D + d
                cache = None
                if trace is not None:
                    cache = _core.aligned_empty(  # 64-byte rows: fastrnn.h
                        _core.cache_size(self._cell, H, T, B, P), self.dtype
                    )
                    trace.arrays.append(cache)
                run_direction(
                    self._cell,
                    self._params,
                    f"_l{layer}" + ("_reverse" if d else ""),
                    x,
                    None if h0 is None else h0[k],
                    None if c0 is None else c0[k],
                    lengths,
                    d == 1,
                    y[:, :, d * R : (d + 1) * R],
                    h_n[k],
                    None if c_n is None else c_n[k],
                    self.peephole,
                    self.linear_before_reset,
                    cache,
                    self,
                )
            if trace is not None and self.dropout > 0 and layer < self.num_layers - 1:
                mask = self._dropout_mask(y.shape)
                trace.masks.append(mask)
                y = y * mask
            x = y
        if unbatched:
            y, h_n = y[:, 0], h_n[:, 0]
            c_n = None if c_n is None else c_n[:, 0]
        elif self.batch_first:
            y = np.ascontiguousarray(y.transpose(1, 0, 2))
        return y, h_n, c_n

    def stream(self, batch_size: int = 1) -> Stream:
        """A Stream: this layer one time step per call over `batch_size` rows,
        from zero state, for services -- s.step(x_t), s.run(x_chunk),
        s.state, s.reset(rows). Unidirectional layers only (ValueError for a
        bidirectional one); see fastrnn.Stream and fastrnn/stream.py."""
        return make_stream(self, batch_size)

    # ---------------------------------------------------------------- training

    def forward(
        self,
        x: ArrayLike,
        state: ArrayLike | tuple[ArrayLike, ArrayLike] | None = None,
        lengths: ArrayLike | None = None,
    ) -> tuple[np.ndarray, Any, TrainingCache]:
        """Training forward: as calling the layer, plus inter-layer dropout
        (when dropout > 0) and what backward needs.

        x, state and lengths as for calling the layer.
        Returns (y, state_n, cache): y and state_n (h_n, or for LSTM
        (h_n, c_n)) as from calling the layer;
        `cache` is opaque, for `backward`. It keeps references to x and to
        each layer's output: do not modify them in place before backward."""
        cache = TrainingCache(self)
        y, h_n, c_n = self._forward(x, state, lengths, trace=cache)
        cache.y_shape = y.shape
        return y, ((h_n, c_n) if self._has_cell_state() else h_n), cache

    def backward(
        self,
        dy: ArrayLike,
        cache: TrainingCache,
        dstate: ArrayLike | tuple[ArrayLike | None, ArrayLike | None] | None = None,
        *,
        input_grad: bool = True,
    ) -> tuple[np.ndarray | None, Any]:
        """Backpropagation through time for a `forward`.

        dy: gradient of the loss w.r.t. y, shaped as y. cache: what this
        layer's `forward` returned (TypeError for another's). dstate: gradient
        w.r.t. the final state, h_n or for LSTM (h_n, c_n) (either may be
        None); None for zeros. Adds the parameter gradients into `self.grads`
        and returns (dx, dstate0): the gradients w.r.t. x (shaped as x) and
        w.r.t. the initial state (shaped as the state, h0 or (h0, c0)), also
        when the forward started from zeros. input_grad=False skips dx (a
        quarter of the work of a one-layer backward) and returns None for it.
        Uses the current weights, which must be those of the forward."""
        if not isinstance(cache, TrainingCache) or cache.model is not self:
            raise TypeError("cache: expected the cache returned by this layer's forward")
        B, H, D = cache.B, self.hidden_size, self.num_directions
        LD, R = self.num_layers * D, self.output_size
        dy = as_real_array(dy, "dy", self.dtype)
        if dy.shape != cache.y_shape:
            raise ValueError(f"dy: expected the shape of y {cache.y_shape}, got {dy.shape}")
        if cache.unbatched:
            dy = dy[:, None, :]
        elif self.batch_first:
            dy = np.ascontiguousarray(dy.transpose(1, 0, 2))
        dh_n, dc_n = self._final_state_grad(dstate, B, cache.unbatched)
        dh0 = np.empty((LD, B, R), self.dtype)
        dc0 = np.empty((LD, B, H), self.dtype) if self._has_cell_state() else None
        params, grads = self._params, self.grads
        for layer in reversed(range(self.num_layers)):
            x = cache.inputs[layer]
            dx = (
                _core.aligned_empty(x.size, self.dtype).reshape(x.shape)
                if layer > 0 or input_grad
                else None
            )
            for d in range(D):
                k, sfx = layer * D + d, f"_l{layer}" + ("_reverse" if d else "")
                _core.layer_backward(
                    cell=self._cell,
                    peephole=self.peephole,
                    linear_before_reset=self.linear_before_reset,
                    w_ih=params["weight_ih" + sfx],
                    w_hh=params["weight_hh" + sfx],
                    w_peep=params.get("weight_peep" + sfx),
                    w_hr=params.get("weight_hr" + sfx),
                    x=x,
                    lengths=cache.lengths,
                    reverse=d == 1,
                    cache=cache.arrays[k],
                    dy=dy[:, :, d * R : (d + 1) * R],
                    dh_n=None if dh_n is None else dh_n[k],
                    dc_n=None if dc_n is None else dc_n[k],
                    dx=dx,
                    dx_accumulate=d > 0,
                    dh0=dh0[k],
                    dc0=None if dc0 is None else dc0[k],
                    gw_ih=grads["weight_ih" + sfx],
                    gw_hh=grads["weight_hh" + sfx],
                    gb_ih=grads.get("bias_ih" + sfx),
                    gb_hh=grads.get("bias_hh" + sfx),
                    gw_peep=grads.get("weight_peep" + sfx),
                    gw_hr=grads.get("weight_hr" + sfx),
                    num_threads=get_num_threads(),
                )
            if layer > 0 and cache.masks:
                dx *= cache.masks[layer - 1]
            dy = dx  # type: ignore[assignment]  # (dx is None only at layer 0, the last)
        if cache.unbatched:
            dx = None if dx is None else dx[:, 0]
            dh0, dc0 = dh0[:, 0], (None if dc0 is None else dc0[:, 0])
        elif self.batch_first and dx is not None:
            dx = np.ascontiguousarray(dx.transpose(1, 0, 2))
        return dx, ((dh0, dc0) if self._has_cell_state() else dh0)

    def _final_state_grad(self, dstate, B, unbatched):
        """dh_n (L*D, B, R) (and dc_n (L*D, B, H)) arrays, or None for zeros."""
        if dstate is None:
            return None, None
        LD, R, H = self.num_layers * self.num_directions, self.output_size, self.hidden_size

        def shape(n):
            return (LD, n) if unbatched else (LD, B, n)

        def one(a, name, n):
            return None if a is None else as_state(a, name, shape(n), self.dtype).reshape(LD, B, n)

        if self._has_cell_state():
            if not isinstance(dstate, (tuple, list)) or len(dstate) != 2:
                raise TypeError(
                    f"dstate: expected a tuple (dh_n, dc_n) for "
                    f"{type(self).__name__}, got {type(dstate).__name__}"
                )
            return one(dstate[0], "dstate[0] (dh_n)", R), one(dstate[1], "dstate[1] (dc_n)", H)
        return as_one_state(
            dstate,
            "dstate (dh_n)",
            shape(R),
            self.dtype,
            f"dstate: expected one array dh_n for {type(self).__name__}, got a pair",
        ).reshape(LD, B, R), None

    def seed_dropout(self, seed: int | None) -> None:
        """Restart the dropout masks' generator from `seed` (None: fresh entropy).
        The constructor's `seed` seeds it too, apart from the weights' stream."""
        self.__dict__["_dropout_rng"] = dropout_generator(seed)

    def _dropout_mask(self, shape):
        """Keep each element with probability 1 - p, scaled by 1 / (1 - p)."""
        if "_dropout_rng" not in self.__dict__:
            self.seed_dropout(None)
        p = self.dropout
        keep = self._dropout_rng.random(shape, dtype=self.dtype) >= p
        return keep.astype(self.dtype) * (self.dtype.type(1 / (1 - p)) if p < 1 else 0)


class TrainingCache:
    """What a training forward keeps for backward: one cache array per
    layer-direction, each layer's input, the dropout masks, lengths and the
    shapes. Opaque to users: hand it to the layer's `backward`."""

    __slots__ = ("model", "arrays", "inputs", "masks", "lengths", "T", "B", "unbatched", "y_shape")
    lengths: np.ndarray | None
    T: int
    B: int
    unbatched: bool
    y_shape: tuple[int, ...]

    def __init__(self, model):
        self.model = model
        self.arrays, self.inputs, self.masks = [], [], []

    def start(self, T, B, lengths, unbatched):
        """Record the sequence's shape at the start of a forward."""
        self.T, self.B, self.lengths, self.unbatched = T, B, lengths, unbatched


class RNN(_RNNBase):
    """Elman RNN: h' = tanh or relu(W_ih x + b_ih + W_hh h + b_hh), as
    PyTorch's nn.RNN.

    input_size I, hidden_size H: the features of x and of h. num_layers L:
    layers stacked, each fed the previous one's output. bias: with the biases
    b_ih and b_hh. batch_first: x and y are (B, T, features) instead of
    (T, B, features); states stay (L*D, B, H), as in PyTorch. bidirectional:
    a reverse direction too (D = 2), its outputs concatenated after the
    forward one's. dtype: float32 or float64, of the parameters and results
    (inputs are converted to it). seed: of the initialisation, every
    parameter U(-1/sqrt(H), 1/sqrt(H)) as PyTorch's (None: fresh entropy),
    and of the dropout masks (see seed_dropout). dropout: the probability of
    zeroing each output of every layer but the last, in `forward` (training)
    only, the kept ones scaled by 1 / (1 - dropout); calling the layer never
    drops (PyTorch's eval mode).
    nonlinearity: 'tanh' or 'relu'.

    Parameters (PyTorch's names, layer k = 0 .. L-1, `_reverse` appended for
    the reverse direction): weight_ih_l{k} (H, I) for k = 0, (H, D*H) above;
    weight_hh_l{k} (H, H); bias_ih_l{k}, bias_hh_l{k} (H,).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        bidirectional: bool = False,
        dtype: DTypeLike = np.float32,
        seed: int | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            bidirectional,
            dtype,
            seed,
            dropout,
            nonlinearity=nonlinearity,
        )

    def _configure_cell(self, nonlinearity="tanh"):
        self.nonlinearity = nonlinearity
        self._cell = rnn_cell_kind(nonlinearity)

    def _cell_config(self):
        return {"nonlinearity": self.nonlinearity}


class LSTM(_RNNBase):
    """LSTM, gate order i, f, g, o, as PyTorch's nn.LSTM; with
    peephole=True, i and f also see c(t-1) and o sees c(t) through
    `weight_peep_l{k}` (3H: i, f, o). With proj_size P (0 < P < H, as
    PyTorch's), h = (o * tanh(c)) W_hr^T through `weight_hr_l{k}` (P, H):
    h0, h_n and y have P features, W_hh is (4H, P).

    input_size I, hidden_size H: the features of x and of h. num_layers L:
    layers stacked, each fed the previous one's output. bias: with the biases
    b_ih and b_hh. batch_first: x and y are (B, T, features) instead of
    (T, B, features); states stay (L*D, B, H), as in PyTorch. bidirectional:
    a reverse direction too (D = 2), its outputs concatenated after the
    forward one's. dtype: float32 or float64, of the parameters and results
    (inputs are converted to it). seed: of the initialisation, every
    parameter U(-1/sqrt(H), 1/sqrt(H)) as PyTorch's (None: fresh entropy),
    and of the dropout masks (see seed_dropout). dropout: the probability of
    zeroing each output of every layer but the last, in `forward` (training)
    only, the kept ones scaled by 1 / (1 - dropout); calling the layer never
    drops (PyTorch's eval mode).
    peephole: add the peephole connections (no PyTorch equivalent).
    proj_size: 0 for none, else P as above.

    Parameters (PyTorch's names, layer k = 0 .. L-1, `_reverse` appended for
    the reverse direction): weight_ih_l{k} (4H, I) for k = 0, (4H, D*P or
    D*H) above; weight_hh_l{k} (4H, P or H); bias_ih_l{k}, bias_hh_l{k}
    (4H,); weight_peep_l{k} (3H,) with peephole; weight_hr_l{k} (P, H) with
    proj_size. Calling returns (y, (h_n, c_n)); c_n always has H features.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        bidirectional: bool = False,
        peephole: bool = False,
        proj_size: int = 0,
        dtype: DTypeLike = np.float32,
        seed: int | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            bidirectional,
            dtype,
            seed,
            dropout,
            peephole=peephole,
            proj_size=proj_size,
        )

    def _configure_cell(self, peephole=False, proj_size=0):
        proj_size = positive_int(proj_size, "proj_size", minimum=0)
        if proj_size >= self.hidden_size:
            raise ValueError(
                f"proj_size: expected a value below hidden_size "
                f"{self.hidden_size} (as PyTorch), got {proj_size}"
            )
        self.peephole = bool(peephole)
        self.proj_size = proj_size
        self._cell = _core.LSTM

    def _cell_config(self):
        config = {"peephole": self.peephole}
        if self.proj_size:
            config["proj_size"] = self.proj_size
        return config


class GRU(_RNNBase):
    """GRU, gate order r, z, n, as PyTorch's nn.GRU. linear_before_reset=True
    is PyTorch's form, n = tanh(W_in x + b_in + r * (W_hn h + b_hn)); False
    is the original, n = tanh(W_in x + b_in + W_hn (r * h) + b_hn) (ONNX's
    default; no PyTorch equivalent).

    input_size I, hidden_size H: the features of x and of h. num_layers L:
    layers stacked, each fed the previous one's output. bias: with the biases
    b_ih and b_hh. batch_first: x and y are (B, T, features) instead of
    (T, B, features); states stay (L*D, B, H), as in PyTorch. bidirectional:
    a reverse direction too (D = 2), its outputs concatenated after the
    forward one's. dtype: float32 or float64, of the parameters and results
    (inputs are converted to it). seed: of the initialisation, every
    parameter U(-1/sqrt(H), 1/sqrt(H)) as PyTorch's (None: fresh entropy),
    and of the dropout masks (see seed_dropout). dropout: the probability of
    zeroing each output of every layer but the last, in `forward` (training)
    only, the kept ones scaled by 1 / (1 - dropout); calling the layer never
    drops (PyTorch's eval mode).

    Parameters (PyTorch's names, layer k = 0 .. L-1, `_reverse` appended for
    the reverse direction): weight_ih_l{k} (3H, I) for k = 0, (3H, D*H)
    above; weight_hh_l{k} (3H, H); bias_ih_l{k}, bias_hh_l{k} (3H,).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        bidirectional: bool = False,
        linear_before_reset: bool = True,
        dtype: DTypeLike = np.float32,
        seed: int | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            bidirectional,
            dtype,
            seed,
            dropout,
            linear_before_reset=linear_before_reset,
        )

    def _configure_cell(self, linear_before_reset=True):
        self.linear_before_reset = bool(linear_before_reset)
        self._cell = _core.GRU

    def _cell_config(self):
        return {"linear_before_reset": self.linear_before_reset}
