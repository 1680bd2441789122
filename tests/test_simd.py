"""The SIMD path: fr.simd_level() and FASTRNN_ISA.

FASTRNN_ISA is read once, at import, so every case runs fastrnn in a child
Python with the variable set (or removed): it reports the path that runs,
warns where the CPU lacks the one asked for, and under each path the CPU has
a float32 LSTM and GRU, forward and backward, agree with the float64 NumPy
reference (tests/reference.py; its gradients by central differences)."""

import json
import platform

import numpy as np
import pytest

import fastrnn as fr
from helpers import assert_close, numeric_grad, random_lengths, random_params, run_fastrnn
from reference import layer_forward

LEVELS = ("avx512", "avx2", "generic")  # best first
GRAD_REL = 1e-4  # float32 gradients, as test_backward.py holds them to PyTorch's


def imported(isa):
    """(fr.simd_level(), [(category, message) of each RuntimeWarning]) of an
    import of fastrnn with FASTRNN_ISA=isa."""
    out = run_fastrnn(
        isa,
        "import json\n"
        "print(json.dumps([fr.simd_level(), [(w.category.__name__, "
        "str(w.message)) for w in caught "
        "if issubclass(w.category, RuntimeWarning)]]))",
    )
    level, warned = json.loads(out)
    return level, [tuple(w) for w in warned]


def cpu_flags():
    """The CPU's feature flags from /proc/cpuinfo, or None where it has none."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        pass
    return None


@pytest.fixture(scope="module")
def best():
    """The path fastrnn runs on this CPU when nothing is forced."""
    level, warned = imported(None)
    assert warned == []
    return level


@pytest.fixture(scope="module")
def supported(best):
    """The paths this CPU has, best first."""
    return LEVELS[LEVELS.index(best) :]


def test_simd_level_is_a_name():
    assert fr.simd_level() in LEVELS
    assert "simd_level" in fr.__all__


def test_best_level_matches_the_cpu(best):
    """Where Linux lists the x86 features, the default path is the best they
    allow (AVX-512: F, BW, CD, DQ and VL; AVX2: AVX2 and FMA)."""
    flags = cpu_flags()
    if flags is None or platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("no x86 feature flags to compare with")
    avx2 = {"avx2", "fma"} <= flags
    avx512 = avx2 and {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"} <= flags
    assert best == ("avx512" if avx512 else "avx2" if avx2 else "generic")


@pytest.mark.parametrize("level", LEVELS)
def test_forced_level_runs(level, supported):
    if level not in supported:
        pytest.skip(f"this CPU lacks {level}")
    assert imported(level) == (level, [])


@pytest.mark.parametrize("level", LEVELS)
def test_missing_level_warns_and_falls_back(level, supported, best):
    if level in supported:
        pytest.skip(f"this CPU has {level}")
    assert imported(level) == (
        best,
        [
            (
                "RuntimeWarning",
                f"FASTRNN_ISA='{level}': this CPU does not support it; running {best}",
            )
        ],
    )


@pytest.mark.parametrize("asked", ["sse9", "AVX-512", "native"])
def test_unknown_level_warns_and_runs_the_best(asked, best):
    assert imported(asked) == (
        best,
        [
            (
                "RuntimeWarning",
                f"FASTRNN_ISA='{asked}': not one of avx512, avx2, generic; running {best}",
            )
        ],
    )


def test_blanks_and_case_are_ignored_and_empty_means_unset(best):
    assert imported(" GENERIC ") == ("generic", [])
    assert imported("") == (best, [])


# ---------------------------------------------------------------- numerics

T, B, I, H = 6, 3, 5, 19  # H = 19: whole vectors and a tail, at 16 and 8 lanes
MODES = ("lstm", "gru")

# the child: the float32 layer on the parent's weights and data; its y, final
# states, dx, dstate0 and parameter gradients into an .npz
_CHILD = """
import sys
import numpy as np
inputs, out = sys.argv[1:]
d = dict(np.load(inputs))
res = {"level": np.array(fr.simd_level())}
for mode in ("lstm", "gru"):
    p = {k.split("/")[1]: v for k, v in d.items() if k.startswith(mode + "/")}
    layer = {"lstm": fr.LSTM, "gru": fr.GRU}[mode](%d, %d, dtype=np.float32)
    layer.load_state_dict({k: v.astype(np.float32) for k, v in p.items()})
    f32 = lambda name: d[mode + "." + name].astype(np.float32)
    lstm = mode == "lstm"
    state = (f32("h0"), f32("c0")) if lstm else f32("h0")
    dstate = (f32("wh"), f32("wc")) if lstm else f32("wh")
    y, state_n, cache = layer.forward(f32("x"), state, d["lengths"])
    dx, dstate0 = layer.backward(f32("wy"), cache, dstate)
    finals = state_n if lstm else (state_n,)
    dfirst = dstate0 if lstm else (dstate0,)
    res.update({mode + "/y": y, mode + "/dx": dx})
    for i, (s, g) in enumerate(zip(finals, dfirst)):
        res[mode + "/state_n%%d" %% i] = s
        res[mode + "/dstate0_%%d" %% i] = g
    res.update({mode + "/grad_" + k: g for k, g in layer.grads.items()})
np.savez(out, **res)
""" % (I, H)


def loss_of(mode, params, x, h0, c0, lengths, wy, wh, wc):
    """sum(y wy) + sum(h_n wh) (+ sum(c_n wc)) through the float64 reference."""
    lstm = mode == "lstm"
    y, state_n = layer_forward(mode, params, x, (h0, c0) if lstm else h0, lengths)
    total = np.sum(y * wy)
    if lstm:
        return total + np.sum(state_n[0] * wh) + np.sum(state_n[1] * wc)
    return total + np.sum(state_n * wh)


@pytest.fixture(scope="module")
def problem(tmp_path_factory):
    """Weights, data and loss weights for the LSTM and the GRU, saved for the
    children, and the reference: y, final states and every gradient, float64."""
    rng = np.random.default_rng(18)
    saved, ref = {}, {}
    lengths = random_lengths(rng, B, T)
    for mode in MODES:
        G = 4 if mode == "lstm" else 3
        params = random_params(
            {
                "weight_ih_l0": (G * H, I),
                "weight_hh_l0": (G * H, H),
                "bias_ih_l0": (G * H,),
                "bias_hh_l0": (G * H,),
            },
            rng,
            0.5,
        )
        data = {
            name: rng.standard_normal(shape)
            for name, shape in (
                ("x", (T, B, I)),
                ("h0", (1, B, H)),
                ("c0", (1, B, H)),
                ("wy", (T, B, H)),
                ("wh", (1, B, H)),
                ("wc", (1, B, H)),
            )
        }
        saved.update({f"{mode}/{k}": v for k, v in params.items()})
        saved.update({f"{mode}.{k}": v for k, v in data.items()})
        # the reference sees what the float32 layer sees: the values rounded to float32
        params = {k: v.astype(np.float32).astype(np.float64) for k, v in params.items()}
        data = {k: v.astype(np.float32).astype(np.float64) for k, v in data.items()}
        lstm = mode == "lstm"
        y, state_n = layer_forward(
            mode, params, data["x"], (data["h0"], data["c0"]) if lstm else data["h0"], lengths
        )
        ref[f"{mode}/y"] = y
        for i, s in enumerate(state_n if lstm else (state_n,)):
            ref[f"{mode}/state_n{i}"] = s

        def loss():
            return loss_of(
                mode,
                params,
                data["x"],
                data["h0"],
                data["c0"],
                lengths,
                data["wy"],
                data["wh"],
                data["wc"],
            )

        ref[f"{mode}/dx"] = numeric_grad(loss, data["x"])
        for i, name in enumerate(("h0", "c0") if lstm else ("h0",)):
            ref[f"{mode}/dstate0_{i}"] = numeric_grad(loss, data[name])
        for name, p in params.items():
            ref[f"{mode}/grad_{name}"] = numeric_grad(loss, p)
    saved["lengths"] = lengths
    path = tmp_path_factory.mktemp("simd") / "inputs.npz"
    np.savez(path, **saved)
    return path, ref


@pytest.mark.parametrize("level", LEVELS)
def test_float32_lstm_and_gru_agree_with_the_reference(level, supported, problem, tmp_path):
    if level not in supported:
        pytest.skip(f"this CPU lacks {level}")
    inputs, ref = problem
    out = tmp_path / "out.npz"
    run_fastrnn(level, _CHILD, str(inputs), str(out))
    got = dict(np.load(out))
    assert str(got.pop("level")) == level
    assert set(got) == set(ref)
    for key, want in ref.items():
        forward = key.split("/")[1] in ("y", "state_n0", "state_n1")
        assert got[key].dtype == np.float32, key
        if forward:
            assert_close(got[key], want, np.float32, f"{level} {key}")
        else:
            assert_close(got[key], want, np.float32, f"{level} {key}", rel=GRAD_REL)
