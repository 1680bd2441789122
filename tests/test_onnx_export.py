"""fastrnn.onnx.save / to_onnx: fastrnn layers and cells as ONNX models
that onnxruntime runs with fastrnn's results (float32, relative error
< 1e-5), and that read back (fastrnn.onnx.load) into the same layer."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx.reference import ReferenceEvaluator

import fastrnn as fr
from helpers import rel_err

rng = np.random.default_rng(0)


def session(path_or_bytes):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(path_or_bytes, options, providers=["CPUExecutionProvider"])


def outputs_of(model, x, state):
    """fastrnn's own results as the exported graph's list of outputs."""
    y, s = model(x, state)
    return [y] + (list(s) if isinstance(s, tuple) else [s])


LAYERS = [
    ("LSTM", {}),
    ("LSTM", {"peephole": True}),
    ("GRU", {}),
    ("GRU", {"linear_before_reset": False}),
    ("RNN", {}),
    ("RNN", {"nonlinearity": "relu"}),
]


@pytest.mark.parametrize("batch_first", [False, True], ids=["tbi", "bti"])
@pytest.mark.parametrize(
    "L,bidirectional",
    [(1, False), (1, True), (3, False), (2, True)],
    ids=["L1", "L1-bi", "L3", "L2-bi"],
)
@pytest.mark.parametrize(
    "kind,options", LAYERS, ids=["lstm", "lstm-peep", "gru", "gru-orig", "rnn", "rnn-relu"]
)
def test_layer_vs_onnxruntime(tmp_path, kind, options, L, bidirectional, batch_first):
    model = getattr(fr, kind)(
        5,
        6,
        num_layers=L,
        bidirectional=bidirectional,
        batch_first=batch_first,
        bias=L != 3,
        seed=L,
        **options,
    )
    path = tmp_path / "m.onnx"
    fr.onnx.save(model, path)
    fr.onnx.save(model, tmp_path / "s.onnx", initial_state=True)
    plain, with_state = session(str(path)), session(str(tmp_path / "s.onnx"))
    LD = L * model.num_directions
    for T, B in ((7, 3), (1, 1)):
        x = rng.standard_normal((B, T, 5) if batch_first else (T, B, 5)).astype(np.float32)
        got = plain.run(None, {"X": x})
        for g, w in zip(got, outputs_of(model, x, None)):
            assert g.shape == w.shape and rel_err(g, w) < 1e-5
        h0 = rng.standard_normal((LD, B, 6)).astype(np.float32)
        c0 = rng.standard_normal((LD, B, 6)).astype(np.float32)
        lstm = kind == "LSTM"
        feeds = {"X": x, "h0": h0, **({"c0": c0} if lstm else {})}
        got = with_state.run(None, feeds)
        for g, w in zip(got, outputs_of(model, x, (h0, c0) if lstm else h0)):
            assert g.shape == w.shape and rel_err(g, w) < 1e-5


@pytest.mark.parametrize(
    "kind,options",
    [
        ("RNNCell", {}),
        ("RNNCell", {"nonlinearity": "relu"}),
        ("LSTMCell", {}),
        ("LSTMCell", {"peephole": True}),
        ("GRUCell", {}),
        ("GRUCell", {"linear_before_reset": False}),
    ],
)
def test_cell_vs_onnxruntime(kind, options):
    cell = getattr(fr, kind)(4, 5, seed=1, **options)
    lstm = kind == "LSTMCell"
    x = rng.standard_normal((3, 4)).astype(np.float32)
    h = rng.standard_normal((3, 5)).astype(np.float32)
    c = rng.standard_normal((3, 5)).astype(np.float32)
    got = session(fr.onnx.to_onnx(cell).SerializeToString()).run(None, {"X": x})
    want = cell(x)
    want = list(want) if lstm else [want]
    for g, w in zip(got, want):
        assert rel_err(g, w) < 1e-5
    feeds = {"X": x, "h": h, **({"c": c} if lstm else {})}
    got = session(fr.onnx.to_onnx(cell, initial_state=True).SerializeToString()).run(None, feeds)
    want = cell(x, (h, c)) if lstm else [cell(x, h)]
    for g, w in zip(got, want):
        assert rel_err(g, w) < 1e-5


def test_graph_is_valid_and_dynamic():
    proto = fr.onnx.to_onnx(
        fr.LSTM(3, 4, num_layers=2, bidirectional=True, seed=0), initial_state=True
    )
    onnx.checker.check_model(proto, full_check=True)
    assert [o.version for o in proto.opset_import if o.domain == ""] == [14]
    assert [i.name for i in proto.graph.input] == ["X", "h0", "c0"]
    assert [o.name for o in proto.graph.output] == ["Y", "Y_h", "Y_c"]
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["seq_len", "batch", 3]
    assert sorted(n.op_type for n in proto.graph.node).count("LSTM") == 2
    assert all(a.name != "layout" for n in proto.graph.node for a in n.attribute)


@pytest.mark.parametrize("kind,options", LAYERS)
def test_round_trip_through_onnx_is_exact(kind, options):
    """fastrnn -> ONNX -> fastrnn.onnx.load: the same layer, bit for bit."""
    for batch_first in (False, True):
        model = getattr(fr, kind)(
            3, 4, num_layers=2, bidirectional=True, batch_first=batch_first, seed=2, **options
        )
        back = fr.onnx.load(fr.onnx.to_onnx(model).SerializeToString()).layer
        assert back is not None and back.config() == model.config()
        for name, value in model.state_dict().items():
            np.testing.assert_array_equal(back.state_dict()[name], value)


def test_float64_export():
    """Double tensors: onnxruntime has no double RNN kernels, onnx's
    ReferenceEvaluator and fastrnn.onnx run them."""
    model = fr.GRU(3, 4, num_layers=2, dtype=np.float64, seed=3)
    proto = fr.onnx.to_onnx(model)
    x = rng.standard_normal((5, 2, 3))
    want = outputs_of(model, x, None)
    for got in (
        ReferenceEvaluator(proto).run(None, {"X": x}),
        fr.onnx.load(proto).run(None, {"X": x}),
    ):
        for g, w in zip(got, want):
            assert g.dtype == np.float64 and rel_err(g, w) < 1e-12


def test_torch_to_fastrnn_to_onnxruntime():
    torch.manual_seed(0)
    module = torch.nn.LSTM(4, 8, num_layers=2, bidirectional=True, batch_first=True)
    x = torch.randn(3, 6, 4)
    with torch.no_grad():
        want = module(x)
    got = session(fr.onnx.to_onnx(fr.from_torch(module)).SerializeToString()).run(
        None, {"X": x.numpy()}
    )
    for g, w in zip(got, [want[0], *want[1]]):
        assert rel_err(g, w.numpy()) < 1e-5


def test_refuses_other_objects():
    with pytest.raises(TypeError, match="expected a fastrnn RNN"):
        fr.onnx.to_onnx(fr.Linear(3, 4))
