"""state_dict / load_state_dict round trips, save / fr.load round trips
(outputs identical, configuration preserved), allow_pickle=False on load,
seeded initialisation: determinism and the U(-1/sqrt(H), 1/sqrt(H)) range."""

import itertools

import numpy as np
import pytest

import fastrnn as fr
from helpers import KIND_IDS, KINDS, random_lengths, random_params, random_state, split_state

LAYER_CLASS = {"rnn": fr.RNN, "lstm": fr.LSTM, "gru": fr.GRU}


def run(kind, layer, rng, I, B=3, T=5, batch_first=False, D=1, L=1, H=4):
    x = rng.standard_normal((B, T, I) if batch_first else (T, B, I))
    state = random_state(rng, kind.mode, (L * D, B, H))
    lengths = random_lengths(rng, B, T)
    return layer(x, state, lengths=lengths)


def assert_same_outputs(kind, a, b):
    np.testing.assert_array_equal(a[0], b[0])
    for p, q in zip(split_state(kind.mode, a[1]), split_state(kind.mode, b[1])):
        np.testing.assert_array_equal(p, q)


# --------------------------------------------------------------------------
# state_dict
# --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_state_dict_names_shapes_dtypes(kind):
    for L, bi, bias, dtype in itertools.product(
        [1, 3], [False, True], [True, False], [np.float32, np.float64]
    ):
        layer = kind.layer(3, 5, num_layers=L, bidirectional=bi, bias=bias, dtype=dtype, seed=0)
        sd = layer.state_dict()
        expected = kind.layer_shapes(3, 5, L, bi, bias)
        # PyTorch's order for PyTorch's names; peepholes: the right set
        torch_names = [k for k in expected if not k.startswith("weight_peep")]
        assert [k for k in sd if not k.startswith("weight_peep")] == torch_names
        assert set(sd) == set(expected)
        for name, shape in expected.items():
            assert isinstance(sd[name], np.ndarray), name
            assert sd[name].shape == shape, name
            assert sd[name].dtype == np.dtype(dtype), name
            # the same arrays are attributes
            attr = getattr(layer, name)
            assert isinstance(attr, np.ndarray) and attr.dtype == np.dtype(dtype), name
            np.testing.assert_array_equal(attr, sd[name])


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_cell_state_dict_names(kind):
    for bias in (True, False):
        cell = kind.cell(3, 4, bias=bias, seed=0)
        sd = cell.state_dict()
        expected = kind.cell_shapes(3, 4, bias)
        assert list(sd) == list(expected)
        for name, shape in expected.items():
            assert sd[name].shape == shape and sd[name].dtype == np.float32
            np.testing.assert_array_equal(getattr(cell, name), sd[name])


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_state_dict_is_a_copy(kind):
    rng = np.random.default_rng(0)
    layer = kind.layer(3, 4, num_layers=2, dtype=np.float64, seed=1)
    before = run(kind, layer, np.random.default_rng(1), 3, L=2)
    sd = layer.state_dict()
    for v in sd.values():
        v[...] = rng.standard_normal(v.shape)
    after = run(kind, layer, np.random.default_rng(1), 3, L=2)
    assert_same_outputs(kind, before, after)
    for k, v in layer.state_dict().items():
        assert not np.array_equal(v, sd[k]), k


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_load_state_dict_copies(kind):
    """The layer does not keep (and is not changed through) the caller's arrays."""
    rng = np.random.default_rng(2)
    layer = kind.layer(3, 4, bidirectional=True, dtype=np.float64, seed=1)
    sd = random_params(kind.layer_shapes(3, 4, 1, True), rng, 0.5)
    layer.load_state_dict(sd)
    before = run(kind, layer, np.random.default_rng(3), 3, D=2)
    for v in sd.values():
        v *= -3.0
    after = run(kind, layer, np.random.default_rng(3), 3, D=2)
    assert_same_outputs(kind, before, after)


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_state_dict_round_trip(kind):
    """load_state_dict(d) then state_dict() gives d back (in the layer's dtype),
    and a second layer loaded from the first gives identical outputs."""
    rng = np.random.default_rng(4)
    for dtype in (np.float32, np.float64):
        a = kind.layer(3, 4, num_layers=2, bidirectional=True, bias=True, dtype=dtype, seed=5)
        d = random_params(kind.layer_shapes(3, 4, 2, True), rng, 0.6)
        a.load_state_dict(d)
        got = a.state_dict()
        assert set(got) == set(d)
        for k in d:
            np.testing.assert_array_equal(got[k], d[k].astype(dtype))
        b = kind.layer(3, 4, num_layers=2, bidirectional=True, dtype=dtype, seed=99)
        b.load_state_dict(a.state_dict())
        assert_same_outputs(
            kind,
            run(kind, a, np.random.default_rng(6), 3, D=2, L=2),
            run(kind, b, np.random.default_rng(6), 3, D=2, L=2),
        )


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_load_state_dict_any_key_order(kind):
    layer = kind.layer(3, 4, num_layers=2, bidirectional=True, dtype=np.float64, seed=1)
    sd = random_params(kind.layer_shapes(3, 4, 2, True), np.random.default_rng(7), 0.5)
    layer.load_state_dict(dict(reversed(list(sd.items()))))
    for k, v in sd.items():
        np.testing.assert_array_equal(layer.state_dict()[k], v)


def test_load_state_dict_changes_outputs():
    """Loading really replaces the weights that the computation uses."""
    kind = next(k for k in KINDS if k.name == "lstm_peephole")
    layer = kind.layer(3, 4, dtype=np.float64, seed=1)
    y0 = run(kind, layer, np.random.default_rng(8), 3)[0]
    for name in layer.state_dict():
        sd = layer.state_dict()
        sd[name] = sd[name] + 0.25
        other = kind.layer(3, 4, dtype=np.float64, seed=1)
        other.load_state_dict(sd)
        y1 = run(kind, other, np.random.default_rng(8), 3)[0]
        assert not np.array_equal(y0, y1), f"changing {name} changed nothing"


# --------------------------------------------------------------------------
# seeds and initialisation
# --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_seed_determinism(kind):
    for dtype in (np.float32, np.float64):
        a = kind.layer(5, 6, num_layers=2, bidirectional=True, dtype=dtype, seed=42).state_dict()
        b = kind.layer(5, 6, num_layers=2, bidirectional=True, dtype=dtype, seed=42).state_dict()
        c = kind.layer(5, 6, num_layers=2, bidirectional=True, dtype=dtype, seed=43).state_dict()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
        assert any(not np.array_equal(a[k], c[k]) for k in a)
        assert all(not np.array_equal(a[k], c[k]) for k in a if a[k].size > 4)
        ca = kind.cell(5, 6, dtype=dtype, seed=42).state_dict()
        cb = kind.cell(5, 6, dtype=dtype, seed=42).state_dict()
        cc = kind.cell(5, 6, dtype=dtype, seed=7).state_dict()
        for k in ca:
            np.testing.assert_array_equal(ca[k], cb[k])
        assert any(not np.array_equal(ca[k], cc[k]) for k in ca)


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_no_seed_differs(kind):
    a = kind.layer(5, 6, seed=None).state_dict()
    b = kind.layer(5, 6).state_dict()
    assert all(not np.array_equal(a[k], b[k]) for k in a)


def test_parameters_not_all_the_same():
    """Distinct parameters of one layer are not copies of each other."""
    sd = fr.LSTM(6, 6, num_layers=2, bidirectional=True, seed=3).state_dict()
    vals = list(sd.items())
    for (n1, a), (n2, b) in itertools.combinations(vals, 2):
        if a.shape == b.shape:
            assert not np.array_equal(a, b), (n1, n2)


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
@pytest.mark.parametrize("H", [1, 4, 25, 64])
def test_init_range(kind, H):
    """Every parameter in [-1/sqrt(H), 1/sqrt(H)]; the weights fill that
    range (uniform: extremes near the bounds, mean near 0, var k^2/3)."""
    k = 1.0 / np.sqrt(H)
    for dtype in (np.float32, np.float64):
        layer = kind.layer(7, H, num_layers=2, bidirectional=True, dtype=dtype, seed=H)
        values = []
        for name, v in layer.state_dict().items():
            assert np.all(np.abs(v) <= k * (1 + 1e-6)), (name, float(np.abs(v).max()), k)
            values.append(v.ravel().astype(np.float64))
        allv = np.concatenate(values)
        n = allv.size
        assert allv.max() > k * (1 - 20.0 / n) and allv.min() < -k * (1 - 20.0 / n)
        assert abs(allv.mean()) < 5 * k / np.sqrt(3 * n)
        assert abs(allv.var() / (k * k / 3) - 1) < 0.15 + 10 / np.sqrt(n)
        cell = kind.cell(7, H, dtype=dtype, seed=H)
        for name, v in cell.state_dict().items():
            assert np.all(np.abs(v) <= k * (1 + 1e-6)), name


# --------------------------------------------------------------------------
# save / load
# --------------------------------------------------------------------------

SAVE_CONFIGS = [
    # num_layers, bidirectional, batch_first, bias, dtype
    (1, False, False, True, np.float32),
    (2, True, True, False, np.float64),
    (3, True, False, True, np.float32),
    (2, False, True, True, np.float64),
]


@pytest.mark.parametrize(
    "config",
    SAVE_CONFIGS,
    ids=[
        f"L{c[0]}-bi{int(c[1])}-bf{int(c[2])}-bias{int(c[3])}-{np.dtype(c[4]).name}"
        for c in SAVE_CONFIGS
    ],
)
@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_save_load_round_trip(tmp_path, kind, config):
    L, bi, bf, bias, dtype = config
    I, H = 3, 4
    D = 2 if bi else 1
    layer = kind.layer(
        I, H, num_layers=L, bidirectional=bi, batch_first=bf, bias=bias, dtype=dtype, seed=11
    )
    layer.load_state_dict(
        random_params(kind.layer_shapes(I, H, L, bi, bias), np.random.default_rng(12), 0.7)
    )
    path = str(tmp_path / "m.npz")
    layer.save(path)
    loaded = fr.load(path)

    assert type(loaded) is type(layer)
    a, b = layer.state_dict(), loaded.state_dict()
    assert list(a) == list(b)
    for k in a:
        assert b[k].dtype == np.dtype(dtype), k
        np.testing.assert_array_equal(a[k], b[k])
    # identical outputs on the same input: batch_first, bidirectional,
    # num_layers, nonlinearity, peephole, linear_before_reset all came back
    out_a = run(kind, layer, np.random.default_rng(13), I, batch_first=bf, D=D, L=L, H=H)
    out_b = run(kind, loaded, np.random.default_rng(13), I, batch_first=bf, D=D, L=L, H=H)
    assert out_b[0].dtype == np.dtype(dtype)
    assert_same_outputs(kind, out_a, out_b)
    # unbatched too (checks the layout did not become a different one)
    x = np.random.default_rng(14).standard_normal((5, I))
    np.testing.assert_array_equal(layer(x)[0], loaded(x)[0])


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_save_load_preserves_the_option(tmp_path, kind):
    """The loaded layer computes with its own kind's option, not the
    default: compare against a layer of the *other* option on the same
    weights, which must differ."""
    alt = {
        "rnn_tanh": dict(nonlinearity="relu"),
        "rnn_relu": dict(nonlinearity="tanh"),
        "lstm": None,
        "lstm_peephole": None,
        "gru": dict(linear_before_reset=False),
        "gru_original": dict(linear_before_reset=True),
    }
    layer = kind.layer(3, 4, dtype=np.float64, seed=1)
    path = str(tmp_path / "m.npz")
    layer.save(path)
    loaded = fr.load(path)
    x = np.random.default_rng(15).standard_normal((6, 2, 3)) * 2
    y = loaded(x)[0]
    np.testing.assert_array_equal(y, layer(x)[0])
    if alt[kind.name] is not None:
        other = LAYER_CLASS[kind.mode](3, 4, dtype=np.float64, **alt[kind.name])
        other.load_state_dict(layer.state_dict())
        assert not np.allclose(other(x)[0], y)
    else:
        assert ("weight_peep_l0" in loaded.state_dict()) == kind.peephole


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_save_load_twice_and_overwrite(tmp_path, kind):
    path = str(tmp_path / "m.npz")
    first = kind.layer(3, 4, seed=1)
    first.save(path)
    second = kind.layer(3, 4, num_layers=2, bidirectional=True, seed=2)
    second.save(path)  # overwrite
    loaded = fr.load(path)
    for k, v in second.state_dict().items():
        np.testing.assert_array_equal(loaded.state_dict()[k], v)
    again = str(tmp_path / "again.npz")
    loaded.save(again)
    loaded2 = fr.load(again)
    x = np.random.default_rng(16).standard_normal((4, 2, 3)).astype(np.float32)
    np.testing.assert_array_equal(loaded2(x)[0], second(x)[0])


def test_save_accepts_pathlib(tmp_path):
    layer = fr.GRU(3, 4, seed=1)
    path = tmp_path / "p.npz"
    layer.save(path)
    loaded = fr.load(path)
    for k, v in layer.state_dict().items():
        np.testing.assert_array_equal(loaded.state_dict()[k], v)


def test_saved_file_is_plain_npz(tmp_path):
    """The file opens with allow_pickle=False and holds every weight under
    its PyTorch name, plus the configuration."""
    layer = fr.LSTM(3, 4, num_layers=2, bidirectional=True, peephole=True, seed=1)
    path = str(tmp_path / "m.npz")
    layer.save(path)
    with np.load(path, allow_pickle=False) as z:
        files = set(z.files)
        for k, v in layer.state_dict().items():
            assert k in files, k
            np.testing.assert_array_equal(z[k], v)
        extra = files - set(layer.state_dict())
        assert extra, "no configuration stored beside the weights"
        for k in extra:
            assert z[k].dtype != object


def test_load_refuses_pickled_object_array(tmp_path):
    """fr.load uses allow_pickle=False: an object array makes it fail."""
    layer = fr.RNN(3, 4, seed=1)
    path = str(tmp_path / "m.npz")
    layer.save(path)
    with np.load(path, allow_pickle=False) as z:
        entries = {k: z[k] for k in z.files}
    obj = np.empty(2, dtype=object)
    obj[0], obj[1] = {"a": 1}, [1, 2]
    entries["payload"] = obj
    bad = str(tmp_path / "bad.npz")
    np.savez(bad, **entries)
    with pytest.raises(ValueError):
        fr.load(bad)


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_cells_state_dict_round_trip(kind):
    rng = np.random.default_rng(17)
    cell = kind.cell(3, 4, dtype=np.float64, seed=1)
    d = random_params(kind.cell_shapes(3, 4), rng, 0.5)
    cell.load_state_dict(d)
    for k, v in d.items():
        np.testing.assert_array_equal(cell.state_dict()[k], v)
    other = kind.cell(3, 4, dtype=np.float64, seed=2)
    other.load_state_dict(cell.state_dict())
    x = rng.standard_normal((2, 3))
    for a, b in zip(split_state(kind.mode, cell(x)), split_state(kind.mode, other(x))):
        np.testing.assert_array_equal(a, b)
