"""fastrnn.onnx.load(...).run(...) against ONNX's own expectations,
onnxruntime, onnx's ReferenceEvaluator and PyTorch.

(a) every RNN / LSTM / GRU conformance case that ships with the onnx package
    (its data folder, or the same cases generated from
    onnx.backend.test.case.node when the wheel lacks the folder);
(b) random single nodes with every attribute (directions, layouts,
    linear_before_reset, peepholes, unequal and zero lengths, initial
    states, clip, input_forget, activations with alpha / beta) against
    onnxruntime; layout=1, which onnxruntime refuses, against
    ReferenceEvaluator and against onnxruntime on transposed inputs;
(c) torch.onnx.export of stacked, bidirectional, batch-first LSTM / GRU /
    RNN models with dynamic axes, initial states and heads: fastrnn equals
    PyTorch and onnxruntime; model.layer and its stream;
(d) the glue operators, the run() API, and hostile files.
"""

import glob
import importlib
import os
import tracemalloc
import warnings
import zlib

import numpy as np
import onnx
import onnx.backend.test
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import fastrnn as fr
from fastrnn.onnx import recurrent

SLOTS = ["X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"]
GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
N_ACTS = {"RNN": 1, "GRU": 2, "LSTM": 3}
PREFIXES = ("test_lstm_", "test_gru_", "test_rnn_", "test_simple_rnn_")


def scaled_err(got, want):
    """max|got - want| / max(1, max|want|): relative for O(1) and larger
    outputs, absolute for tiny ones (float32 rounding near 0)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    if want.size == 0:
        return 0.0
    assert np.all(np.isfinite(got)), "non-finite output"
    return float(np.max(np.abs(got - want)) / max(1.0, float(np.max(np.abs(want)))))


def ort_session(data):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


# --------------------------------------------------------------------------
# (a) conformance cases
# --------------------------------------------------------------------------


def _conformance_cases():
    """name -> (model bytes, [(feeds, expected outputs)])."""
    data_dir = os.path.join(os.path.dirname(onnx.backend.test.__file__), "data", "node")
    cases = {}
    dirs = [
        d
        for d in sorted(glob.glob(os.path.join(data_dir, "test_*")))
        if os.path.basename(d).startswith(PREFIXES) and "_expanded" not in d
    ]
    for d in dirs:
        model = onnx.load(os.path.join(d, "model.onnx"))
        sets = []
        for ds in sorted(glob.glob(os.path.join(d, "test_data_set_*"))):

            def read(kind, infos):
                out = []
                for j in range(len(infos)):
                    t = TensorProto()
                    with open(os.path.join(ds, f"{kind}_{j}.pb"), "rb") as f:
                        t.ParseFromString(f.read())
                    out.append(numpy_helper.to_array(t))
                return out

            sets.append((read("input", model.graph.input), read("output", model.graph.output)))
        cases[os.path.basename(d)] = (model, sets)
    if not cases:  # this onnx wheel ships no data folder
        import onnx.backend.test.case.node as node_cases

        for op in ("lstm", "gru", "rnn"):
            importlib.import_module(f"onnx.backend.test.case.node.{op}")
        for case in node_cases._NodeTestCases:
            if case.name.startswith(PREFIXES):
                cases[case.name] = (case.model, [(list(i), list(o)) for i, o in case.data_sets])
    return {
        name: (
            model.SerializeToString(),
            [(dict(zip([i.name for i in model.graph.input], ins)), outs) for ins, outs in sets],
        )
        for name, (model, sets) in cases.items()
    }


CASES = _conformance_cases()


def test_conformance_cases_found():
    assert {
        "test_lstm_defaults",
        "test_lstm_with_peepholes",
        "test_lstm_batchwise",
        "test_gru_defaults",
        "test_gru_seq_length",
        "test_gru_batchwise",
        "test_simple_rnn_defaults",
        "test_rnn_seq_length",
        "test_simple_rnn_batchwise",
    } <= set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_conformance(name):
    data, sets = CASES[name]
    model = fr.onnx.load(data)
    for feeds, expected in sets:
        got = model.run(None, feeds)
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            assert g.dtype == e.dtype
            assert scaled_err(g, e) < 1e-5, name


# --------------------------------------------------------------------------
# (b) random single nodes
# --------------------------------------------------------------------------


def node_model(op, attrs, feeds, n_out, opset=14, constant=()):
    """A one-node model; the feeds named in `constant` become initializers."""
    n = max(SLOTS.index(k) for k in feeds) + 1
    inputs = [k if k in feeds else "" for k in SLOTS[:n]]
    outputs = ["Y", "Y_h", "Y_c"][:n_out]
    node = helper.make_node(op, inputs, outputs, **attrs)
    graph_inputs = [
        helper.make_tensor_value_info(
            k, helper.np_dtype_to_tensor_dtype(feeds[k].dtype), feeds[k].shape
        )
        for k in inputs
        if k and k not in constant
    ]
    inits = [numpy_helper.from_array(feeds[k], k) for k in constant]
    elem = helper.np_dtype_to_tensor_dtype(feeds["X"].dtype)
    graph = helper.make_graph(
        [node],
        "node",
        graph_inputs,
        [helper.make_tensor_value_info(o, elem, None) for o in outputs],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model.SerializeToString()


BOUNDED_GATES = [
    ("Sigmoid", 0, 0),
    ("HardSigmoid", 1, 1),
    ("Tanh", 0, 0),
    ("Softsign", 0, 0),
    ("ScaledTanh", 1, 1),
]
ANY = BOUNDED_GATES + [
    ("Relu", 0, 0),
    ("Affine", 1, 1),
    ("LeakyRelu", 1, 0),
    ("ThresholdedRelu", 1, 0),
    ("Elu", 1, 0),
    ("Softplus", 0, 0),
]


def random_node(rng, op, direction, features, T=None, B=None):
    """(attrs, feeds) of a random node. features: 'engine' (what fastrnn's
    layers express) or 'all' (clip, input_forget, any activations)."""
    G, D = GATES[op], 2 if direction == "bidirectional" else 1
    T = int(rng.integers(1, 7)) if T is None else T
    B = int(rng.integers(1, 5)) if B is None else B
    I, H = int(rng.integers(1, 6)), int(rng.integers(1, 7))
    f32 = np.float32
    attrs = dict(hidden_size=H, direction=direction)
    feeds = {
        "X": rng.standard_normal((T, B, I)).astype(f32),
        "W": rng.uniform(-1, 1, (D, G * H, I)).astype(f32),
        "R": rng.uniform(-1, 1, (D, G * H, H)).astype(f32),
    }
    if rng.random() < 0.8:
        feeds["B"] = rng.uniform(-1, 1, (D, 2 * G * H)).astype(f32)
    if rng.random() < 0.6:
        lengths = rng.integers(0, T + 1, size=B)
        lengths[rng.integers(B)] = T
        feeds["sequence_lens"] = lengths.astype(np.int32)
    if rng.random() < 0.6:
        feeds["initial_h"] = rng.standard_normal((D, B, H)).astype(f32)
        if op == "LSTM" and rng.random() < 0.8:
            feeds["initial_c"] = rng.standard_normal((D, B, H)).astype(f32)
    if op == "LSTM" and rng.random() < 0.5:
        feeds["P"] = rng.uniform(-1, 1, (D, 3 * H)).astype(f32)
    if op == "GRU":
        attrs["linear_before_reset"] = int(rng.integers(0, 2))
    if features == "engine":
        if op == "RNN" and rng.random() < 0.5:
            attrs["activations"] = ["Relu"] * D
        return attrs, feeds
    if rng.random() < 0.5:
        attrs["clip"] = float(rng.uniform(0.3, 3))
    if op == "LSTM" and rng.random() < 0.4:
        attrs["input_forget"] = 1
    if rng.random() < 0.8:
        acts = []
        for _ in range(D):
            for k in range(N_ACTS[op]):
                gate = k == 0 and op != "RNN"  # f: a gate, keep it bounded
                acts.append(
                    BOUNDED_GATES[rng.integers(len(BOUNDED_GATES))]
                    if gate
                    else ANY[rng.integers(len(ANY))]
                )
        attrs["activations"] = [a[0] for a in acts]
        # explicit alpha / beta for every function that takes them: onnxruntime
        # departs from the ONNX defaults for some (see fastrnn.onnx)
        alphas = [float(rng.uniform(0.1, 1.5)) for a in acts if a[1]]
        betas = [float(rng.uniform(-0.5, 0.5)) for a in acts if a[2]]
        if alphas:
            attrs["activation_alpha"] = alphas
        if betas:
            attrs["activation_beta"] = betas
    return attrs, feeds


def check_vs_ort(op, attrs, feeds, constant=(), tol=None):
    n_out = 3 if op == "LSTM" else 2
    data = node_model(op, attrs, feeds, n_out, constant=constant)
    runtime_feeds = {k: v for k, v in feeds.items() if k not in constant}
    expected = ort_session(data).run(None, runtime_feeds)
    model = fr.onnx.load(data)
    got = model.run(None, runtime_feeds)
    node = model._order[0].recurrent
    # engine: float32 both sides; fallback: float64 inside vs onnxruntime's
    # float32, whose rounding grows through nonlinear recurrences
    bound = tol or (1e-5 if node.engine else 1e-4)
    for slot, (g, e) in enumerate(zip(got, expected)):
        assert g.dtype == np.float32
        assert scaled_err(g, e) < bound, f"{op} {attrs} output {slot}"
    return node


@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
def test_engine_nodes_vs_onnxruntime(op, direction):
    rng = np.random.default_rng(zlib.crc32(f"engine/{op}/{direction}".encode()))
    for k in range(12):
        attrs, feeds = random_node(rng, op, direction, "engine")
        node = check_vs_ort(op, attrs, feeds, weights(feeds) if k % 2 else ())
        assert node.engine, attrs


@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
def test_all_attributes_vs_onnxruntime(op, direction):
    rng = np.random.default_rng(zlib.crc32(f"all/{op}/{direction}".encode()))
    checked = 0
    while checked < 25:
        attrs, feeds = random_node(rng, op, direction, "all")
        n_out = 3 if op == "LSTM" else 2
        expected = ort_session(node_model(op, attrs, feeds, n_out)).run(None, feeds)
        if not all(np.all(np.isfinite(e)) and np.max(np.abs(e), initial=0) < 1e3 for e in expected):
            continue  # an unbounded activation blew up (float32 overflow in ORT)
        check_vs_ort(op, attrs, feeds)
        checked += 1


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
def test_engine_equals_numpy_fallback(op):
    """Both paths, float64, on nodes the engine covers: they agree to
    float64 rounding (the fallback is an independent implementation)."""
    rng = np.random.default_rng(zlib.crc32(op.encode()))
    for direction in ("forward", "reverse", "bidirectional"):
        for _ in range(6):
            attrs, feeds = random_node(rng, op, direction, "engine")
            feeds = {
                k: v.astype(np.float64) if v.dtype == np.float32 else v for k, v in feeds.items()
            }
            node = recurrent.RecurrentNode(op, attrs, "test")
            assert node.engine
            ins = [feeds.get(k) for k in SLOTS]
            fast = node.run(*ins)
            node.engine = False
            slow = node.run(*ins)
            for f, s in zip(fast, slow):
                if f is not None:
                    assert f.dtype == np.float64
                    assert scaled_err(f, s) < 1e-12


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
def test_layout_1_vs_reference_evaluator(op):
    """onnxruntime refuses layout=1. onnx's ReferenceEvaluator runs it (it
    ignores sequence_lens, activations, clip and input_forget, so those are
    left out here; the next test covers them)."""
    rng = np.random.default_rng(zlib.crc32(f"layout1/{op}".encode()))
    for direction in ("forward", "reverse", "bidirectional"):
        for _ in range(3):
            attrs, feeds = random_node(rng, op, direction, "engine")
            feeds.pop("sequence_lens", None)
            attrs.pop("activations", None)
            attrs["layout"] = 1
            feeds["X"] = np.ascontiguousarray(feeds["X"].transpose(1, 0, 2))
            for k in ("initial_h", "initial_c"):
                if k in feeds:
                    feeds[k] = np.ascontiguousarray(feeds[k].transpose(1, 0, 2))
            data = node_model(op, attrs, feeds, 3 if op == "LSTM" else 2)
            expected = ReferenceEvaluator(onnx.load_from_string(data)).run(None, feeds)
            got = fr.onnx.load(data).run(None, feeds)
            for g, e in zip(got, expected):
                assert scaled_err(g, e) < 1e-5, (op, attrs)


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
def test_layout_1_all_attributes_vs_onnxruntime_transposed(op):
    """layout=1 with every attribute: the same node in layout 0 run by
    onnxruntime on transposed inputs, its outputs transposed back."""
    rng = np.random.default_rng(zlib.crc32(f"layout1-all/{op}".encode()))
    for direction in ("forward", "reverse", "bidirectional"):
        for features in ("engine", "all", "all"):
            attrs, feeds = random_node(rng, op, direction, features)
            n_out = 3 if op == "LSTM" else 2
            expected = ort_session(node_model(op, attrs, feeds, n_out)).run(None, feeds)
            if not all(np.all(np.isfinite(e)) for e in expected):
                continue
            t_feeds = dict(feeds, X=feeds["X"].transpose(1, 0, 2).copy())
            for k in ("initial_h", "initial_c"):
                if k in feeds:
                    t_feeds[k] = feeds[k].transpose(1, 0, 2).copy()
            got = fr.onnx.load(node_model(op, dict(attrs, layout=1), t_feeds, n_out)).run(
                None, t_feeds
            )
            assert scaled_err(got[0], expected[0].transpose(2, 0, 1, 3)) < 1e-4
            for g, e in zip(got[1:], expected[1:]):
                assert scaled_err(g, e.transpose(1, 0, 2)) < 1e-4


def test_optional_outputs_omitted():
    rng = np.random.default_rng(5)
    attrs, feeds = random_node(rng, "LSTM", "bidirectional", "engine", T=4, B=3)
    full = fr.onnx.load(node_model("LSTM", attrs, feeds, 3)).run(None, feeds)
    n = max(SLOTS.index(k) for k in feeds) + 1
    for outputs in (["", "Y_h"], ["", "", "Y_c"], ["Y"], ["Y", "", "Y_c"]):
        node = helper.make_node(
            "LSTM", [k if k in feeds else "" for k in SLOTS[:n]], outputs, **attrs
        )
        graph = helper.make_graph(
            [node],
            "g",
            [
                helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
                for k, v in feeds.items()
            ],
            [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs if o],
        )
        data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
        got = fr.onnx.load(data).run(None, feeds)
        want = [full[k] for k, o in enumerate(outputs) if o]
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)


def test_onnx_default_alpha_beta():
    """Missing alpha / beta take the ONNX operators' defaults."""
    acts = recurrent.parse_activations(
        "LSTM",
        ["Affine", "ThresholdedRelu", "ScaledTanh", "LeakyRelu", "HardSigmoid", "Elu"],
        None,
        None,
        2,
        "test",
    )
    got = [(a.name, a.alpha, a.beta) for d in acts for a in d]
    assert got == [
        ("affine", 1.0, 0.0),
        ("thresholdedrelu", 1.0, None),
        ("scaledtanh", 1.0, 1.0),
        ("leakyrelu", 0.01, None),
        ("hardsigmoid", 0.2, 0.5),
        ("elu", 1.0, None),
    ]
    # consumed in order by the functions that take them
    acts = recurrent.parse_activations("GRU", ["Tanh", "LeakyRelu"], [0.3], [], 1, "test")
    assert acts[0][1].alpha == 0.3


# --------------------------------------------------------------------------
# (c) torch.onnx.export
# --------------------------------------------------------------------------


class Head(torch.nn.Module):
    def __init__(self, rnn, head):
        super().__init__()
        self.rnn = rnn
        D = 2 if rnn.bidirectional else 1
        self.head = torch.nn.Linear(D * rnn.hidden_size, 3) if head else None

    def forward(self, x, *state):
        lstm = isinstance(self.rnn, torch.nn.LSTM)
        if state:
            y, s = self.rnn(x, tuple(state) if lstm else state[0])
        else:
            y, s = self.rnn(x)
        if self.head is not None:
            y = torch.softmax(self.head(y), dim=-1)
        return (y, *s) if lstm else (y, s)


def export(module, x, state, opset, path):
    lstm = isinstance(module.rnn, torch.nn.LSTM)
    names = ["x"] + (["h0", "c0"][: len(state)])
    time, batch = (1, 0) if module.rnn.batch_first else (0, 1)
    axes = {"x": {time: "T", batch: "B"}}
    axes.update({n: {1: "B"} for n in names[1:]})
    outs = ["y", "h_n", "c_n"] if lstm else ["y", "h_n"]
    axes.update({"y": {time: "T", batch: "B"}, "h_n": {1: "B"}})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (x, *state),
            path,
            input_names=names,
            output_names=outs,
            dynamic_axes=axes,
            opset_version=opset,
            dynamo=False,
        )
    return path


TORCH_CASES = [
    # cls, layers, bidirectional, batch_first, bias, head, initial state, opset
    (torch.nn.LSTM, 2, True, False, True, False, False, 17),
    (torch.nn.LSTM, 3, True, True, True, True, True, 14),
    (torch.nn.LSTM, 2, False, False, False, False, True, 9),
    (torch.nn.GRU, 2, True, False, True, False, False, 17),
    (torch.nn.GRU, 3, False, True, True, True, True, 11),
    (torch.nn.RNN, 2, True, False, True, False, True, 14),
    (torch.nn.RNN, 3, False, False, True, True, False, 17),
]


@pytest.mark.parametrize(
    "cls,L,bidir,batch_first,bias,head,with_state,opset",
    TORCH_CASES,
    ids=[
        f"{c[0].__name__}-L{c[1]}-{'bi' if c[2] else 'uni'}"
        f"{'-bf' if c[3] else ''}{'-head' if c[5] else ''}"
        f"{'-state' if c[6] else ''}-op{c[7]}"
        for c in TORCH_CASES
    ],
)
def test_torch_export_vs_torch_and_onnxruntime(
    tmp_path, cls, L, bidir, batch_first, bias, head, with_state, opset
):
    torch.manual_seed(L + 10 * bidir + 100 * batch_first)
    kw = dict(nonlinearity="relu") if cls is torch.nn.RNN and not bidir else {}
    rnn = cls(5, 7, num_layers=L, bidirectional=bidir, batch_first=batch_first, bias=bias, **kw)
    module = Head(rnn, head).eval()
    D = 2 if bidir else 1

    def inputs(T, B):
        x = torch.randn((B, T, 5) if batch_first else (T, B, 5))
        n_state = (2 if cls is torch.nn.LSTM else 1) if with_state else 0
        return x, [torch.randn(L * D, B, 7) for _ in range(n_state)]

    path = export(module, *inputs(4, 2), opset, str(tmp_path / "m.onnx"))
    model = fr.onnx.load(path)
    session = ort_session(path)
    for T, B in ((6, 3), (1, 1), (9, 5)):  # other sizes than exported with
        x, state = inputs(T, B)
        with torch.no_grad():
            want = [t.numpy() for t in module(x, *state)]
        feeds = {"x": x.numpy()}
        feeds.update({n: s.numpy() for n, s in zip(["h0", "c0"], state)})
        got = model.run(None, feeds)
        rt = session.run(None, feeds)
        assert len(got) == len(want)
        for g, w, r in zip(got, want, rt):
            assert g.shape == w.shape
            assert scaled_err(g, w) < 1e-5
            assert scaled_err(g, r) < 1e-5
    # the recurrent stack as one fastrnn layer, equal to the torch module's
    layer = model.layer
    assert layer is not None
    assert (layer.num_layers, layer.bidirectional, layer.batch_first, layer.bias) == (
        L,
        bidir,
        batch_first,
        bias,
    )
    ref = fr.from_torch(rnn)
    for name, value in ref.state_dict().items():
        np.testing.assert_array_equal(layer.state_dict()[name], value)


def test_loaded_layer_streams():
    torch.manual_seed(3)
    rnn = torch.nn.GRU(4, 6, num_layers=2)
    data = fr.onnx.to_onnx(fr.from_torch(rnn)).SerializeToString()
    layer = fr.onnx.load(data).layer
    x = np.random.default_rng(0).standard_normal((7, 2, 4)).astype(np.float32)
    stream = layer.stream(batch_size=2)
    ys = np.stack([stream.step(x[t]).copy() for t in range(7)])
    with torch.no_grad():
        want = rnn(torch.from_numpy(x))[0].numpy()
    assert scaled_err(ys, want) < 1e-5


def weights(feeds):
    return tuple(k for k in ("W", "R", "B", "P") if k in feeds)


def test_layer_none_when_not_one_stack():
    rng = np.random.default_rng(1)
    attrs, feeds = random_node(rng, "LSTM", "reverse", "engine")
    assert fr.onnx.load(node_model("LSTM", attrs, feeds, 3, constant=weights(feeds))).layer is None
    attrs, feeds = random_node(rng, "LSTM", "forward", "engine")
    # weights fed at run time: no fixed layer
    assert fr.onnx.load(node_model("LSTM", attrs, feeds, 3)).layer is None
    attrs["clip"] = 1.0  # fallback node
    assert fr.onnx.load(node_model("LSTM", attrs, feeds, 3, constant=weights(feeds))).layer is None
    del attrs["clip"]
    layer = fr.onnx.load(node_model("LSTM", attrs, feeds, 3, constant=weights(feeds))).layer
    assert isinstance(layer, fr.LSTM) and layer.num_layers == 1
    assert layer.peephole == ("P" in feeds)


# --------------------------------------------------------------------------
# (d) glue operators and the run() API
# --------------------------------------------------------------------------


def graph_model(nodes, inputs, outputs, inits=(), opset=14):
    graph = helper.make_graph(
        nodes,
        "g",
        [
            helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
            for n, a in inputs.items()
        ],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in dict(inits).items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model.SerializeToString()


def i64(*v):
    return np.array(v, np.int64)


X = np.random.default_rng(0).standard_normal((4, 3, 5)).astype(np.float32)
GLUE = {
    "slice-neg-step": (
        [helper.make_node("Slice", ["x", "s", "e", "a", "st"], ["y"])],
        dict(s=i64(-1, 4), e=i64(-100, 0), a=i64(0, 2), st=i64(-2, -1)),
        14,
    ),
    "slice-attrs-v9": (
        [helper.make_node("Slice", ["x"], ["y"], starts=[1], ends=[1000], axes=[1])],
        {},
        9,
    ),
    "squeeze-unsqueeze-attrs-v11": (
        [
            helper.make_node("Unsqueeze", ["x"], ["u"], axes=[0, 3]),
            helper.make_node("Squeeze", ["u"], ["y"], axes=[0]),
        ],
        {},
        11,
    ),
    "squeeze-unsqueeze-inputs": (
        [
            helper.make_node("Unsqueeze", ["x", "a"], ["u"]),
            helper.make_node("Squeeze", ["u", "a"], ["y"]),
        ],
        dict(a=i64(-1)),
        14,
    ),
    "shape-gather-concat-cos-expand": (
        [
            helper.make_node("Shape", ["x"], ["s"]),
            helper.make_node("Gather", ["s", "i"], ["b"], axis=0),
            helper.make_node("Concat", ["one", "b", "h"], ["shape"], axis=0),
            helper.make_node(
                "ConstantOfShape",
                ["shape"],
                ["z"],
                value=numpy_helper.from_array(np.array([0.5], np.float32)),
            ),
            helper.make_node("Expand", ["z", "e"], ["y"]),
        ],
        dict(i=i64(1), one=i64(1), h=i64(7), e=i64(2, 1, 1, 1)),
        14,
    ),
    "transpose-reshape-matmul-add-softmax": (
        [
            helper.make_node("Transpose", ["x"], ["t"], perm=[1, 0, 2]),
            helper.make_node("Reshape", ["t", "shape"], ["r"]),
            helper.make_node("MatMul", ["r", "w"], ["m"]),
            helper.make_node("Add", ["m", "b"], ["a"]),
            helper.make_node("Softmax", ["a"], ["y"], axis=1),
        ],
        dict(
            shape=i64(0, -1), w=np.ones((20, 3), np.float32) / 7, b=np.arange(3, dtype=np.float32)
        ),
        14,
    ),
    "softmax-v11-coerced": ([helper.make_node("Softmax", ["x"], ["y"], axis=1)], {}, 11),
    "gemm-transb-relu-sigmoid-tanh": (
        [
            helper.make_node("Flatten", ["x"], ["f"], axis=1),
            helper.make_node("Gemm", ["f", "w", "c"], ["g"], transB=1, alpha=0.5, beta=2.0),
            helper.make_node("Relu", ["g"], ["r"]),
            helper.make_node("Sigmoid", ["r"], ["s"]),
            helper.make_node("Tanh", ["s"], ["y"]),
        ],
        dict(w=np.ones((2, 15), np.float32), c=np.array([1, -1], np.float32)),
        14,
    ),
    "split-cast-identity-mul": (
        [
            helper.make_node("Split", ["x", "sp"], ["p", "q"], axis=2),
            helper.make_node("Cast", ["p"], ["pc"], to=TensorProto.DOUBLE),
            helper.make_node("Cast", ["pc"], ["p32"], to=TensorProto.FLOAT),
            helper.make_node("Identity", ["q"], ["qi"]),
            helper.make_node("Slice", ["qi", "z", "two", "two"], ["q2"]),
            helper.make_node("Mul", ["p32", "q2"], ["y"]),
        ],
        dict(sp=i64(2, 3), z=i64(0), two=i64(2)),
        14,
    ),
}


@pytest.mark.parametrize("name", sorted(GLUE))
def test_glue_ops_vs_onnxruntime(name):
    nodes, inits, opset = GLUE[name]
    data = graph_model(nodes, {"x": X}, ["y"], inits, opset)
    want = ort_session(data).run(None, {"x": X})
    got = fr.onnx.load(data).run(None, {"x": X})
    assert got[0].dtype == want[0].dtype
    assert scaled_err(got[0], want[0]) < 1e-6


def run_api_model():
    rng = np.random.default_rng(2)
    attrs, feeds = random_node(rng, "GRU", "forward", "engine", T=3, B=2)
    feeds.pop("sequence_lens", None)
    feeds.pop("initial_h", None)
    return node_model("GRU", attrs, feeds, 2, constant=weights(feeds)), feeds


def test_run_api():
    data, feeds = run_api_model()
    model = fr.onnx.load(data)
    assert model.input_names == ["X"] and model.output_names == ["Y", "Y_h"]
    feeds = {"X": feeds["X"]}
    y, h = model.run(None, feeds)
    (h2,) = model.run(["Y_h"], feeds)
    np.testing.assert_array_equal(h, h2)
    y3, _ = model.run(feeds)  # short for run(None, feeds)
    np.testing.assert_array_equal(y, y3)
    assert y.flags.writeable and "GRU" in repr(model)


@pytest.mark.parametrize(
    "feeds,match",
    [
        (lambda x: {"X": x, "Q": x}, "'Q' is not an input"),
        (lambda x: {}, "missing input"),
        (lambda x: {"X": x.astype(np.float64)}, "expected dtype float32"),
        (lambda x: {"X": x[0]}, "expected shape"),
    ],
)
def test_run_refuses_bad_feeds(feeds, match):
    data, f = run_api_model()
    with pytest.raises(ValueError, match=match):
        fr.onnx.load(data).run(None, feeds(f["X"]))


def test_run_refuses_unknown_output_and_bad_lengths():
    rng = np.random.default_rng(4)
    attrs, feeds = random_node(rng, "RNN", "forward", "engine", T=3, B=2)
    feeds["sequence_lens"] = np.array([1, 2], np.int32)
    model = fr.onnx.load(node_model("RNN", attrs, feeds, 2))
    with pytest.raises(ValueError, match="'Z' is not a value"):
        model.run(["Z"], feeds)
    with pytest.raises(ValueError, match="sequence_lens: expected values in"):
        model.run(None, dict(feeds, sequence_lens=np.array([1, 4], np.int32)))


# --------------------------------------------------------------------------
# hostile files
# --------------------------------------------------------------------------


def lstm_bytes():
    return fr.onnx.to_onnx(
        fr.LSTM(3, 4, num_layers=2, bidirectional=True, seed=0), initial_state=True
    ).SerializeToString()


def test_truncated_bytes():
    data = lstm_bytes()
    for n in list(range(0, len(data), 7)) + [len(data) - 1]:
        with pytest.raises(ValueError, match="model"):
            fr.onnx.load(data[:n])


def test_garbage_bytes_and_paths(tmp_path):
    rng = np.random.default_rng(0)
    for _ in range(20):
        with pytest.raises(ValueError):
            fr.onnx.load(rng.bytes(int(rng.integers(1, 300))))
    with pytest.raises(ValueError, match="cannot read"):
        fr.onnx.load(tmp_path / "missing.onnx")
    with pytest.raises(TypeError):
        fr.onnx.load(12)


def lstm_with(W, R, hidden_size=4):
    """A one-node LSTM whose W and R initializers are the given TensorProtos."""
    node = helper.make_node("LSTM", ["X", "W", "R"], ["Y"], hidden_size=hidden_size)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, None, 3])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)],
        [W, R],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]).SerializeToString()


R_OK = numpy_helper.from_array(np.zeros((1, 16, 4), np.float32), "R")
W_OK = numpy_helper.from_array(np.zeros((1, 16, 3), np.float32), "W")


@pytest.mark.parametrize(
    "data,match",
    [
        (
            lambda: lstm_with(
                TensorProto(
                    name="W",
                    data_type=TensorProto.FLOAT,
                    dims=[1, 2**40, 2**20],
                    raw_data=b"\0" * 16,
                ),
                R_OK,
            ),
            "over fastrnn's limit",
        ),
        (
            lambda: lstm_with(
                TensorProto(
                    name="W",
                    data_type=TensorProto.FLOAT,
                    dims=[1, 2**20, 2**10],
                    float_data=[0.0] * 4,
                ),
                R_OK,
            ),
            "declares shape",
        ),
        (lambda: lstm_with(W_OK, R_OK, hidden_size=2**40), "hidden_size attribute 1099511627776"),
        (
            lambda: lstm_with(
                W_OK,
                TensorProto(name="R", data_type=TensorProto.FLOAT, dims=[1, 4 * 2**40, 2**40]),
                hidden_size=2**40,
            ),
            "over fastrnn's limit",
        ),
    ],
)
def test_oversized_is_refused_before_allocation(data, match):
    data = data()
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=match):
            fr.onnx.load(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20


def test_oversized_run_time_shapes_are_refused():
    nodes = [helper.make_node("ConstantOfShape", ["s"], ["y"])]
    data = graph_model(nodes, {"x": X}, ["y"], dict(s=i64(2**30, 2**30, 2**10)))
    with pytest.raises(ValueError, match="over fastrnn's limit"):
        fr.onnx.load(data).run(None, {"x": X})
    nodes = [helper.make_node("Expand", ["x", "s"], ["y"])]
    data = graph_model(nodes, {"x": X}, ["y"], dict(s=i64(2**40, 1, 1, 1)))
    with pytest.raises(ValueError, match="over fastrnn's limit"):
        fr.onnx.load(data).run(None, {"x": X})


def test_wrong_dtypes():
    W64 = numpy_helper.from_array(np.zeros((1, 16, 3), np.int64), "W")
    with pytest.raises(ValueError, match="input W: expected float16, float32 or float64"):
        fr.onnx.load(lstm_with(W64, R_OK))
    Wd = numpy_helper.from_array(np.zeros((1, 16, 3), np.float64), "W")
    model = fr.onnx.load(
        lstm_with(Wd, numpy_helper.from_array(np.zeros((1, 16, 4), np.float64), "R"))
    )
    with pytest.raises(ValueError, match="X has float32"):
        model.run(None, {"X": np.zeros((2, 1, 3), np.float32)})
    strings = TensorProto(name="W", data_type=TensorProto.STRING, dims=[1], string_data=[b"x"])
    with pytest.raises(ValueError, match="STRING"):
        fr.onnx.load(lstm_with(strings, R_OK))
    rng = np.random.default_rng(3)
    attrs, feeds = random_node(rng, "GRU", "forward", "engine", T=3, B=2)
    feeds["sequence_lens"] = np.array([1.0, 2.0], np.float32)
    with pytest.raises(ValueError, match="sequence_lens: expected integers"):
        fr.onnx.load(node_model("GRU", attrs, feeds, 2)).run(None, feeds)
    nodes = [helper.make_node("Add", ["x", "d"], ["y"])]
    with pytest.raises(ValueError, match="one type"):
        fr.onnx.load(graph_model(nodes, {"x": X}, ["y"], dict(d=np.ones(5)))).run(None, {"x": X})


def test_cycle_and_unknown_ops():
    cycle = [
        helper.make_node("Identity", ["b"], ["a"]),
        helper.make_node("Identity", ["a"], ["b"]),
        helper.make_node("Add", ["x", "a"], ["y"]),
    ]
    with pytest.raises(
        ValueError,
        match=r"cycle through node 0 \(Identity\), node 1 "
        r"\(Identity\)$",
    ):
        fr.onnx.load(graph_model(cycle, {"x": X}, ["y"]))
    self_loop = [helper.make_node("Add", ["x", "y"], ["y"])]
    with pytest.raises(ValueError, match="cycle"):
        fr.onnx.load(graph_model(self_loop, {"x": X}, ["y"]))
    unknown = [
        helper.make_node("Conv", ["x"], ["a"]),
        helper.make_node("Foo", ["a"], ["y"], domain="com.example"),
    ]
    with pytest.raises(ValueError, match="unsupported ONNX operator.*Conv.*com.example:Foo"):
        fr.onnx.load(graph_model(unknown, {"x": X}, ["y"]))
    dangling = [helper.make_node("Add", ["x", "nowhere"], ["y"])]
    with pytest.raises(ValueError, match="'nowhere' is produced by no node"):
        fr.onnx.load(graph_model(dangling, {"x": X}, ["y"]))
    twice = [helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Tanh", ["x"], ["y"])]
    with pytest.raises(ValueError, match="produced twice"):
        fr.onnx.load(graph_model(twice, {"x": X}, ["y"]))


def test_external_data_refused():
    W = numpy_helper.from_array(np.zeros((1, 16, 3), np.float32), "W")
    W.ClearField("raw_data")
    W.data_location = TensorProto.EXTERNAL
    W.external_data.add(key="location", value="../../etc/passwd")
    with pytest.raises(ValueError, match="external data"):
        fr.onnx.load(lstm_with(W, R_OK))


def test_bad_attributes():
    rng = np.random.default_rng(6)
    for attrs, match in (
        (dict(direction="sideways"), "direction"),
        (dict(layout=2), "layout"),
        (dict(activations=["Sigmoid", "Tanh", "Gelu"]), "unsupported activation"),
        (dict(activations=["Tanh"]), "activations: expected 3"),
        (dict(clip=-1.0), "clip"),
        (dict(foo=1), "unknown attribute"),
    ):
        _, feeds = random_node(rng, "LSTM", "forward", "engine")
        with pytest.raises(ValueError, match=match):
            fr.onnx.load(
                node_model("LSTM", dict(hidden_size=feeds["R"].shape[-1], **attrs), feeds, 3)
            )


def test_import_fastrnn_needs_no_onnx():
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['onnx'] = None; sys.modules['torch'] = None\n"
        "import numpy as np, fastrnn as fr\n"
        "fr.LSTM(2, 3)(np.zeros((4, 1, 2), np.float32))\n"
        "try:\n    fr.onnx.load(b'')\nexcept ImportError:\n    print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
