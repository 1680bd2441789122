"""fastrnn against the float64 NumPy reference (tests/reference.py).

Every kind (RNN tanh/relu, LSTM with and without peepholes, GRU in both
forms), float32 and float64, layers (stacked, bidirectional, batch_first,
no bias, packed lengths, initial states, unbatched input) and cells.
"""

import itertools
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastrnn  # noqa: F401  (collection fails loudly without it)
from helpers import (
    DTYPE_IDS,
    DTYPES,
    KIND_IDS,
    KINDS,
    assert_close,
    random_lengths,
    random_params,
    random_state,
    split_state,
)
from reference import cell_forward, layer_forward


def check_layer(
    kind,
    dtype,
    rng,
    I,
    H,
    T,
    B,
    num_layers=1,
    bidirectional=False,
    batch_first=False,
    bias=True,
    use_state=False,
    lengths=None,
    weight_scale=None,
    unbatched=False,
):
    """Build a layer, run it and the reference on the same weights and input,
    and compare output and final states."""
    layer = kind.layer(
        I,
        H,
        num_layers=num_layers,
        bias=bias,
        batch_first=batch_first,
        bidirectional=bidirectional,
        dtype=dtype,
        seed=int(rng.integers(2**31)),
    )
    if weight_scale is not None:
        shapes = kind.layer_shapes(I, H, num_layers, bidirectional, bias)
        layer.load_state_dict(random_params(shapes, rng, weight_scale))
    params = layer.state_dict()
    for name, value in params.items():
        assert value.dtype == np.dtype(dtype), name

    D = 2 if bidirectional else 1
    if unbatched:
        x = rng.standard_normal((T, I)).astype(dtype)
        state_shape = (num_layers * D, H)
    else:
        x = rng.standard_normal((B, T, I) if batch_first else (T, B, I)).astype(dtype)
        state_shape = (num_layers * D, B, H)
    state = random_state(rng, kind.mode, state_shape, dtype) if use_state else None

    x_before = x.copy()
    state_before = None if state is None else [s.copy() for s in split_state(kind.mode, state)]

    y, state_n = layer(x, state, lengths=lengths)
    y_ref, state_ref = layer_forward(
        kind.mode, params, x, state, lengths, batch_first=batch_first, **kind.ref_kwargs
    )

    assert isinstance(y, np.ndarray) and y.dtype == np.dtype(dtype)
    assert_close(y, y_ref, dtype, "y")
    for got, want, name in zip(
        split_state(kind.mode, state_n), split_state(kind.mode, state_ref), ("h_n", "c_n")
    ):
        assert isinstance(got, np.ndarray) and got.dtype == np.dtype(dtype), name
        assert_close(got, want, dtype, name)

    # the caller's arrays are left alone
    np.testing.assert_array_equal(x, x_before)
    if state is not None:
        for s, s0 in zip(split_state(kind.mode, state), state_before):
            np.testing.assert_array_equal(s, s0)
    return y, state_n


# --------------------------------------------------------------------------
# layers: a fixed grid of option combinations
# --------------------------------------------------------------------------

LAYER_CONFIGS = {
    # name: (num_layers, bidirectional, batch_first, bias, use_state, lengths)
    "plain": (1, False, False, True, False, None),
    "state": (1, False, False, True, True, None),
    "nobias_bf": (1, False, True, False, False, None),
    "bi": (1, True, False, True, True, None),
    "stack2_len0": (2, False, False, True, True, [4, 0, 7, 1, 7]),
    "stack2_bi_len": (2, True, False, True, True, [3, 7, 0, 5, 7]),
    "stack3_bi_bf_nobias_len": (3, True, True, False, True, [2, 7, 7, 0, 6]),
    "full_lengths": (2, True, True, True, True, [7, 7, 7, 7, 7]),
    "all_zero_lengths": (1, True, False, True, True, [0, 0, 0, 0, 0]),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("config", list(LAYER_CONFIGS), ids=list(LAYER_CONFIGS))
@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_layer(kind, config, dtype):
    L, bi, bf, bias, use_state, lengths = LAYER_CONFIGS[config]
    rng = np.random.default_rng(zlib.crc32(f"{kind.name}/{config}".encode()))
    check_layer(
        kind,
        dtype,
        rng,
        I=3,
        H=6,
        T=7,
        B=5,
        num_layers=L,
        bidirectional=bi,
        batch_first=bf,
        bias=bias,
        use_state=use_state,
        lengths=lengths,
        weight_scale=0.7,
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_layer_default_init(kind, dtype):
    """The seeded initial weights, unchanged, through a 2-layer bidirectional
    layer with unsorted lengths."""
    rng = np.random.default_rng(7)
    check_layer(
        kind,
        dtype,
        rng,
        I=4,
        H=5,
        T=6,
        B=4,
        num_layers=2,
        bidirectional=True,
        use_state=True,
        lengths=[6, 2, 0, 4],
    )


@pytest.mark.parametrize("H", [1, 3, 7, 8, 9, 16, 17, 33, 64])
@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_hidden_sizes(kind, H):
    """Sizes around SIMD widths and block edges (tails of vector loops)."""
    rng = np.random.default_rng(H)
    for dtype in DTYPES:
        check_layer(
            kind,
            dtype,
            rng,
            I=H + 2,
            H=H,
            T=5,
            B=3,
            bidirectional=True,
            use_state=True,
            lengths=[5, 3, 1],
            weight_scale=1.0 / np.sqrt(H),
        )


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_long_sequence_large_batch(kind):
    rng = np.random.default_rng(3)
    lengths = random_lengths(rng, 32, 60)
    for dtype in DTYPES:
        check_layer(
            kind,
            dtype,
            rng,
            I=20,
            H=24,
            T=60,
            B=32,
            num_layers=2,
            bidirectional=True,
            use_state=True,
            lengths=lengths,
        )


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_single_step_single_row(kind):
    rng = np.random.default_rng(11)
    for dtype in DTYPES:
        for lengths in (None, [1], [0]):
            check_layer(
                kind,
                dtype,
                rng,
                I=2,
                H=3,
                T=1,
                B=1,
                num_layers=2,
                bidirectional=True,
                use_state=True,
                lengths=lengths,
                weight_scale=0.8,
            )


# --------------------------------------------------------------------------
# layers: random shapes and options
# --------------------------------------------------------------------------


@st.composite
def layer_cases(draw):
    T = draw(st.integers(1, 8))
    B = draw(st.integers(1, 5))
    use_lengths = draw(st.booleans())
    lengths = None
    if use_lengths:
        lengths = draw(st.lists(st.integers(0, T), min_size=B, max_size=B))
    return dict(
        kind=draw(st.sampled_from(KINDS)),
        dtype=draw(st.sampled_from(DTYPES)),
        I=draw(st.integers(1, 9)),
        H=draw(st.integers(1, 12)),
        T=T,
        B=B,
        num_layers=draw(st.integers(1, 3)),
        bidirectional=draw(st.booleans()),
        batch_first=draw(st.booleans()),
        bias=draw(st.booleans()),
        use_state=draw(st.booleans()),
        lengths=lengths,
        weight_scale=draw(st.sampled_from([None, 0.3, 0.6])),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=layer_cases())
def test_layer_random(case):
    case = dict(case)
    rng = np.random.default_rng(case.pop("seed"))
    check_layer(case.pop("kind"), case.pop("dtype"), rng, **case)


# --------------------------------------------------------------------------
# lengths
# --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_zero_length_rows(kind, dtype):
    """A row of length 0: zero output, final state equal to its initial state
    (in every layer and direction), other rows unaffected."""
    rng = np.random.default_rng(5)
    I, H, T, B, L = 3, 4, 5, 4, 2
    layer = kind.layer(I, H, num_layers=L, bidirectional=True, dtype=dtype, seed=1)
    x = rng.standard_normal((T, B, I)).astype(dtype)
    state = random_state(rng, kind.mode, (2 * L, B, H), dtype)
    lengths = [5, 0, 3, 0]
    y, state_n = layer(x, state, lengths=lengths)
    assert np.all(y[:, 1] == 0) and np.all(y[:, 3] == 0)
    for got, s0 in zip(split_state(kind.mode, state_n), split_state(kind.mode, state)):
        np.testing.assert_array_equal(got[:, 1], s0[:, 1])
        np.testing.assert_array_equal(got[:, 3], s0[:, 3])
    # rows 0 and 2 are what they are on their own
    state02_in = tuple(s[:, [0, 2]] for s in state) if kind.mode == "lstm" else state[:, [0, 2]]
    y02, state02 = layer(x[:, [0, 2]], state02_in, lengths=[5, 3])
    assert_close(y[:, [0, 2]], y02, dtype, "y rows 0, 2")
    for got, want in zip(split_state(kind.mode, state_n), split_state(kind.mode, state02)):
        assert_close(got[:, [0, 2]], want, dtype, "state rows 0, 2")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_outputs_zero_past_length(kind, dtype):
    rng = np.random.default_rng(6)
    layer = kind.layer(3, 4, num_layers=2, bidirectional=True, dtype=dtype, seed=2)
    x = rng.standard_normal((6, 3, 3)).astype(dtype)
    lengths = [2, 6, 4]
    y, _ = layer(x, lengths=lengths)
    for b, n in enumerate(lengths):
        assert np.all(y[n:, b] == 0), f"row {b} not zero past length {n}"
        assert np.any(y[:n, b] != 0), f"row {b} all zero before length {n}"


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_full_lengths_equal_no_lengths(kind, dtype):
    rng = np.random.default_rng(8)
    T, B = 6, 3
    layer = kind.layer(
        3, 5, num_layers=2, bidirectional=True, batch_first=True, dtype=dtype, seed=3
    )
    x = rng.standard_normal((B, T, 3)).astype(dtype)
    state = random_state(rng, kind.mode, (4, B, 5), dtype)
    y0, s0 = layer(x, state)
    y1, s1 = layer(x, state, lengths=[T] * B)
    assert_close(y1, y0, dtype, "y")
    for a, b in zip(split_state(kind.mode, s1), split_state(kind.mode, s0)):
        assert_close(a, b, dtype, "state")


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_lengths_row_order_does_not_matter(kind):
    """Permuting the rows (and their lengths) permutes the results."""
    rng = np.random.default_rng(9)
    dtype = np.float64
    T, B, H = 7, 6, 4
    layer = kind.layer(3, H, num_layers=2, bidirectional=True, dtype=dtype, seed=4)
    x = rng.standard_normal((T, B, 3))
    state = random_state(rng, kind.mode, (4, B, H), dtype)
    lengths = np.array([3, 7, 0, 5, 1, 7])
    perm = rng.permutation(B)
    y, s = layer(x, state, lengths=lengths)
    pstate = tuple(a[:, perm] for a in state) if kind.mode == "lstm" else state[:, perm]
    yp, sp = layer(x[:, perm], pstate, lengths=lengths[perm])
    assert_close(yp, y[:, perm], dtype, "y")
    for a, b in zip(split_state(kind.mode, sp), split_state(kind.mode, s)):
        assert_close(a, b[:, perm], dtype, "state")


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_lengths_container_types(kind):
    """lengths as list, tuple, int32/int64/uint8 array give the same result."""
    rng = np.random.default_rng(10)
    layer = kind.layer(2, 3, bidirectional=True, dtype=np.float64, seed=5)
    x = rng.standard_normal((5, 3, 2))
    ref_y, ref_s = layer(x, lengths=[5, 2, 0])
    for lengths in (
        (5, 2, 0),
        np.array([5, 2, 0], np.int32),
        np.array([5, 2, 0], np.int64),
        np.array([5, 2, 0], np.uint8),
        [np.int64(5), np.int32(2), 0],
    ):
        y, s = layer(x, lengths=lengths)
        np.testing.assert_array_equal(y, ref_y)
        for a, b in zip(split_state(kind.mode, s), split_state(kind.mode, ref_s)):
            np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------
# unbatched input
# --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_unbatched(kind, dtype):
    rng = np.random.default_rng(12)
    for batch_first in (False, True):
        for use_state in (False, True):
            y, s = check_layer(
                kind,
                dtype,
                rng,
                I=3,
                H=4,
                T=6,
                B=None,
                num_layers=2,
                bidirectional=True,
                batch_first=batch_first,
                use_state=use_state,
                unbatched=True,
                weight_scale=0.6,
            )
            assert y.shape == (6, 8)
            for part in split_state(kind.mode, s):
                assert part.shape == (4, 4)


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_unbatched_equals_batch_of_one(kind):
    rng = np.random.default_rng(13)
    dtype = np.float64
    layer = kind.layer(3, 4, num_layers=2, bidirectional=True, dtype=dtype, seed=6)
    x = rng.standard_normal((5, 3))
    state = random_state(rng, kind.mode, (4, 4), dtype)
    y, s = layer(x, state)
    bstate = tuple(a[:, None] for a in state) if kind.mode == "lstm" else state[:, None]
    yb, sb = layer(x[:, None], bstate)
    assert_close(y, yb[:, 0], dtype, "y")
    for a, b in zip(split_state(kind.mode, s), split_state(kind.mode, sb)):
        assert_close(a, b[:, 0], dtype, "state")


# --------------------------------------------------------------------------
# shapes and keyword use
# --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_output_shapes(kind):
    I, H, T, B = 3, 4, 5, 2
    for L in (1, 3):
        for bi in (False, True):
            D = 2 if bi else 1
            for bf in (False, True):
                layer = kind.layer(I, H, num_layers=L, bidirectional=bi, batch_first=bf, seed=0)
                x = np.zeros((B, T, I) if bf else (T, B, I), np.float32)
                y, s = layer(x)
                assert y.shape == ((B, T, D * H) if bf else (T, B, D * H))
                for part in split_state(kind.mode, s):
                    assert part.shape == (L * D, B, H)


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_state_keyword_and_positional(kind):
    rng = np.random.default_rng(14)
    layer = kind.layer(2, 3, seed=7, dtype=np.float64)
    x = rng.standard_normal((4, 2, 2))
    state = random_state(rng, kind.mode, (1, 2, 3))
    y1, s1 = layer(x, state)
    y2, s2 = layer(x, state=state)
    y3, s3 = layer(x=x, state=state, lengths=None)
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(y1, y3)
    # no state is zero state
    zero = random_state(rng, kind.mode, (1, 2, 3))
    zero = tuple(np.zeros_like(a) for a in zero) if kind.mode == "lstm" else np.zeros_like(zero)
    yz, _ = layer(x, zero)
    yn, _ = layer(x)
    np.testing.assert_array_equal(yz, yn)


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_calls_are_repeatable(kind):
    """Same input twice gives bit-identical output (no state kept between
    calls, no uninitialised workspace read)."""
    rng = np.random.default_rng(15)
    layer = kind.layer(3, 5, num_layers=2, bidirectional=True, seed=8)
    x = rng.standard_normal((6, 4, 3)).astype(np.float32)
    y1, s1 = layer(x, lengths=[6, 1, 0, 3])
    layer(rng.standard_normal((9, 7, 3)).astype(np.float32))  # other shapes between
    y2, s2 = layer(x, lengths=[6, 1, 0, 3])
    np.testing.assert_array_equal(y1, y2)
    for a, b in zip(split_state(kind.mode, s1), split_state(kind.mode, s2)):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------
# cells
# --------------------------------------------------------------------------


def check_cell(kind, dtype, rng, I, H, batch, bias=True, use_state=True, weight_scale=None):
    cell = kind.cell(I, H, bias=bias, dtype=dtype, seed=int(rng.integers(2**31)))
    if weight_scale is not None:
        cell.load_state_dict(random_params(kind.cell_shapes(I, H, bias), rng, weight_scale))
    params = cell.state_dict()
    assert list(params) == list(kind.cell_shapes(I, H, bias))
    lead = () if batch is None else (batch,)
    x = rng.standard_normal(lead + (I,)).astype(dtype)
    state = random_state(rng, kind.mode, lead + (H,), dtype) if use_state else None
    out = cell(x, state)
    ref = cell_forward(kind.mode, params, x, state, **kind.ref_kwargs)
    for got, want, name in zip(
        split_state(kind.mode, out), split_state(kind.mode, ref), ("h", "c")
    ):
        assert isinstance(got, np.ndarray) and got.dtype == np.dtype(dtype), name
        assert got.shape == lead + (H,), name
        assert_close(got, want, dtype, name)
    return cell, x, state, out


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("batch", [None, 1, 4], ids=["I", "1xI", "BxI"])
@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_cell(kind, batch, dtype):
    rng = np.random.default_rng(16)
    for bias in (True, False):
        for use_state in (True, False):
            check_cell(
                kind,
                dtype,
                rng,
                I=5,
                H=7,
                batch=batch,
                bias=bias,
                use_state=use_state,
                weight_scale=0.8,
            )
    check_cell(kind, dtype, rng, I=5, H=7, batch=batch)  # seeded init


@settings(max_examples=60, deadline=None)
@given(
    kind=st.sampled_from(KINDS),
    dtype=st.sampled_from(DTYPES),
    I=st.integers(1, 10),
    H=st.integers(1, 20),
    batch=st.one_of(st.none(), st.integers(1, 6)),
    bias=st.booleans(),
    use_state=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_cell_random(kind, dtype, I, H, batch, bias, use_state, seed):
    check_cell(
        kind, dtype, np.random.default_rng(seed), I, H, batch, bias, use_state, weight_scale=0.5
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_cell_steps_equal_layer(kind, dtype):
    """A cell stepped over time with a one-layer layer's weights gives the
    layer's output."""
    rng = np.random.default_rng(17)
    I, H, T, B = 3, 4, 5, 2
    layer = kind.layer(I, H, dtype=dtype, seed=9)
    cell = kind.cell(I, H, dtype=dtype, seed=10)
    cell.load_state_dict({k[:-3]: v for k, v in layer.state_dict().items()})  # drop _l0
    x = rng.standard_normal((T, B, I)).astype(dtype)
    y, s = layer(x)
    state = None
    for t in range(T):
        state = cell(x[t], state)
        h = state[0] if kind.mode == "lstm" else state
        assert_close(h, y[t], dtype, f"h at t={t}")
    for a, b in zip(split_state(kind.mode, state), split_state(kind.mode, s)):
        assert_close(a, b[0], dtype, "final state")


# --------------------------------------------------------------------------
# what the layer must ignore, saturation, results that stay the caller's
# --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_padding_is_never_read(kind, dtype):
    """Values past a row's length (NaN, inf, huge) change nothing, in any
    layer or direction (packed semantics: padding is not input)."""
    rng = np.random.default_rng(18)
    T, B, H = 7, 4, 5
    layer = kind.layer(
        3, H, num_layers=2, bidirectional=True, batch_first=True, dtype=dtype, seed=11
    )
    x = rng.standard_normal((B, T, 3)).astype(dtype)
    state = random_state(rng, kind.mode, (4, B, H), dtype)
    lengths = [7, 3, 0, 1]
    y0, s0 = layer(x, state, lengths=lengths)
    for garbage in (np.nan, np.inf, -np.inf, 1e30):
        xg = x.copy()
        for b, n in enumerate(lengths):
            xg[b, n:] = garbage
        y1, s1 = layer(xg, state, lengths=lengths)
        np.testing.assert_array_equal(y1, y0, err_msg=f"padding {garbage}")
        for a, b in zip(split_state(kind.mode, s1), split_state(kind.mode, s0)):
            np.testing.assert_array_equal(a, b, err_msg=f"padding {garbage}")


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_nan_state_of_one_row_stays_in_that_row(kind):
    rng = np.random.default_rng(19)
    layer = kind.layer(3, 4, bidirectional=True, dtype=np.float64, seed=12)
    x = rng.standard_normal((5, 3, 3))
    state = random_state(rng, kind.mode, (2, 3, 4))
    y0, s0 = layer(x, state, lengths=[5, 0, 2])
    bad = tuple(a.copy() for a in split_state(kind.mode, state))
    for a in bad:
        a[:, 1] = np.nan
    bad_state = bad if kind.mode == "lstm" else bad[0]
    y1, s1 = layer(x, bad_state, lengths=[5, 0, 2])
    np.testing.assert_array_equal(y1[:, [0, 2]], y0[:, [0, 2]])
    assert np.all(y1[:, 1] == 0)  # length 0: zero output, NaN or not
    for a, b in zip(split_state(kind.mode, s1), split_state(kind.mode, s0)):
        np.testing.assert_array_equal(a[:, [0, 2]], b[:, [0, 2]])
        assert np.all(np.isnan(a[:, 1]))  # its final state is its initial state


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_saturated_gates(kind, dtype):
    """Huge pre-activations (exp overflows) saturate like the math says:
    no NaN, no inf, values as the reference's."""
    rng = np.random.default_rng(20)
    layer = kind.layer(3, 6, num_layers=2, bidirectional=True, dtype=dtype, seed=13)
    x = (rng.standard_normal((6, 3, 3)) * 1e4).astype(dtype)
    state = random_state(rng, kind.mode, (4, 3, 6), dtype)
    y, s = layer(x, state, lengths=[6, 4, 1])
    with np.errstate(over="ignore"):
        y_ref, s_ref = layer_forward(
            kind.mode, layer.state_dict(), x, state, [6, 4, 1], **kind.ref_kwargs
        )
    assert_close(y, y_ref, dtype, "y")
    for a, b in zip(split_state(kind.mode, s), split_state(kind.mode, s_ref)):
        assert_close(a, b, dtype, "state")


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_results_are_fresh_arrays(kind):
    """Returned arrays are the caller's: later calls do not overwrite them,
    they share no memory with the inputs or with each other."""
    rng = np.random.default_rng(21)
    layer = kind.layer(3, 4, num_layers=2, bidirectional=True, seed=14)
    x = rng.standard_normal((5, 2, 3)).astype(np.float32)
    state = random_state(rng, kind.mode, (4, 2, 4), np.float32)
    y1, s1 = layer(x, state, lengths=[5, 0])
    kept = [y1.copy()] + [a.copy() for a in split_state(kind.mode, s1)]
    layer(rng.standard_normal((5, 2, 3)).astype(np.float32), lengths=[2, 5])
    layer(rng.standard_normal((5, 2, 3)).astype(np.float32))
    for got, want in zip([y1] + split_state(kind.mode, s1), kept):
        np.testing.assert_array_equal(got, want)
    outs = [y1] + split_state(kind.mode, s1)
    ins = [x] + split_state(kind.mode, state)
    for o in outs:
        for i in ins:
            assert not np.shares_memory(o, i)
    for a, b in itertools.combinations(outs, 2):
        assert not np.shares_memory(a, b)

    cell = kind.cell(3, 4, seed=15)
    cstate = random_state(rng, kind.mode, (2, 4), np.float32)
    out1 = split_state(kind.mode, cell(x[0], cstate))
    kept = [a.copy() for a in out1]
    cell(x[1], cstate)
    cell(x[2])
    for got, want in zip(out1, kept):
        np.testing.assert_array_equal(got, want)
    for o in out1:
        for i in [x] + split_state(kind.mode, cstate):
            assert not np.shares_memory(o, i)


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_large_batch_is_deterministic(kind):
    """Big enough for every threaded / blocked path: repeated calls give
    bit-identical results (no races), equal to the reference."""
    rng = np.random.default_rng(22)
    T, B, I, H = 12, 96, 24, 80
    layer = kind.layer(I, H, num_layers=1, bidirectional=True, dtype=np.float32, seed=16)
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    lengths = random_lengths(rng, B, T)
    state = random_state(rng, kind.mode, (2, B, H), np.float32)
    y0, s0 = layer(x, state, lengths=lengths)
    for _ in range(4):
        y, s = layer(x, state, lengths=lengths)
        np.testing.assert_array_equal(y, y0)
        for a, b in zip(split_state(kind.mode, s), split_state(kind.mode, s0)):
            np.testing.assert_array_equal(a, b)
    y_ref, s_ref = layer_forward(
        kind.mode, layer.state_dict(), x, state, lengths, **kind.ref_kwargs
    )
    assert_close(y0, y_ref, np.float32, "y")
    for a, b in zip(split_state(kind.mode, s0), split_state(kind.mode, s_ref)):
        assert_close(a, b, np.float32, "state")


@pytest.mark.parametrize("B", [40, 36], ids=["rows", "units"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_input_projection_blocks(kind, dtype, B):
    """The input projection runs inside the time loop, ~256/B steps at a time
    (T = 13, B = 40: blocks of 6, 6 and 1 steps; reversed, 7..12, 1..6, 0).
    Forward and reverse, with lengths, inference and training alike, equal to
    the reference, and bitwise the same on 1 and 2 threads: at B = 40 they
    split the rows (16 and 24), each thread projecting its rows step by step;
    at B = 36 (not whole blocks of 8 rows) the units (H = 100: the second
    thread's columns start inside a 32-column panel of every gate)."""
    rng = np.random.default_rng(31)
    T, I, H = 13, 20, 100
    layer = kind.layer(I, H, num_layers=1, bidirectional=True, dtype=dtype, seed=5)
    x = rng.standard_normal((T, B, I)).astype(dtype)
    lengths = random_lengths(rng, B, T)
    state = random_state(rng, kind.mode, (2, B, H), dtype)
    before = fastrnn.get_num_threads()
    try:
        runs = []
        for threads in (1, 2):
            fastrnn.set_num_threads(threads)
            y, s = layer(x, state, lengths=lengths)
            y_train, s_train, _ = layer.forward(x, state, lengths=lengths)
            np.testing.assert_array_equal(y_train, y)
            runs.append([y] + split_state(kind.mode, s))
    finally:
        fastrnn.set_num_threads(before)
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)
    y_ref, s_ref = layer_forward(
        kind.mode, layer.state_dict(), x, state, lengths, **kind.ref_kwargs
    )
    assert_close(runs[0][0], y_ref, dtype, "y")
    for got, want in zip(runs[0][1:], split_state(kind.mode, s_ref)):
        assert_close(got, want, dtype, "state")
