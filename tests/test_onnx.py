"""fastrnn against ONNX, for what PyTorch lacks (LSTM peepholes, the original
GRU form = ONNX linear_before_reset=0) and as a second opinion on the rest.

(a) The conformance cases that ship with the onnx package
    (onnx/backend/test/data/node/test_{lstm,gru,rnn,simple_rnn}_*): model.onnx
    plus test_data_set_*/input_*.pb and output_*.pb. Some onnx wheels ship
    without that data folder; then the same cases are written out from
    onnx.backend.test.case.node (the generator of that folder: same inputs,
    same expected outputs) into a temporary folder of the same layout and
    read back from there. Every case found is run; a case fastrnn cannot
    express must be listed in EXPECTED_UNSUPPORTED with its reason, and that
    list must match exactly.
(b) Random weights: single ONNX RNN / LSTM / GRU nodes built with
    onnx.helper (forward, reverse, bidirectional, peepholes,
    linear_before_reset 0 and 1, sequence_lens, initial states), run by
    onnxruntime and by fastrnn on the same weights.

ONNX conventions converted here, in the test code:
  LSTM gates i, o, f, c -> fastrnn i, f, g, o; P i, o, f -> weight_peep i, f, o
  GRU gates z, r, h -> fastrnn r, z, n; linear_before_reset default 0
  B = [Wb, Rb] -> bias_ih, bias_hh
  W (D, G*H, I), R (D, G*H, H); direction "reverse" is run as the reverse half
  of a bidirectional fastrnn layer (its forward half zero)
  layout 0: X (T, B, I), Y (T, D, B, H), Y_h (D, B, H)
  layout 1: X (B, T, I), Y (B, T, D, H), Y_h (B, D, H)
"""

import atexit
import glob
import importlib
import os
import shutil
import tempfile
import zlib

import numpy as np
import onnx
import onnx.backend.test
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import helper, numpy_helper

from helpers import DTYPE_IDS, DTYPES, KINDS, Kind, assert_close
from reference import layer_forward

OPS = ("LSTM", "GRU", "RNN")
CASE_PREFIXES = ("test_lstm_", "test_gru_", "test_rnn_", "test_simple_rnn_")
DATA_DIR = os.path.join(os.path.dirname(onnx.backend.test.__file__), "data", "node")

# Conformance cases fastrnn's layers cannot express: name -> reason.
# (None in the onnx release this suite was written against: every RNN, LSTM
# and GRU case there uses the default activations, no clip, no input_forget.)
EXPECTED_UNSUPPORTED = {}

# The cases every onnx release since 1.9 ships; finding fewer means the
# discovery below is broken, not that there is less to test.
KNOWN_CASES = {
    "test_lstm_defaults",
    "test_lstm_with_initial_bias",
    "test_lstm_with_peepholes",
    "test_lstm_batchwise",
    "test_gru_defaults",
    "test_gru_with_initial_bias",
    "test_gru_seq_length",
    "test_gru_batchwise",
    "test_simple_rnn_defaults",
    "test_simple_rnn_with_initial_bias",
    "test_rnn_seq_length",
    "test_simple_rnn_batchwise",
}


# --------------------------------------------------------------------------
# finding and reading the conformance cases
# --------------------------------------------------------------------------


def _write_generated_cases():
    """Write the RNN/LSTM/GRU node cases of onnx.backend.test.case.node to a
    temporary folder laid out like onnx/backend/test/data/node."""
    import onnx.backend.test.case.node as node_cases

    for op in ("lstm", "gru", "rnn"):
        importlib.import_module(f"onnx.backend.test.case.node.{op}")
    out = tempfile.mkdtemp(prefix="fastrnn_onnx_cases_")
    atexit.register(shutil.rmtree, out, True)
    for case in node_cases._NodeTestCases:
        if not case.name.startswith(CASE_PREFIXES):
            continue
        case_dir = os.path.join(out, case.name)
        os.makedirs(case_dir)
        with open(os.path.join(case_dir, "model.onnx"), "wb") as f:
            f.write(case.model.SerializeToString())
        for i, (inputs, outputs) in enumerate(case.data_sets):
            ds = os.path.join(case_dir, f"test_data_set_{i}")
            os.makedirs(ds)
            for kind, arrays, infos in (
                ("input", inputs, case.model.graph.input),
                ("output", outputs, case.model.graph.output),
            ):
                for j, (arr, info) in enumerate(zip(arrays, infos)):
                    with open(os.path.join(ds, f"{kind}_{j}.pb"), "wb") as f:
                        f.write(numpy_helper.from_array(arr, info.name).SerializeToString())
    return out


def _case_root():
    if os.path.isdir(DATA_DIR) and glob.glob(os.path.join(DATA_DIR, "test_lstm_*")):
        return DATA_DIR, "shipped"
    return _write_generated_cases(), "generated"


CASE_ROOT, CASE_SOURCE = _case_root()


def _discover():
    names = []
    for path in sorted(glob.glob(os.path.join(CASE_ROOT, "test_*"))):
        name = os.path.basename(path)
        if name.startswith(CASE_PREFIXES) and "_expanded" not in name:
            names.append(name)
    return names


CASE_NAMES = _discover()


def _read_tensor(path):
    tensor = onnx.TensorProto()
    with open(path, "rb") as f:
        tensor.ParseFromString(f.read())
    return numpy_helper.to_array(tensor)


def load_case(name):
    """-> (node, attrs, data_sets); each data set is (feeds, expected) with
    feeds {ONNX input name: array} and expected {output slot 0/1/2: array}."""
    case_dir = os.path.join(CASE_ROOT, name)
    model = onnx.load(os.path.join(case_dir, "model.onnx"))
    assert len(model.graph.node) == 1, name
    node = model.graph.node[0]
    assert node.op_type in OPS, (name, node.op_type)
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    attrs = {
        k: (
            v.decode()
            if isinstance(v, bytes)
            else [s.decode() if isinstance(s, bytes) else s for s in v]
            if isinstance(v, list)
            else v
        )
        for k, v in attrs.items()
    }
    graph_inputs = [i.name for i in model.graph.input]
    graph_outputs = [o.name for o in model.graph.output]
    slot_names = ["X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"]
    data_sets = []
    for ds in sorted(glob.glob(os.path.join(case_dir, "test_data_set_*"))):
        by_name = {}
        for j, gname in enumerate(graph_inputs):
            by_name[gname] = _read_tensor(os.path.join(ds, f"input_{j}.pb"))
        feeds = {slot: by_name[inp] for slot, inp in zip(slot_names, node.input) if inp}
        out_by_name = {}
        for j, gname in enumerate(graph_outputs):
            out_by_name[gname] = _read_tensor(os.path.join(ds, f"output_{j}.pb"))
        expected = {
            slot: out_by_name[out]
            for slot, out in enumerate(node.output)
            if out and out in out_by_name
        }
        assert expected, f"{name}: no expected outputs"
        data_sets.append((feeds, expected))
    assert data_sets, f"{name}: no test_data_set_*"
    return node, attrs, data_sets


# --------------------------------------------------------------------------
# ONNX node -> fastrnn layer
# --------------------------------------------------------------------------

# where each fastrnn gate block sits in ONNX's order
GATE_ORDER = {
    "LSTM": [0, 2, 3, 1],  # ONNX i, o, f, c -> i, f, g(c), o
    "GRU": [1, 0, 2],  # ONNX z, r, h    -> r, z, n
    "RNN": [0],
}
PEEP_ORDER = [0, 2, 1]  # ONNX P i, o, f  -> i, f, o
DEFAULT_ACTIVATIONS = {
    "LSTM": ["sigmoid", "tanh", "tanh"],
    "GRU": ["sigmoid", "tanh"],
    "RNN": ["tanh"],
}


def reorder(a, order):
    blocks = np.split(np.asarray(a), len(order), axis=0)
    return np.concatenate([blocks[i] for i in order], axis=0)


def unsupported_reason(op, attrs):
    """Why a fastrnn layer cannot express this node, or None."""
    if "clip" in attrs:
        return "clip: fastrnn has no cell-state clipping"
    if attrs.get("input_forget", 0):
        return "input_forget: fastrnn has no coupled input-forget gate"
    if "activation_alpha" in attrs or "activation_beta" in attrs:
        return "activation_alpha/beta: fastrnn has no parametric activations"
    if "activations" in attrs:
        acts = [a.lower() for a in attrs["activations"]]
        n = len(DEFAULT_ACTIVATIONS[op])
        per_dir = [acts[i : i + n] for i in range(0, len(acts), n)]
        ok = [DEFAULT_ACTIVATIONS[op]] + ([["relu"]] if op == "RNN" else [])
        if any(p not in ok for p in per_dir) or any(p != per_dir[0] for p in per_dir):
            return f"activations {attrs['activations']}: fastrnn has only the defaults" + (
                " and relu (same in both directions)" if op == "RNN" else ""
            )
    return None


def onnx_to_fastrnn(op, attrs, feeds, dtype):
    """Build a fastrnn layer equal to the ONNX node and its call arguments.

    Returns (kind, layer, x, state, lengths, direction, layout)."""
    direction = attrs.get("direction", "forward")
    layout = attrs.get("layout", 0)
    W, R = feeds["W"], feeds["R"]
    D_onnx, GH, I = W.shape
    H = R.shape[-1]
    assert attrs.get("hidden_size", H) == H
    order = GATE_ORDER[op]
    bias = "B" in feeds
    peephole = op == "LSTM" and "P" in feeds
    slots = {
        "forward": ["_l0"],
        "reverse": ["_l0_reverse"],
        "bidirectional": ["_l0", "_l0_reverse"],
    }[direction]
    assert len(slots) == D_onnx

    if op == "LSTM":
        kind = Kind("onnx", "lstm", peephole=peephole)
    elif op == "GRU":
        kind = Kind("onnx", "gru", linear_before_reset=bool(attrs.get("linear_before_reset", 0)))
    else:
        acts = [a.lower() for a in attrs.get("activations", ["tanh"])]
        kind = Kind("onnx", "rnn", nonlinearity=acts[0])

    params = {}
    for d, sfx in enumerate(slots):
        params["weight_ih" + sfx] = reorder(W[d], order)
        params["weight_hh" + sfx] = reorder(R[d], order)
        if bias:
            wb, rb = np.split(feeds["B"][d], 2)
            params["bias_ih" + sfx] = reorder(wb, order)
            params["bias_hh" + sfx] = reorder(rb, order)
        if peephole:
            params["weight_peep" + sfx] = reorder(feeds["P"][d], PEEP_ORDER)
    if direction == "reverse":  # forward half: zeros
        for name in list(params):
            params[name.replace("_reverse", "")] = np.zeros_like(params[name])

    bidirectional = direction != "forward"
    layer = kind.layer(
        I,
        H,
        num_layers=1,
        bias=bias,
        batch_first=(layout == 1),
        bidirectional=bidirectional,
        dtype=dtype,
        seed=0,
    )
    layer.load_state_dict(params)

    x = feeds["X"].astype(dtype)
    B = x.shape[0] if layout == 1 else x.shape[1]

    def initial(key):
        if key not in feeds:
            return np.zeros((len(slots) if direction != "reverse" else 2, B, H), dtype)
        s = feeds[key].astype(dtype)
        if layout == 1:
            s = s.transpose(1, 0, 2)  # (B, D, H) -> (D, B, H)
        if direction == "reverse":
            s = np.concatenate([np.zeros_like(s), s])  # forward half gets zeros
        return s

    has_state = "initial_h" in feeds or "initial_c" in feeds
    state = None
    if has_state:
        state = (
            (initial("initial_h"), initial("initial_c")) if op == "LSTM" else initial("initial_h")
        )
    lengths = feeds.get("sequence_lens")
    return kind, layer, x, state, lengths, direction, layout


def fastrnn_to_onnx_outputs(op, y, state, direction, layout, H):
    """fastrnn outputs -> {0: Y, 1: Y_h, 2: Y_c} in ONNX's shapes."""
    dirs = [1] if direction == "reverse" else ([0, 1] if direction == "bidirectional" else [0])
    if layout == 0:
        T, B = y.shape[:2]
        Y = y.reshape(T, B, -1, H)[:, :, dirs].transpose(0, 2, 1, 3)
    else:
        B, T = y.shape[:2]
        Y = y.reshape(B, T, -1, H)[:, :, dirs]

    def final(s):
        s = s[dirs]
        return s.transpose(1, 0, 2) if layout == 1 else s

    if op == "LSTM":
        return {0: Y, 1: final(state[0]), 2: final(state[1])}
    return {0: Y, 1: final(state)}


def run_fastrnn_on_node(op, attrs, feeds, dtype):
    kind, layer, x, state, lengths, direction, layout = onnx_to_fastrnn(op, attrs, feeds, dtype)
    y, state_n = layer(x, state, lengths=lengths)
    return fastrnn_to_onnx_outputs(op, y, state_n, direction, layout, feeds["R"].shape[-1])


def run_reference_on_node(op, attrs, feeds):
    """The same conversion, through the float64 NumPy reference."""
    kind, layer, x, state, lengths, direction, layout = onnx_to_fastrnn(
        op, attrs, feeds, np.float64
    )
    y, state_n = layer_forward(
        kind.mode,
        layer.state_dict(),
        x,
        state,
        lengths,
        batch_first=(layout == 1),
        **kind.ref_kwargs,
    )
    return fastrnn_to_onnx_outputs(op, y, state_n, direction, layout, feeds["R"].shape[-1])


# --------------------------------------------------------------------------
# (a) conformance cases
# --------------------------------------------------------------------------


def _supported_case_names():
    return [n for n in CASE_NAMES if n not in EXPECTED_UNSUPPORTED]


def test_conformance_cases_found():
    missing = KNOWN_CASES - set(CASE_NAMES)
    assert not missing, f"conformance cases not found in {CASE_ROOT} ({CASE_SOURCE}): {missing}"


def test_expected_unsupported_is_exact():
    """Exactly the cases listed in EXPECTED_UNSUPPORTED use something
    fastrnn cannot express, and each for the reason given."""
    found = {}
    for name in CASE_NAMES:
        node, attrs, _ = load_case(name)
        reason = unsupported_reason(node.op_type, attrs)
        if reason is not None:
            found[name] = reason
    assert found == EXPECTED_UNSUPPORTED


def _compare_expected(name, got, expected, dtype):
    for slot, want in expected.items():
        assert slot in got, f"{name}: output {slot} not produced"
        # the expected data is computed in float32 by onnx's own numpy code
        assert_close(got[slot], want.astype(np.float64), dtype, f"{name} output {slot}", rel=1e-5)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("name", _supported_case_names())
def test_conformance(name, dtype):
    node, attrs, data_sets = load_case(name)
    for feeds, expected in data_sets:
        got = run_fastrnn_on_node(node.op_type, attrs, feeds, dtype)
        for arr in got.values():
            assert arr.dtype == np.dtype(dtype)
        _compare_expected(name, got, expected, dtype)


@pytest.mark.parametrize("name", _supported_case_names())
def test_conformance_reference(name):
    """The NumPy reference and the ONNX->fastrnn conversion above agree with
    ONNX's expected outputs (checks the oracle and the converter)."""
    node, attrs, data_sets = load_case(name)
    for feeds, expected in data_sets:
        got = run_reference_on_node(node.op_type, attrs, feeds)
        _compare_expected(name, got, expected, np.float64)


# --------------------------------------------------------------------------
# (b) random nodes against onnxruntime
# --------------------------------------------------------------------------

INPUT_SLOTS = ["X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"]


def make_node_model(op, attrs, feeds):
    """A one-node ONNX model (opset 14) whose graph inputs are the feeds."""
    n_inputs = max(INPUT_SLOTS.index(k) for k in feeds) + 1
    inputs = [k if k in feeds else "" for k in INPUT_SLOTS[:n_inputs]]
    outputs = ["Y", "Y_h", "Y_c"] if op == "LSTM" else ["Y", "Y_h"]
    node = helper.make_node(op, inputs, outputs, **attrs)
    graph_inputs = [
        helper.make_tensor_value_info(
            k, helper.np_dtype_to_tensor_dtype(feeds[k].dtype), feeds[k].shape
        )
        for k in inputs
        if k
    ]
    graph_outputs = [
        helper.make_tensor_value_info(o, onnx.TensorProto.FLOAT, None) for o in outputs
    ]
    graph = helper.make_graph([node], f"{op}_node", graph_inputs, graph_outputs)
    return helper.make_model_gen_version(graph, opset_imports=[helper.make_opsetid("", 14)])


def run_ort(op, attrs, feeds):
    model = make_node_model(op, attrs, feeds)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    names = [i.name for i in session.get_inputs()]
    outs = session.run(None, {n: feeds[n] for n in names})
    return dict(enumerate(outs))


def random_node(rng, kind, direction, T, B, I, H, extras):
    """ONNX op, attributes and float32 feeds for a random node. extras adds
    B, sequence_lens (>= 1: onnxruntime zeroes Y_h of empty rows, where
    fastrnn, like an unrolled loop, keeps the initial state), initial
    states and, for the peephole kind, P."""
    op = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}[kind.mode]
    G = {"RNN": 1, "LSTM": 4, "GRU": 3}[op]
    D = 2 if direction == "bidirectional" else 1
    k = 1.0 / np.sqrt(H)
    attrs = dict(hidden_size=H, direction=direction)
    if op == "GRU":
        attrs["linear_before_reset"] = int(kind.linear_before_reset)
    if op == "RNN" and kind.nonlinearity == "relu":
        attrs["activations"] = ["Relu"] * D
    f32 = np.float32
    feeds = {
        "X": rng.standard_normal((T, B, I)).astype(f32),
        "W": rng.uniform(-2 * k, 2 * k, (D, G * H, I)).astype(f32),
        "R": rng.uniform(-2 * k, 2 * k, (D, G * H, H)).astype(f32),
    }
    if extras:
        feeds["B"] = rng.uniform(-k, k, (D, 2 * G * H)).astype(f32)
        lengths = rng.integers(1, T + 1, size=B)
        lengths[0] = T
        feeds["sequence_lens"] = rng.permutation(lengths).astype(np.int32)
        feeds["initial_h"] = rng.standard_normal((D, B, H)).astype(f32)
        if op == "LSTM":
            feeds["initial_c"] = rng.standard_normal((D, B, H)).astype(f32)
    if kind.peephole:
        feeds["P"] = rng.uniform(-1, 1, (D, 3 * H)).astype(f32)
        # P needs every input before it; ONNX allows empty names for those
    return op, attrs, feeds


def assert_close_to_ort(actual, expected, what):
    """onnxruntime computes in float32 with approximate sigmoid / tanh (about
    1e-6 absolute): compare on the scale max(max|expected|, 1)."""
    actual = np.asarray(actual, np.float64)
    expected = np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, f"{what}: {actual.shape} != {expected.shape}"
    scale = max(float(np.max(np.abs(expected))), 1.0)
    err = float(np.max(np.abs(actual - expected))) / scale
    assert err < 1e-5, f"{what}: error {err:.3g} (scale {scale:.3g}) vs onnxruntime"
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5, err_msg=what)


def check_against_ort(kind, direction, T, B, I, H, extras, seed):
    rng = np.random.default_rng(seed)
    op, attrs, feeds = random_node(rng, kind, direction, T, B, I, H, extras)
    expected = run_ort(op, attrs, feeds)
    got_ref = run_reference_on_node(op, attrs, feeds)
    for slot, want in expected.items():
        assert_close_to_ort(got_ref[slot], want, f"reference output {slot}")
    for dtype in DTYPES:
        got = run_fastrnn_on_node(op, attrs, feeds, dtype)
        for slot, want in expected.items():
            assert_close_to_ort(got[slot], want, f"{dtype.__name__} output {slot}")
            assert_close(
                got[slot], got_ref[slot], dtype, f"{dtype.__name__} output {slot} vs reference"
            )


@pytest.mark.parametrize("extras", [False, True], ids=["bare", "extras"])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("kind", KINDS, ids=[k.name for k in KINDS])
def test_random_node_vs_onnxruntime(kind, direction, extras):
    seed = zlib.crc32(f"{kind.name}/{direction}/{extras}".encode())
    check_against_ort(kind, direction, T=7, B=5, I=4, H=6, extras=extras, seed=seed)


@settings(max_examples=40, deadline=None)
@given(
    kind=st.sampled_from([k for k in KINDS if k.peephole or k.name == "gru_original"]),
    direction=st.sampled_from(["forward", "reverse", "bidirectional"]),
    T=st.integers(1, 9),
    B=st.integers(1, 6),
    I=st.integers(1, 8),
    H=st.integers(1, 17),
    extras=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_random_shapes_vs_onnxruntime(kind, direction, T, B, I, H, extras, seed):
    """Random shapes for the two kinds PyTorch cannot check."""
    check_against_ort(kind, direction, T, B, I, H, extras, seed)
