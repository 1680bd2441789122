"""Type stub of fastrnn._core, the compiled binding (fastrnn/_core.pyx and its
_core_*.pxi parts). Arrays handed to C are checked there: exact dtype, shape
and C-contiguity, as each docstring in the .pyx / .pxi files says."""

from typing import Any, Callable, Optional, Sequence, Tuple, Union

import numpy as np
from numpy.typing import DTypeLike, NDArray

_Array = NDArray[Any]  # any dtype: C checks the exact one

# the cell kinds (csrc/fastrnn.h: fr_cell)
RNN_TANH: int
RNN_RELU: int
LSTM: int
GRU: int
INT_MAX: int

# --- shared (_core.pyx)
def aligned_empty(n: int, dtype: DTypeLike) -> _Array: ...

# --- process-wide settings (_core_runtime.pxi)
def max_threads() -> int: ...
def simd_level() -> str: ...
def set_simd_level(name: str) -> bool: ...

# --- a layer-direction over a sequence (_core_layers.pxi)
def pack(w: _Array) -> _Array: ...
def cache_size(cell: int, H: int, T: int, B: int, proj_size: int = 0) -> int: ...
def layer_forward(
    cell: int,
    peephole: bool,
    linear_before_reset: bool,
    w_ih: _Array,
    w_hh: _Array,
    b_ih: Optional[_Array],
    b_hh: Optional[_Array],
    w_peep: Optional[_Array],
    x: _Array,
    h0: Optional[_Array],
    c0: Optional[_Array],
    lengths: Optional[_Array],
    reverse: bool,
    y: _Array,
    h_n: _Array,
    c_n: Optional[_Array],
    cache: Optional[_Array] = None,
    packed: Optional[_Array] = None,
    num_threads: int = 1,
    packed_ih: Optional[_Array] = None,
    w_hr: Optional[_Array] = None,
    packed_hr: Optional[_Array] = None,
) -> None: ...
def layer_backward(
    cell: int,
    peephole: bool,
    linear_before_reset: bool,
    w_ih: _Array,
    w_hh: _Array,
    w_peep: Optional[_Array],
    x: _Array,
    lengths: Optional[_Array],
    reverse: bool,
    cache: _Array,
    dy: Optional[_Array],
    dh_n: Optional[_Array],
    dc_n: Optional[_Array],
    dx: Optional[_Array],
    dx_accumulate: bool,
    dh0: Optional[_Array],
    dc0: Optional[_Array],
    gw_ih: Optional[_Array],
    gw_hh: Optional[_Array],
    gb_ih: Optional[_Array],
    gb_hh: Optional[_Array],
    gw_peep: Optional[_Array],
    work: Optional[_Array] = None,
    num_threads: int = 1,
    w_hr: Optional[_Array] = None,
    gw_hr: Optional[_Array] = None,
) -> None: ...

# --- optimizer updates, in place (_core_optim.pxi)
def sgd_update(
    p: _Array,
    g: _Array,
    buf: Optional[_Array],
    lr: float,
    momentum: float,
    dampening: float,
    weight_decay: float,
    nesterov: bool,
    first_step: bool,
) -> None: ...
def adam_update(
    p: _Array,
    g: _Array,
    exp_avg: _Array,
    exp_avg_sq: _Array,
    max_exp_avg_sq: Optional[_Array],
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    decoupled_weight_decay: bool,
    step: int,
) -> None: ...
def adagrad_update(
    p: _Array,
    g: _Array,
    state_sum: _Array,
    lr: float,
    lr_decay: float,
    weight_decay: float,
    eps: float,
    step: int,
) -> None: ...
def sum_squares(x: _Array) -> float: ...

# --- streams (_core_stream.pxi)
# per layer: (w_ih, w_hh, b_ih, b_hh, w_peep, packed_ih, packed_hh, w_hr, packed_hr)
_LayerWeights = Tuple[
    _Array,
    _Array,
    Optional[_Array],
    Optional[_Array],
    Optional[_Array],
    Optional[_Array],
    Optional[_Array],
    Optional[_Array],
    Optional[_Array],
]

class Stream:
    @property
    def dtype(self) -> np.dtype[Any]: ...
    @property
    def num_layers(self) -> int: ...
    @property
    def batch_size(self) -> int: ...
    @property
    def input_size(self) -> int: ...
    @property
    def hidden_size(self) -> int: ...
    @property
    def proj_size(self) -> int: ...
    @property
    def output_size(self) -> int: ...
    def __init__(
        self,
        cell: int,
        peephole: bool,
        linear_before_reset: bool,
        num_layers: int,
        batch_size: int,
        input_size: int,
        hidden_size: int,
        dtype: DTypeLike,
        source: Callable[[], Sequence[_LayerWeights]],
        version: Optional[_Array] = None,
        proj_size: int = 0,
    ) -> None: ...
    def step(self, x_t: Any, out: Optional[_Array] = None) -> _Array: ...
    def run(self, x: Any, out: Optional[_Array] = None) -> _Array: ...
    @property
    def state(self) -> Union[_Array, Tuple[_Array, _Array]]: ...
    @state.setter
    def state(self, value: Any) -> None: ...
    def reset(self, rows: Any = None) -> None: ...

# --- benchmark timers, timed in C (_core_timing.pxi)
def time_stream_steps(s: Stream, x_t: _Array, reps: int) -> float: ...
def time_product(w: _Array, packed: Optional[_Array], M: int, reps: int) -> float: ...
def fma_peak(seconds: float = 0.2) -> float: ...
