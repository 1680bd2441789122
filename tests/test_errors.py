"""Bad input gives ValueError or TypeError naming the argument (x, state,
lengths, the state-dict key, the constructor argument), never a crash; odd
but valid input (non-contiguous, other real dtypes, lists) is accepted and
gives the right result; NaN propagates.

Decisions this file encodes (every entry point checks its arguments before
any pointer reaches C):
- x, state: any real numeric array (float16/32/64, int, uint) is converted
  to the layer's dtype; bool, complex, object and str are TypeError.
- lengths: B integers in [0, T] (list, tuple or integer array); floats,
  strings, a wrong count or out-of-range values are an error naming 'lengths'.
- fr.load: anything that is not a file written by save is ValueError
  (a missing file may be FileNotFoundError).
"""

import io
import os
import re
import zipfile

import numpy as np
import pytest

import fastrnn as fr
from helpers import KINDS, random_state, split_state
from reference import layer_forward

BAD = (ValueError, TypeError)
# one kind per layer class (the options do not change argument checking)
MODE_KINDS = [k for k in KINDS if k.name in ("rnn_tanh", "lstm", "gru")]
MODE_IDS = [k.name for k in MODE_KINDS]
X_NAME = r"\bx\b"
STATE_NAME = r"state|\bh0\b|\bc0\b|\bh_0\b|\bc_0\b|\bhx\b"
LENGTHS_NAME = r"lengths"

I, H, T, B, L = 4, 5, 6, 3, 2  # distinct sizes, so messages can be checked


def make(kind, **kw):
    kw.setdefault("num_layers", L)
    kw.setdefault("bidirectional", True)
    kw.setdefault("seed", 0)
    return kind.layer(I, H, **kw)


def good_state(kind, dtype=np.float32, shape=(2 * L, B, H)):
    return random_state(np.random.default_rng(0), kind.mode, shape, dtype)


def x_ok(dtype=np.float32):
    return np.random.default_rng(1).standard_normal((T, B, I)).astype(dtype)


# --------------------------------------------------------------------------
# x
# --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", MODE_KINDS, ids=MODE_IDS)
@pytest.mark.parametrize(
    "shape", [(I,), (T, B, I, 1), (1, T, B, I), ()], ids=["1d", "4d", "4d_lead", "0d"]
)
def test_x_wrong_rank(kind, shape):
    with pytest.raises(ValueError, match=X_NAME):
        make(kind)(np.zeros(shape, np.float32))


@pytest.mark.parametrize("kind", MODE_KINDS, ids=MODE_IDS)
@pytest.mark.parametrize("batch_first", [False, True])
def test_x_wrong_feature_size(kind, batch_first):
    layer = make(kind, batch_first=batch_first)
    for x in (
        np.zeros((T, B, 9), np.float32),
        np.zeros((T, 9), np.float32),
        np.zeros((T, B, I - 1), np.float32),
    ):
        with pytest.raises(ValueError, match=X_NAME) as info:
            layer(x)
        msg = str(info.value)
        assert str(I) in msg and str(x.shape[-1]) in msg, (
            f"message should give expected {I} and actual {x.shape[-1]}: {msg!r}"
        )


@pytest.mark.parametrize("kind", MODE_KINDS, ids=MODE_IDS)
@pytest.mark.parametrize(
    "value",
    [
        np.full((T, B, I), "a"),
        np.zeros((T, B, I), dtype=object),
        np.zeros((T, B, I), dtype=np.complex64),
        np.zeros((T, B, I), dtype=np.complex128),
        np.zeros((T, B, I), dtype=bool),
    ],
    ids=["str", "object", "complex64", "complex128", "bool"],
)
def test_x_not_real_numeric(kind, value):
    with pytest.raises(TypeError, match=X_NAME):
        make(kind)(value)


@pytest.mark.parametrize("kind", MODE_KINDS, ids=MODE_IDS)
@pytest.mark.parametrize("value", [None, "not an array", object()], ids=["none", "str", "object"])
def test_x_not_an_array(kind, value):
    with pytest.raises(BAD, match=X_NAME):
        make(kind)(value)


# --------------------------------------------------------------------------
# state
# --------------------------------------------------------------------------


def _state_variants(kind):
    """(label, state) pairs whose shape is wrong for a (L=2, bidirectional,
    B=3, H=5) layer and x of batch 3."""
    LD = 2 * L
    shapes = {
        "batch": (LD, B + 1, H),
        "hidden": (LD, B, H + 2),
        "layers": (LD - 1, B, H),
        "rank2": (LD, H),
        "rank4": (1, LD, B, H),
    }
    out = []
    for label, shape in shapes.items():
        bad = np.zeros(shape, np.float32)
        ok = np.zeros((LD, B, H), np.float32)
        if kind.mode == "lstm":
            out.append(("h0_" + label, (bad, ok)))
            out.append(("c0_" + label, (ok, bad)))
        else:
            out.append((label, bad))
    return out


@pytest.mark.parametrize("kind", MODE_KINDS, ids=MODE_IDS)
def test_state_wrong_shape(kind):
    layer = make(kind)
    x = x_ok()
    for label, state in _state_variants(kind):
        with pytest.raises(ValueError, match=STATE_NAME):
            layer(x, state)
        # the shape error gives the expected and the actual shape
        with pytest.raises(ValueError) as info:
            layer(x, state)
        msg = str(info.value)
        bad = state[1] if label.startswith("c0") else (state[0] if kind.mode == "lstm" else state)
        assert any(str(d) in msg for d in bad.shape), f"{label}: {msg!r}"


@pytest.mark.parametrize("kind", MODE_KINDS, ids=MODE_IDS)
def test_state_unbatched_wrong_shape(kind):
    layer = make(kind)
    x = x_ok()[:, 0]  # (T, I)
    bad = np.zeros((2 * L, 1, H), np.float32)  # batched state for unbatched x
    state = (bad, bad) if kind.mode == "lstm" else bad
    with pytest.raises(ValueError, match=STATE_NAME):
        layer(x, state)


def test_lstm_state_not_a_pair():
    kind = next(k for k in KINDS if k.name == "lstm")
    layer = make(kind)
    x = x_ok()
    h0 = np.zeros((2 * L, B, H), np.float32)
    for state in (h0, (h0,), (h0, h0, h0), (h0, None), (None, h0)):
        with pytest.raises(BAD, match=STATE_NAME):
            layer(x, state)


@pytest.mark.parametrize(
    "kind",
    [k for k in MODE_KINDS if k.mode != "lstm"],
    ids=[k.name for k in MODE_KINDS if k.mode != "lstm"],
)
def test_gru_rnn_state_given_as_pair(kind):
    h0 = np.zeros((2 * L, B, H), np.float32)
    with pytest.raises(BAD, match=STATE_NAME):
        make(kind)(x_ok(), (h0, h0))


@pytest.mark.parametrize("kind", MODE_KINDS, ids=MODE_IDS)
@pytest.mark.parametrize("dtype", [np.complex128, bool, object], ids=["complex", "bool", "object"])
def test_state_not_real_numeric(kind, dtype):
    bad = np.zeros((2 * L, B, H), dtype=dtype)
    ok = np.zeros((2 * L, B, H), np.float32)
    state = (bad, ok) if kind.mode == "lstm" else bad
    with pytest.raises(TypeError, match=STATE_NAME):
        make(kind)(x_ok(), state)


# --------------------------------------------------------------------------
# lengths
# --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", MODE_KINDS, ids=MODE_IDS)
@pytest.mark.parametrize(
    "lengths",
    [
        [T + 1, 1, 1],
        [-1, 2, 3],
        [T, T, 10**12],
        [T, T, 2**32 + 1],
        [T, T, -(2**32) + 1],
        [T, T],
        [T, T, T, T],
        [[T, T, T]],
        np.full((B, 1), T),
    ],
    ids=[
        "too_long",
        "negative",
        "huge",
        "wraps_int32",
        "wraps_int32_neg",
        "too_few",
        "too_many",
        "nested",
        "2d",
    ],
)
def test_lengths_bad_values(kind, lengths):
    with pytest.raises(ValueError, match=LENGTHS_NAME):
        make(kind)(x_ok(), lengths=lengths)


@pytest.mark.parametrize("kind", MODE_KINDS, ids=MODE_IDS)
def test_lengths_empty(kind):
    # np.asarray([]) is float64: TypeError (not integers) or ValueError (count)
    with pytest.raises(BAD, match=LENGTHS_NAME):
        make(kind)(x_ok(), lengths=[])


@pytest.mark.parametrize("kind", MODE_KINDS, ids=MODE_IDS)
@pytest.mark.parametrize(
    "lengths",
    [
        [3.0, 2.0, 1.0],
        np.array([3.0, 2.0, 1.0]),
        [2.5, 1, 1],
        ["3", "2", "1"],
        np.array(["3", "2", "1"]),
        [None, 1, 1],
        "abc",
        3.0,
        [1 + 0j, 1, 1],
    ],
    ids=[
        "float_list",
        "float_array",
        "fraction",
        "str_list",
        "str_array",
        "none_item",
        "str",
        "scalar_float",
        "complex",
    ],
)
def test_lengths_bad_types(kind, lengths):
    with pytest.raises(BAD, match=LENGTHS_NAME):
        make(kind)(x_ok(), lengths=lengths)


@pytest.mark.parametrize("kind", MODE_KINDS, ids=MODE_IDS)
def test_lengths_batch_first_counts_rows(kind):
    """With batch_first, lengths has one entry per row of x's first axis."""
    layer = make(kind, batch_first=True)
    x = np.zeros((B, T, I), np.float32)
    with pytest.raises(ValueError, match=LENGTHS_NAME):
        layer(x, lengths=[1] * T)  # T entries, not B
    with pytest.raises(ValueError, match=LENGTHS_NAME):
        layer(x, lengths=[T + 1] * B)  # T is x.shape[1] here
    y, _ = layer(x, lengths=[T] * B)
    assert y.shape == (B, T, 2 * H)


# --------------------------------------------------------------------------
# constructors
# --------------------------------------------------------------------------

LAYER_CLASSES = [fr.RNN, fr.LSTM, fr.GRU]
CELL_CLASSES = [fr.RNNCell, fr.LSTMCell, fr.GRUCell]
ALL_CLASSES = LAYER_CLASSES + CELL_CLASSES


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("hidden_size", [0, -1, -100])
def test_bad_hidden_size(cls, hidden_size):
    with pytest.raises(ValueError, match="hidden_size"):
        cls(4, hidden_size)


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("input_size", [0, -3])
def test_bad_input_size(cls, input_size):
    with pytest.raises(ValueError, match="input_size"):
        cls(input_size, 4)


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize(
    "value", [2.5, "4", None, np.float64(3.0)], ids=["float", "str", "none", "np_float"]
)
def test_non_integer_sizes(cls, value):
    with pytest.raises(BAD, match="hidden_size"):
        cls(4, value)
    with pytest.raises(BAD, match="input_size"):
        cls(value, 4)


@pytest.mark.parametrize("cls", LAYER_CLASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("num_layers", [0, -1])
def test_bad_num_layers(cls, num_layers):
    with pytest.raises(ValueError, match="num_layers"):
        cls(4, 5, num_layers=num_layers)


@pytest.mark.parametrize("cls", [fr.RNN, fr.RNNCell], ids=lambda c: c.__name__)
@pytest.mark.parametrize("value", ["foo", "sigmoid", "", "TANHH"])
def test_bad_nonlinearity(cls, value):
    with pytest.raises(ValueError, match="nonlinearity"):
        cls(4, 5, nonlinearity=value)


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize(
    "dtype",
    [np.int32, np.complex64, np.float16, object, "foo"],
    ids=["int32", "complex64", "float16", "object", "foo"],
)
def test_bad_dtype(cls, dtype):
    with pytest.raises(BAD, match="dtype"):
        cls(4, 5, dtype=dtype)


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda c: c.__name__)
def test_dtype_spellings(cls):
    for spelling in (np.float32, np.dtype(np.float32)):
        assert all(v.dtype == np.float32 for v in cls(3, 2, dtype=spelling).state_dict().values())
    for spelling in (np.float64, np.dtype(np.float64)):
        assert all(v.dtype == np.float64 for v in cls(3, 2, dtype=spelling).state_dict().values())


def test_peephole_and_linear_before_reset_only_where_they_belong():
    with pytest.raises(TypeError):
        fr.GRU(3, 4, peephole=True)
    with pytest.raises(TypeError):
        fr.RNN(3, 4, peephole=True)
    with pytest.raises(TypeError):
        fr.LSTM(3, 4, linear_before_reset=False)
    with pytest.raises(TypeError):
        fr.LSTM(3, 4, nonlinearity="relu")


# --------------------------------------------------------------------------
# cells
# --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", MODE_KINDS, ids=MODE_IDS)
def test_cell_bad_input(kind):
    cell = kind.cell(I, H, seed=0)
    with pytest.raises(ValueError, match=r"\bx(_t)?\b"):
        cell(np.zeros((2, 3, I), np.float32))  # 3-D
    with pytest.raises(ValueError, match=r"\bx(_t)?\b"):
        cell(np.zeros((2, I + 3), np.float32))  # feature size
    with pytest.raises(ValueError, match=r"\bx(_t)?\b"):
        cell(np.float32(1.0))  # 0-D
    with pytest.raises(TypeError, match=r"\bx(_t)?\b"):
        cell(np.zeros((2, I), np.complex64))
    with pytest.raises(TypeError, match=r"\bx(_t)?\b"):
        cell(np.full((2, I), "s"))
    wrong = [
        np.zeros((3, H), np.float32),
        np.zeros((2, H + 1), np.float32),
        np.zeros((H,), np.float32),
    ]  # batch 2 expected
    for w in wrong:
        ok = np.zeros((2, H), np.float32)
        for state in [(w, ok), (ok, w)] if kind.mode == "lstm" else [w]:
            with pytest.raises(ValueError, match=STATE_NAME + r"|\bh\b|\bc\b"):
                cell(np.zeros((2, I), np.float32), state)
    if kind.mode == "lstm":
        with pytest.raises(BAD, match=STATE_NAME + r"|\bh\b|\bc\b"):
            cell(np.zeros((2, I), np.float32), np.zeros((2, H), np.float32))


# --------------------------------------------------------------------------
# state dicts
# --------------------------------------------------------------------------


def _bias_kind_layer(kind, **kw):
    return kind.layer(I, H, num_layers=2, bidirectional=True, seed=3, **kw)


@pytest.mark.parametrize("kind", KINDS, ids=[k.name for k in KINDS])
def test_load_state_dict_unknown_key(kind):
    layer = _bias_kind_layer(kind)
    before = layer.state_dict()
    for extra in ("weight_ih_l2", "bias_ih_l0_forward", "foo", "weight_peep_l0_x"):
        sd = layer.state_dict()
        sd[extra] = np.zeros(3, np.float32)
        with pytest.raises(ValueError, match=extra):
            layer.load_state_dict(sd)
    # bias keys into a bias-free layer, peephole keys into a plain LSTM
    nobias = _bias_kind_layer(kind, bias=False)
    with pytest.raises(ValueError, match="bias_"):
        nobias.load_state_dict(layer.state_dict())
    for k, v in layer.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_load_state_dict_peephole_keys_into_plain_lstm():
    peep = fr.LSTM(I, H, peephole=True, seed=0)
    plain = fr.LSTM(I, H, seed=0)
    with pytest.raises(ValueError, match="weight_peep_l0"):
        plain.load_state_dict(peep.state_dict())
    with pytest.raises(ValueError, match="weight_peep_l0"):
        peep.load_state_dict(plain.state_dict())


@pytest.mark.parametrize("kind", KINDS, ids=[k.name for k in KINDS])
def test_load_state_dict_missing_key(kind):
    layer = _bias_kind_layer(kind)
    for name in layer.state_dict():
        sd = layer.state_dict()
        del sd[name]
        with pytest.raises(ValueError, match=name):
            layer.load_state_dict(sd)


@pytest.mark.parametrize("kind", KINDS, ids=[k.name for k in KINDS])
def test_load_state_dict_wrong_shape_leaves_layer_unchanged(kind):
    layer = _bias_kind_layer(kind)
    before = layer.state_dict()
    x = x_ok()
    y_before, _ = layer(x)
    for name, value in before.items():
        for bad_shape in (
            value.shape[:-1] + (value.shape[-1] + 1,),
            value.shape + (1,),
            value.shape[::-1]
            if value.ndim == 2 and value.shape[0] != value.shape[1]
            else (value.size + 2,),
        ):
            sd = {k: v * 0.5 for k, v in before.items()}  # all valid but this one
            sd[name] = np.zeros(bad_shape, np.float32)
            with pytest.raises(ValueError, match=name) as info:
                layer.load_state_dict(sd)
            assert str(bad_shape[-1]) in str(info.value) or str(bad_shape) in str(info.value)
    # nothing of the failed loads stuck
    for k, v in layer.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    y_after, _ = layer(x)
    np.testing.assert_array_equal(y_after, y_before)


@pytest.mark.parametrize("kind", MODE_KINDS, ids=MODE_IDS)
def test_load_state_dict_bad_values(kind):
    layer = _bias_kind_layer(kind)
    for bad in (
        np.full((3,), "a"),
        np.zeros(3, dtype=object),
        "text",
        None,
        np.zeros(layer.state_dict()["bias_hh_l1"].shape, np.complex128),
    ):
        sd = layer.state_dict()
        sd["bias_hh_l1"] = bad
        with pytest.raises(BAD, match="bias_hh_l1"):
            layer.load_state_dict(sd)


@pytest.mark.parametrize("kind", MODE_KINDS, ids=MODE_IDS)
def test_load_state_dict_not_a_mapping(kind):
    layer = _bias_kind_layer(kind)
    with pytest.raises(BAD):
        layer.load_state_dict([1, 2, 3])
    with pytest.raises(BAD):
        layer.load_state_dict(None)


@pytest.mark.parametrize("kind", MODE_KINDS, ids=MODE_IDS)
def test_cell_load_state_dict_errors(kind):
    cell = kind.cell(I, H, seed=0)
    sd = cell.state_dict()
    sd["weight_ih_l0"] = sd.pop("weight_ih")
    with pytest.raises(ValueError, match="weight_ih"):
        cell.load_state_dict(sd)
    sd = cell.state_dict()
    sd["weight_hh"] = np.zeros((1, 1), np.float32)
    with pytest.raises(ValueError, match="weight_hh"):
        cell.load_state_dict(sd)


# --------------------------------------------------------------------------
# fr.load on bad files
# --------------------------------------------------------------------------


def _saved(tmp_path, kind=None):
    kind = kind or next(k for k in KINDS if k.name == "lstm_peephole")
    layer = _bias_kind_layer(kind)
    path = str(tmp_path / "model.npz")
    layer.save(path)
    return layer, path


def _rewrite(path, out_path, drop=(), add=None, replace=None):
    """Copy an .npz, dropping / adding / replacing entries."""
    with np.load(path, allow_pickle=False) as z:
        entries = {k: z[k] for k in z.files if k not in drop}
    entries.update(add or {})
    entries.update(replace or {})
    np.savez(out_path, **entries)
    return out_path


def test_load_missing_file(tmp_path):
    with pytest.raises((FileNotFoundError, ValueError)):
        fr.load(str(tmp_path / "nope.npz"))


def test_load_random_bytes(tmp_path):
    p = tmp_path / "garbage.npz"
    p.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(ValueError):
        fr.load(str(p))


def test_load_empty_file(tmp_path):
    p = tmp_path / "empty.npz"
    p.write_bytes(b"")
    with pytest.raises(ValueError):
        fr.load(str(p))


def test_load_text_file(tmp_path):
    p = tmp_path / "notes.txt"
    p.write_text("this is not a model\n" * 10)
    with pytest.raises(ValueError):
        fr.load(str(p))


def test_load_plain_npy(tmp_path):
    p = tmp_path / "arr.npy"
    np.save(p, np.zeros(3))
    with pytest.raises(ValueError):
        fr.load(str(p))


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9, 0.99])
def test_load_truncated(tmp_path, fraction):
    _, path = _saved(tmp_path)
    data = open(path, "rb").read()
    p = tmp_path / "cut.npz"
    p.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(ValueError):
        fr.load(str(p))


def test_load_corrupted_bytes(tmp_path):
    _, path = _saved(tmp_path)
    data = bytearray(open(path, "rb").read())
    rng = np.random.default_rng(1)
    for trial in range(5):
        bad = bytearray(data)
        for i in rng.integers(0, len(bad), 40):
            bad[i] ^= 0xFF
        p = tmp_path / f"flip{trial}.npz"
        p.write_bytes(bytes(bad))
        try:
            m = fr.load(str(p))
        except ValueError:
            continue
        # a flip may only hit weight data bytes: then it must still be a model
        assert isinstance(m, fr.LSTM)


def test_load_foreign_npz(tmp_path):
    p = str(tmp_path / "foreign.npz")
    np.savez(p, a=np.zeros(3), b=np.ones((2, 2)))
    with pytest.raises(ValueError):
        fr.load(p)
    # weights alone, without the config saved beside them
    p2 = str(tmp_path / "weights_only.npz")
    np.savez(p2, **fr.LSTM(3, 4, seed=0).state_dict())
    with pytest.raises(ValueError):
        fr.load(p2)


def test_load_foreign_zip(tmp_path):
    p = tmp_path / "other.npz"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(ValueError):
        fr.load(str(p))


def test_load_object_array_refused(tmp_path):
    """An .npz holding a pickled object array is refused (allow_pickle=False),
    and the pickle is never run."""
    _, path = _saved(tmp_path)

    class Boom:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "PWNED"),))

    obj = np.empty(1, dtype=object)
    obj[0] = Boom()
    out = _rewrite(path, str(tmp_path / "evil.npz"), add={"evil": obj})
    with pytest.raises(ValueError):
        fr.load(out)
    assert not (tmp_path / "PWNED").exists()
    # also when the object array takes a weight's place
    out2 = _rewrite(
        path,
        str(tmp_path / "evil2.npz"),
        replace={"weight_hh_l0": np.array([{"a": 1}], dtype=object)},
    )
    with pytest.raises(ValueError):
        fr.load(out2)


def test_load_missing_weight(tmp_path):
    _, path = _saved(tmp_path)
    out = _rewrite(path, str(tmp_path / "missing.npz"), drop=("weight_hh_l1_reverse",))
    with pytest.raises(ValueError, match="weight_hh_l1_reverse"):
        fr.load(out)


def test_load_wrong_weight_shape(tmp_path):
    _, path = _saved(tmp_path)
    out = _rewrite(
        path, str(tmp_path / "shape.npz"), replace={"weight_peep_l1": np.zeros(7, np.float32)}
    )
    with pytest.raises(ValueError, match="weight_peep_l1"):
        fr.load(out)


def test_load_extra_array(tmp_path):
    _, path = _saved(tmp_path)
    out = _rewrite(path, str(tmp_path / "extra.npz"), add={"weight_ih_l7": np.zeros((2, 2))})
    with pytest.raises(ValueError, match="weight_ih_l7"):
        fr.load(out)


def _non_weight_entries(path, layer):
    with np.load(path, allow_pickle=False) as z:
        return [k for k in z.files if k not in layer.state_dict()]


def test_load_garbage_config(tmp_path):
    layer, path = _saved(tmp_path)
    extra = _non_weight_entries(path, layer)
    assert extra, "no configuration stored beside the weights"
    for i, replacement in enumerate(
        [
            np.array("{not json"),
            np.array("null"),
            np.array("[]"),
            np.arange(3),
            np.array(""),
            np.array('{"a": 1}'),
        ]
    ):
        out = _rewrite(path, str(tmp_path / f"cfg{i}.npz"), replace={k: replacement for k in extra})
        with pytest.raises(ValueError):
            fr.load(out)


def test_load_config_of_another_model(tmp_path):
    """Weights of one model with the configuration of another: refused."""
    lstm, lstm_path = _saved(tmp_path)
    others = [
        fr.GRU(I, H, num_layers=2, bidirectional=True, seed=1),
        fr.LSTM(I, H + 3, num_layers=2, bidirectional=True, peephole=True, seed=1),
        fr.LSTM(I, H, num_layers=2, bidirectional=True, peephole=False, seed=1),
        fr.LSTM(I, H, num_layers=1, bidirectional=True, peephole=True, seed=1),
        fr.LSTMCell(I, H, peephole=True, seed=1),
    ]
    for i, other in enumerate(others):
        other_path = str(tmp_path / f"other{i}.npz")
        other.save(other_path)
        with np.load(other_path, allow_pickle=False) as z:
            config = {k: z[k] for k in _non_weight_entries(other_path, other)}
        out = _rewrite(
            lstm_path,
            str(tmp_path / f"mixed{i}.npz"),
            drop=_non_weight_entries(lstm_path, lstm),
            add=config,
        )
        with pytest.raises(ValueError):
            fr.load(out)


_FORGED_LOAD = r"""
import resource, sys
limit = 3 * 2**30                      # 3 GB of address space: a runaway load fails here
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
import fastrnn as fr
try:
    fr.load(sys.argv[1])
    print("RESULT loaded")
except ValueError as e:
    print("RESULT ValueError", e)
except BaseException as e:
    print("RESULT", type(e).__name__, e)
"""


def _forge_json_config(path, layer, out, field, value):
    """Rewrite the JSON configuration entry of a saved file with
    config[field] = value wherever `field` occurs. False if the file holds
    no JSON configuration (then there is nothing to forge this way)."""
    import json

    for key in _non_weight_entries(path, layer):
        with np.load(path, allow_pickle=False) as z:
            raw = z[key]
        try:
            meta = json.loads(str(raw[()]))
        except (ValueError, TypeError):
            continue

        def forge(node):
            if isinstance(node, dict):
                return {k: (value if k == field else forge(v)) for k, v in node.items()}
            if isinstance(node, list):
                return [forge(v) for v in node]
            return node

        _rewrite(path, out, replace={key: np.array(json.dumps(forge(meta)))})
        return True
    return False


@pytest.mark.parametrize("field", ["hidden_size", "input_size", "num_layers"])
def test_load_forged_huge_config(tmp_path, field):
    """A configuration claiming an enormous size is refused with ValueError,
    quickly and without trying to allocate (or loop over) what it claims.
    Run in a child process with a 3 GB address-space limit, so a runaway
    load fails this test instead of taking the machine down."""
    import subprocess
    import sys

    layer, path = _saved(tmp_path)
    out = str(tmp_path / "forged.npz")
    assert _forge_json_config(path, layer, out, field, 10**12), "no JSON configuration found"
    proc = subprocess.run(
        [sys.executable, "-c", _FORGED_LOAD, out], capture_output=True, text=True, timeout=120
    )
    result = [line for line in proc.stdout.splitlines() if line.startswith("RESULT")]
    assert result and result[0].startswith("RESULT ValueError"), (
        f"fr.load of a file whose config says {field}=10**12: "
        f"{result or proc.stderr[-500:]} (exit code {proc.returncode})"
    )


def test_load_file_object_or_bytes_io(tmp_path):
    """Not required, but if fr.load takes a file object it must work; if it
    does not, it says so with TypeError/ValueError, not a crash."""
    layer, path = _saved(tmp_path)
    buf = io.BytesIO(open(path, "rb").read())
    try:
        m = fr.load(buf)
    except BAD:
        return
    for k, v in layer.state_dict().items():
        np.testing.assert_array_equal(m.state_dict()[k], v)


# --------------------------------------------------------------------------
# accepted input: layouts and dtypes
# --------------------------------------------------------------------------


def _expected(kind, layer, x, state=None, lengths=None, batch_first=False):
    return layer_forward(
        kind.mode,
        layer.state_dict(),
        np.asarray(x, np.float64),
        state,
        lengths,
        batch_first=batch_first,
        **kind.ref_kwargs,
    )


def _assert_same(kind, got, want, rel):
    y, s = got
    wy, ws = want
    assert np.max(np.abs(y - wy)) <= rel * max(np.max(np.abs(wy)), 1e-30)
    for a, b in zip(split_state(kind.mode, s), split_state(kind.mode, ws)):
        assert np.max(np.abs(a - b)) <= rel * max(np.max(np.abs(b)), 1e-30)


@pytest.mark.parametrize("kind", KINDS, ids=[k.name for k in KINDS])
def test_non_contiguous_input(kind):
    rng = np.random.default_rng(30)
    for dtype in (np.float32, np.float64):
        layer = make(kind, dtype=dtype)
        big = rng.standard_normal((2 * T, 3 * B, 2 * I)).astype(dtype)
        views = {
            "strided": big[::2, ::3, ::2],
            "reversed": big[:T, :B, :I][::-1],
            "fortran": np.asfortranarray(big[:T, :B, :I]),
            "transposed": np.ascontiguousarray(big[:B, :T, :I]).transpose(1, 0, 2),
        }
        sbig = random_state(rng, kind.mode, (2 * L, 2 * B, 2 * H), dtype)
        state = tuple(s[:, ::2, ::2] for s in sbig) if kind.mode == "lstm" else sbig[:, ::2, ::2]
        for label, x in views.items():
            assert x.shape == (T, B, I)
            want = _expected(kind, layer, x, state, [T, 2, 0])
            got = layer(x, state, lengths=np.array([T, 9, 2, 9, 0, 9])[::2])  # strided
            _assert_same(kind, got, want, 1e-5 if dtype == np.float32 else 1e-12)
            got_c = layer(
                np.ascontiguousarray(x),
                tuple(np.ascontiguousarray(s) for s in state)
                if kind.mode == "lstm"
                else np.ascontiguousarray(state),
                lengths=[T, 2, 0],
            )
            np.testing.assert_array_equal(got[0], got_c[0], err_msg=label)


@pytest.mark.parametrize("kind", KINDS, ids=[k.name for k in KINDS])
@pytest.mark.parametrize("layer_dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize(
    "x_dtype",
    [np.float16, np.float32, np.float64, np.int32, np.int64, np.uint8, np.int8, ">f4", ">f8"],
    ids=["f16", "f32", "f64", "i32", "i64", "u8", "i8", "f32be", "f64be"],
)
def test_other_real_dtypes_accepted(kind, layer_dtype, x_dtype):
    rng = np.random.default_rng(31)
    layer = make(kind, dtype=layer_dtype)
    if np.issubdtype(np.dtype(x_dtype), np.integer):
        x = rng.integers(0, 3, (T, B, I)).astype(x_dtype)
    else:
        x = rng.standard_normal((T, B, I)).astype(x_dtype)
    state = random_state(rng, kind.mode, (2 * L, B, H), np.float16)  # other dtype too
    y, s = layer(x, state)
    assert y.dtype == np.dtype(layer_dtype)
    for part in split_state(kind.mode, s):
        assert part.dtype == np.dtype(layer_dtype)
    yc, sc = layer(
        x.astype(layer_dtype),
        tuple(p.astype(layer_dtype) for p in state)
        if kind.mode == "lstm"
        else state.astype(layer_dtype),
    )
    np.testing.assert_array_equal(y, yc)
    for a, b in zip(split_state(kind.mode, s), split_state(kind.mode, sc)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind", KINDS, ids=[k.name for k in KINDS])
def test_read_only_and_broadcast_input(kind):
    """Read-only arrays (x, state, lengths, weights) and zero-stride broadcast
    views are accepted, and never written."""
    rng = np.random.default_rng(37)
    layer = make(kind)
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    state = random_state(rng, kind.mode, (2 * L, B, H), np.float32)
    lengths = np.array([T, 0, 2], np.int32)
    want = layer(x.copy(), state, lengths=lengths.copy())
    for a in [x, lengths] + split_state(kind.mode, state):
        a.flags.writeable = False
    got = layer(x, state, lengths=lengths)
    _assert_same(kind, got, want, 0.0)
    xb = np.broadcast_to(x[:, :1], (T, B, I))
    hb = np.broadcast_to(np.float32(0.25), (2 * L, B, H))
    sb = (hb, hb) if kind.mode == "lstm" else hb
    got = layer(xb, sb)
    want = layer(
        np.ascontiguousarray(xb),
        tuple(np.ascontiguousarray(a) for a in sb)
        if kind.mode == "lstm"
        else np.ascontiguousarray(sb),
    )
    _assert_same(kind, got, want, 0.0)
    # read-only and broadcast weights
    sd = layer.state_dict()
    for v in sd.values():
        v.flags.writeable = False
    sd["bias_hh_l1"] = np.broadcast_to(np.float32(0.1), sd["bias_hh_l1"].shape)
    layer.load_state_dict(sd)
    np.testing.assert_array_equal(layer.state_dict()["bias_hh_l1"], np.float32(0.1))
    _assert_same(kind, layer(x), _expected(kind, layer, x), 1e-5)


@pytest.mark.parametrize("kind", MODE_KINDS, ids=MODE_IDS)
def test_nested_lists_accepted(kind):
    rng = np.random.default_rng(32)
    layer = make(kind, dtype=np.float64)
    x = rng.standard_normal((T, B, I))
    y, _ = layer(x.tolist())
    y2, _ = layer(x)
    np.testing.assert_array_equal(y, y2)


@pytest.mark.parametrize("kind", MODE_KINDS, ids=MODE_IDS)
def test_cell_other_dtypes_and_views(kind):
    rng = np.random.default_rng(33)
    cell = kind.cell(I, H, dtype=np.float32, seed=0)
    big = rng.standard_normal((6, 2 * I))
    x = big[::2, ::2]  # float64, strided
    out = cell(x)
    ref = cell(np.ascontiguousarray(x, np.float32))
    for a, b in zip(split_state(kind.mode, out), split_state(kind.mode, ref)):
        assert a.dtype == np.float32
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind", KINDS, ids=[k.name for k in KINDS])
def test_non_contiguous_weights(kind):
    """load_state_dict with transposed / strided views of the right shape."""
    rng = np.random.default_rng(34)
    layer = make(kind, dtype=np.float64)
    sd = {}
    for k, v in layer.state_dict().items():
        w = rng.uniform(-0.5, 0.5, v.shape)
        if w.ndim == 2:
            sd[k] = np.ascontiguousarray(w.T).T  # Fortran-ordered view
        else:
            big = np.zeros(2 * w.size)
            big[::2] = w
            sd[k] = big[::2]  # strided view
    layer.load_state_dict(sd)
    x = rng.standard_normal((T, B, I))
    _assert_same(kind, layer(x), _expected(kind, layer, x), 1e-12)
    for k, v in sd.items():
        np.testing.assert_array_equal(layer.state_dict()[k], v)


# --------------------------------------------------------------------------
# NaN and inf
# --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS, ids=[k.name for k in KINDS])
@pytest.mark.parametrize("bad", [np.nan, np.inf], ids=["nan", "inf"])
def test_non_finite_input_propagates(kind, bad):
    """A non-finite input value in row 0 at t=2 reaches that row's output,
    stays out of the other rows, and nothing hangs or crashes."""
    layer = kind.layer(I, H, seed=0, dtype=np.float64)
    x = np.random.default_rng(35).standard_normal((T, B, I))
    want_y, _ = layer(x)
    x[2, 0, 1] = bad
    y, s = layer(x)
    np.testing.assert_array_equal(y[:2], want_y[:2])
    np.testing.assert_array_equal(y[:, 1:], want_y[:, 1:])
    with np.errstate(invalid="ignore", over="ignore"):
        ref_y, _ = layer_forward(kind.mode, layer.state_dict(), x, **kind.ref_kwargs)
    # where the reference has NaN fastrnn has NaN; elsewhere the values agree
    nan_ref = np.isnan(ref_y)
    assert np.array_equal(np.isnan(y), nan_ref), (
        f"NaN pattern differs: fastrnn {np.argwhere(np.isnan(y)).tolist()} "
        f"reference {np.argwhere(nan_ref).tolist()}"
    )
    np.testing.assert_allclose(y[~nan_ref], ref_y[~nan_ref], rtol=1e-10, atol=1e-12)
    if bad is np.nan:
        assert np.isnan(y[2, 0]).any()


@pytest.mark.parametrize("kind", MODE_KINDS, ids=MODE_IDS)
def test_nan_weight_propagates(kind):
    layer = kind.layer(I, H, seed=0, dtype=np.float32)
    sd = layer.state_dict()
    sd["weight_ih_l0"][0, 0] = np.nan
    layer.load_state_dict(sd)
    y, _ = layer(x_ok())
    assert np.isnan(y).any()


# --------------------------------------------------------------------------
# empty sequences and batches
# --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", MODE_KINDS, ids=MODE_IDS)
def test_empty_sequence(kind):
    """T = 0: PyTorch refuses it; fastrnn may too (ValueError naming x) or
    return empty outputs with the initial state as final state."""
    layer = make(kind)
    state = good_state(kind)
    try:
        y, s = layer(np.zeros((0, B, I), np.float32), state)
    except ValueError as e:
        assert re.search(X_NAME, str(e)), f"error does not name x: {e}"
        return
    assert y.shape == (0, B, 2 * H)
    for got, s0 in zip(split_state(kind.mode, s), split_state(kind.mode, state)):
        np.testing.assert_array_equal(got, s0)


@pytest.mark.parametrize("kind", MODE_KINDS, ids=MODE_IDS)
def test_empty_batch(kind):
    """B = 0: PyTorch returns empty outputs; fastrnn may too, or refuse with
    a ValueError naming x."""
    layer = make(kind)
    try:
        y, s = layer(np.zeros((T, 0, I), np.float32))
    except ValueError as e:
        assert re.search(X_NAME, str(e)), f"error does not name x: {e}"
        return
    assert y.shape == (T, 0, 2 * H)
    for got in split_state(kind.mode, s):
        assert got.shape == (2 * L, 0, H)


# --------------------------------------------------------------------------
# parameters as attributes
# --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS, ids=[k.name for k in KINDS])
def test_attribute_writes_never_leave_stale_weights(kind):
    """Writing into a parameter attribute either fails cleanly or takes
    effect; assigning one either fails cleanly or takes effect. Either way
    the layer computes with the weights its state_dict reports."""
    rng = np.random.default_rng(36)
    layer = make(kind, dtype=np.float64)
    x = rng.standard_normal((T, B, I))
    layer(x)  # derived data (packed weights) now exist

    def check():
        y, s = layer(x)
        want = _expected(kind, layer, x)
        _assert_same(kind, (y, s), want, 1e-12)

    try:
        layer.weight_hh_l0[...] = 0.3  # in place
    except (ValueError, TypeError, AttributeError):
        pass
    check()
    new = rng.uniform(-0.5, 0.5, layer.state_dict()["weight_ih_l1_reverse"].shape)
    try:
        layer.weight_ih_l1_reverse = new  # assignment
    except (ValueError, TypeError, AttributeError):
        pass
    else:
        np.testing.assert_array_equal(layer.state_dict()["weight_ih_l1_reverse"], new)
    check()
    with pytest.raises(BAD):
        layer.weight_ih_l0 = np.zeros((1, 1))  # wrong shape is never accepted
    check()
