"""One step of a cell: RNNCell, LSTMCell, GRUCell, as PyTorch's cells, with
their parameter names weight_ih, weight_hh, bias_ih, bias_hh (+ weight_peep)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from . import _core
from ._validate import as_dtype, as_one_state, as_real_array, as_state, positive_int
from .layers import GATES, rnn_cell_kind, run_direction
from .module import Module, Trainable

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, DTypeLike


class _CellBase(Trainable, Module):
    """What RNNCell, LSTMCell and GRUCell share: one step over a batch, and
    its training forward / backward."""

    peephole = False  # options of some cells (see layers._RNNBase)
    linear_before_reset = True

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        dtype: DTypeLike = np.float32,
        seed: int | None = None,
        **options: Any,
    ) -> None:
        self._configure(
            input_size=input_size, hidden_size=hidden_size, bias=bias, dtype=dtype, **options
        )
        self._init_params(seed)

    def _configure(self, input_size, hidden_size, bias=True, dtype="float32", **options):
        self.input_size = positive_int(input_size, "input_size")
        self.hidden_size = positive_int(hidden_size, "hidden_size")
        self.bias = bool(bias)
        self.dtype = as_dtype(dtype)
        self._configure_cell(**options)

    def _param_shapes(self):
        G, H = GATES[self._cell], self.hidden_size
        shapes = {"weight_ih": (G * H, self.input_size), "weight_hh": (G * H, H)}
        if self.bias:
            shapes.update(bias_ih=(G * H,), bias_hh=(G * H,))
        if self.peephole:
            shapes["weight_peep"] = (3 * H,)
        return shapes

    def config(self) -> dict[str, Any]:
        return dict(
            input_size=self.input_size,
            hidden_size=self.hidden_size,
            bias=self.bias,
            dtype=self.dtype.name,
            **self._cell_config(),
        )

    def __repr__(self):
        extra = "".join(f", {k}={v!r}" for k, v in self._cell_config().items())
        return (
            f"{type(self).__name__}({self.input_size}, {self.hidden_size}, bias={self.bias}"
            f"{extra}, dtype={self.dtype.name})"
        )

    def _step(self, x, h, c, trace=None):
        """x (B, I) or (I,); h, c (B, H) / (H,) or None -> new (h, c). With
        `trace` (a CellCache) also keeps what backward needs."""
        x = as_real_array(x, "x", self.dtype)
        if x.ndim not in (1, 2) or x.shape[-1] != self.input_size:
            raise ValueError(
                f"x: expected shape (B, {self.input_size}) or ({self.input_size},), got {x.shape}"
            )
        unbatched = x.ndim == 1
        B, H = (1 if unbatched else x.shape[0]), self.hidden_size
        shape = (H,) if unbatched else (B, H)
        lstm = self._cell == _core.LSTM
        h0 = (
            None
            if h is None
            else as_state(
                h, "state (h)" if not lstm else "state[0] (h)", shape, self.dtype
            ).reshape(B, H)
        )
        c0 = None if c is None else as_state(c, "state[1] (c)", shape, self.dtype).reshape(B, H)
        h_n = np.empty((B, H), self.dtype)
        c_n = np.empty((B, H), self.dtype) if lstm else None
        y = np.empty((1, B, H), self.dtype)
        cache = None
        if trace is not None:
            cache = np.empty(_core.cache_size(self._cell, H, 1, B), self.dtype)
            trace.x, trace.array, trace.B, trace.unbatched = (
                x.reshape(1, B, self.input_size),
                cache,
                B,
                unbatched,
            )
        run_direction(
            self._cell,
            self._params,
            "",
            x.reshape(1, B, self.input_size),
            h0,
            c0,
            None,
            False,
            y,
            h_n,
            c_n,
            self.peephole,
            self.linear_before_reset,
            cache,
            module=self,
        )
        if unbatched:
            return h_n[0], (None if c_n is None else c_n[0])
        return h_n, c_n

    # ---------------------------------------------------------------- training

    def _state_parts(self, state, name) -> tuple[Any, Any]:
        """(h, c) of a state given as h, or (h, c) for LSTMCell."""
        if self._cell != _core.LSTM or state is None:
            return state, None
        if not isinstance(state, (tuple, list)) or len(state) != 2:
            raise TypeError(f"{name}: expected a tuple (h, c), got {type(state).__name__}")
        return state[0], state[1]

    def forward(
        self,
        x: ArrayLike,
        state: ArrayLike | tuple[ArrayLike | None, ArrayLike | None] | None = None,
    ) -> tuple[Any, CellCache]:
        """Training step: returns (new state, cache); x and state as for
        calling the cell, the new state h' or for LSTMCell (h', c') as from
        calling it, `cache` opaque, for `backward` (it keeps a reference to x)."""
        cache = CellCache(self)
        h_n, c_n = self._step(x, *self._state_parts(state, "state"), trace=cache)
        return ((h_n, c_n) if self._cell == _core.LSTM else h_n), cache

    def backward(
        self, dstate: ArrayLike | tuple[ArrayLike | None, ArrayLike | None] | None, cache: CellCache
    ) -> tuple[np.ndarray, Any]:
        """Backward of one `forward` step. dstate: gradient w.r.t. the new
        state, h' or for LSTMCell (h', c') (either may be None; None alone
        for zeros), shaped as the state. cache: what this cell's `forward`
        returned (TypeError for another's). Adds the parameter gradients into
        `self.grads`; returns (dx, dstate0), the gradients w.r.t. x and the
        state the step started from (h or (h, c)), shaped as they were (also
        when the step started from zeros)."""
        if not isinstance(cache, CellCache) or cache.model is not self:
            raise TypeError("cache: expected the cache returned by this cell's forward")
        B, H, lstm = cache.B, self.hidden_size, self._cell == _core.LSTM
        shape = (H,) if cache.unbatched else (B, H)
        dh, dc = self._state_parts(dstate, "dstate")
        if dh is not None:
            dh = (
                as_state(dh, "dstate (dh)", shape, self.dtype)
                if lstm
                else as_one_state(
                    dh,
                    "dstate (dh)",
                    shape,
                    self.dtype,
                    f"dstate: expected one array dh for {type(self).__name__}, got a pair",
                )
            )
            dh = dh.reshape(B, H)
        dc = None if dc is None else as_state(dc, "dstate[1] (dc)", shape, self.dtype).reshape(B, H)
        dx = np.empty(cache.x.shape, self.dtype)
        dh0 = np.empty((B, H), self.dtype)
        dc0 = np.empty((B, H), self.dtype) if lstm else None
        params, grads = self._params, self.grads
        _core.layer_backward(
            cell=self._cell,
            peephole=self.peephole,
            linear_before_reset=self.linear_before_reset,
            w_ih=params["weight_ih"],
            w_hh=params["weight_hh"],
            w_peep=params.get("weight_peep"),
            x=cache.x,
            lengths=None,
            reverse=False,
            cache=cache.array,
            dy=None,
            dh_n=dh,
            dc_n=dc,
            dx=dx,
            dx_accumulate=False,
            dh0=dh0,
            dc0=dc0,
            gw_ih=grads["weight_ih"],
            gw_hh=grads["weight_hh"],
            gb_ih=grads.get("bias_ih"),
            gb_hh=grads.get("bias_hh"),
            gw_peep=grads.get("weight_peep"),
        )
        if cache.unbatched:
            dx, dh0, dc0 = dx[0, 0], dh0[0], (None if dc0 is None else dc0[0])
        else:
            dx = dx[0]
        return dx, ((dh0, dc0) if lstm else dh0)


class CellCache:
    """What a cell's training forward keeps for backward. Opaque to users:
    hand it to the cell's `backward`."""

    __slots__ = ("model", "x", "array", "B", "unbatched")
    x: np.ndarray
    array: np.ndarray
    B: int
    unbatched: bool

    def __init__(self, model):
        self.model = model


class RNNCell(_CellBase):
    """One Elman RNN step, h' = tanh or relu(W_ih x + b_ih + W_hh h + b_hh),
    as PyTorch's nn.RNNCell.

    input_size I, hidden_size H: the features of x and of h. bias: with the
    biases b_ih and b_hh. dtype: float32 or float64, of the parameters and
    results (inputs are converted to it). seed: of the initialisation, every
    parameter U(-1/sqrt(H), 1/sqrt(H)) as PyTorch's (None: fresh entropy).
    nonlinearity: 'tanh' or 'relu'.

    Parameters: weight_ih (H, I), weight_hh (H, H), bias_ih, bias_hh (H,).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: str = "tanh",
        dtype: DTypeLike = np.float32,
        seed: int | None = None,
    ) -> None:
        super().__init__(input_size, hidden_size, bias, dtype, seed, nonlinearity=nonlinearity)

    def _configure_cell(self, nonlinearity="tanh"):
        self.nonlinearity = nonlinearity
        self._cell = rnn_cell_kind(nonlinearity)

    def _cell_config(self):
        return {"nonlinearity": self.nonlinearity}

    def __call__(self, x: ArrayLike, state: ArrayLike | None = None) -> np.ndarray:
        """One step: x (B, I) or unbatched (I,), state h (B, H) or (H,), or
        None for zeros -> h' (B, H) or (H,), a new array."""
        return self._step(x, state, None)[0]


class LSTMCell(_CellBase):
    """One LSTM step, gates i, f, g, o, as PyTorch's nn.LSTMCell; optional
    peepholes (weight_peep: i, f, o, as in fr.LSTM).

    input_size I, hidden_size H: the features of x and of h. bias: with the
    biases b_ih and b_hh. dtype: float32 or float64, of the parameters and
    results (inputs are converted to it). seed: of the initialisation, every
    parameter U(-1/sqrt(H), 1/sqrt(H)) as PyTorch's (None: fresh entropy).
    peephole: add the peephole connections (no PyTorch equivalent).

    Parameters: weight_ih (4H, I), weight_hh (4H, H), bias_ih, bias_hh (4H,),
    weight_peep (3H,) with peephole.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        peephole: bool = False,
        dtype: DTypeLike = np.float32,
        seed: int | None = None,
    ) -> None:
        super().__init__(input_size, hidden_size, bias, dtype, seed, peephole=peephole)

    def _configure_cell(self, peephole=False):
        self.peephole = bool(peephole)
        self._cell = _core.LSTM

    def _cell_config(self):
        return {"peephole": self.peephole}

    def __call__(
        self, x: ArrayLike, state: tuple[ArrayLike | None, ArrayLike | None] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """One step: x (B, I) or unbatched (I,), state (h, c) each (B, H) or
        (H,) (either may be None for zeros), or None for zeros -> (h', c'),
        new arrays shaped as h."""
        if state is None:
            return self._step(x, None, None)
        if not isinstance(state, (tuple, list)) or len(state) != 2:
            raise TypeError(f"state: expected a tuple (h, c), got {type(state).__name__}")
        return self._step(x, state[0], state[1])


class GRUCell(_CellBase):
    """One GRU step, gates r, z, n, as PyTorch's nn.GRUCell
    (linear_before_reset as in fr.GRU: True is PyTorch's form).

    input_size I, hidden_size H: the features of x and of h. bias: with the
    biases b_ih and b_hh. dtype: float32 or float64, of the parameters and
    results (inputs are converted to it). seed: of the initialisation, every
    parameter U(-1/sqrt(H), 1/sqrt(H)) as PyTorch's (None: fresh entropy).
    linear_before_reset: see fr.GRU (False has no PyTorch equivalent).

    Parameters: weight_ih (3H, I), weight_hh (3H, H), bias_ih, bias_hh (3H,).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        linear_before_reset: bool = True,
        dtype: DTypeLike = np.float32,
        seed: int | None = None,
    ) -> None:
        super().__init__(
            input_size, hidden_size, bias, dtype, seed, linear_before_reset=linear_before_reset
        )

    def _configure_cell(self, linear_before_reset=True):
        self.linear_before_reset = bool(linear_before_reset)
        self._cell = _core.GRU

    def _cell_config(self):
        return {"linear_before_reset": self.linear_before_reset}

    def __call__(self, x: ArrayLike, state: ArrayLike | None = None) -> np.ndarray:
        """One step: x (B, I) or unbatched (I,), state h (B, H) or (H,), or
        None for zeros -> h' (B, H) or (H,), a new array."""
        return self._step(x, state, None)[0]
