"""PyTorch interop: fr.from_torch, to_torch_state_dict / to_torch, and
`fastrnn convert`. Round trips torch -> fastrnn -> torch are bit-exact;
the converted models compute what the torch modules compute."""

import os
import pickle
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import onnxruntime as ort
import pytest
import torch

import fastrnn as fr
from fastrnn import cli, interop
from helpers import rel_err

TOL = {torch.float32: 1e-5, torch.float64: 1e-12}


def torch_out(module, x, state=None):
    with torch.no_grad():
        y, s = module(torch.from_numpy(x), state)
    return [y.numpy()] + ([t.numpy() for t in s] if isinstance(s, tuple) else [s.numpy()])


def fr_out(model, x):
    y, s = model(x)
    return [y] + (list(s) if isinstance(s, tuple) else [s])


LAYER_CASES = [
    (torch.nn.LSTM, dict(num_layers=2, bidirectional=True)),
    (torch.nn.LSTM, dict(batch_first=True, bias=False)),
    (torch.nn.LSTM, dict(num_layers=2, bidirectional=True, proj_size=3)),
    (torch.nn.LSTM, dict(batch_first=True, proj_size=1)),
    (torch.nn.GRU, dict(num_layers=3, batch_first=True, dropout=0.25)),
    (torch.nn.GRU, dict(bidirectional=True)),
    (torch.nn.RNN, dict(num_layers=2, nonlinearity="relu", bidirectional=True)),
    (torch.nn.RNN, dict(bias=False)),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize(
    "cls,kw",
    LAYER_CASES,
    ids=[f"{c.__name__}-{'-'.join(map(str, k.values()))}" for c, k in LAYER_CASES],
)
def test_from_torch_layers(cls, kw, dtype):
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = cls(5, 7, **kw).to(dtype)
    model = fr.from_torch(module)
    assert type(model).__name__ == cls.__name__
    assert model.dtype == np.dtype(str(dtype).replace("torch.", ""))
    for attr in (
        "input_size",
        "hidden_size",
        "num_layers",
        "bias",
        "batch_first",
        "bidirectional",
        "dropout",
    ):
        assert getattr(model, attr) == getattr(module, attr), attr
    if cls is torch.nn.RNN:
        assert model.nonlinearity == module.nonlinearity
    if cls is torch.nn.LSTM:
        assert model.proj_size == module.proj_size
    rng = np.random.default_rng(1)
    shape = (3, 6, 5) if model.batch_first else (6, 3, 5)
    x = rng.standard_normal(shape).astype(model.dtype)
    module.eval()
    for g, w in zip(fr_out(model, x), torch_out(module, x)):
        assert g.dtype == model.dtype and rel_err(g, w) < TOL[dtype]
    # torch -> fastrnn -> torch: bit for bit, and torch accepts it (strict)
    back = model.to_torch_state_dict()
    assert list(back) == list(module.state_dict())
    for name, t in module.state_dict().items():
        assert isinstance(back[name], torch.Tensor) and back[name].dtype == t.dtype
        assert torch.equal(back[name], t)
    fresh = cls(5, 7, **kw).to(dtype)
    fresh.load_state_dict(back)
    assert fr.interop.to_torch_state_dict(model).keys() == back.keys()


@pytest.mark.parametrize(
    "cls,kw",
    [
        (torch.nn.RNNCell, {}),
        (torch.nn.RNNCell, {"nonlinearity": "relu"}),
        (torch.nn.LSTMCell, {}),
        (torch.nn.GRUCell, {"bias": False}),
    ],
)
def test_from_torch_cells(cls, kw):
    torch.manual_seed(1)
    module = cls(4, 6, **kw)
    cell = fr.from_torch(module)
    assert type(cell).__name__ == cls.__name__
    x = np.random.default_rng(2).standard_normal((3, 4)).astype(np.float32)
    with torch.no_grad():
        want = module(torch.from_numpy(x))
    got = cell(x)
    if cls is torch.nn.LSTMCell:
        for g, w in zip(got, want):
            assert rel_err(g, w.numpy()) < 1e-5
    else:
        assert rel_err(got, want.numpy()) < 1e-5
    for name, t in module.state_dict().items():
        assert torch.equal(cell.to_torch_state_dict()[name], t)


def test_to_torch_module():
    model = fr.LSTM(3, 5, num_layers=2, bidirectional=True, batch_first=True, seed=4)
    module = interop.to_torch(model)
    assert isinstance(module, torch.nn.LSTM) and module.batch_first
    x = np.random.default_rng(3).standard_normal((2, 7, 3)).astype(np.float32)
    for g, w in zip(fr_out(model, x), torch_out(module, x)):
        assert rel_err(g, w) < 1e-5
    cell = interop.to_torch(fr.GRUCell(3, 4, dtype=np.float64, seed=0))
    assert isinstance(cell, torch.nn.GRUCell) and cell.weight_ih.dtype == torch.float64


def test_refusals():
    with pytest.raises(ValueError, match="peephole"):
        fr.LSTM(3, 4, peephole=True).to_torch_state_dict()
    with pytest.raises(ValueError, match="linear_before_reset=False"):
        interop.to_torch(fr.GRU(3, 4, linear_before_reset=False))
    with pytest.raises(TypeError, match="expected a torch.nn RNN"):
        fr.from_torch(torch.nn.Linear(3, 4))
    with pytest.raises(TypeError, match="float32 or float64.*float16"):
        fr.from_torch(torch.nn.GRU(3, 4).half())
    with pytest.raises(ValueError, match="a LSTM of hidden size 4 has 16 gate rows"):
        interop.layer_from_state_dict(torch.nn.GRU(3, 4).state_dict(), "lstm")


def test_subclass_and_from_torch_never_imports_torch():
    class MyLSTM(torch.nn.LSTM):
        pass

    assert isinstance(fr.from_torch(MyLSTM(2, 3)), fr.LSTM)
    # duck typing: a torch-free process, a module-like object
    code = textwrap.dedent("""
        import sys
        sys.modules["torch"] = None            # any `import torch` now fails
        import numpy as np, fastrnn as fr

        class Tensor:
            dtype = "torch.float32"
            def __init__(self, a): self.a = np.asarray(a, np.float32)
            def detach(self): return self
            def cpu(self): return self
            def __array__(self, dtype=None, copy=None): return self.a

        GRU = type("GRU", (), {"__module__": "torch.nn.modules.rnn"})

        class Fake(GRU):
            input_size, hidden_size, num_layers, bias = 2, 3, 1, True
            batch_first, bidirectional, dropout = False, False, 0.0
            def state_dict(self):
                r = np.random.default_rng(0)
                return {k: Tensor(r.standard_normal(s)) for k, s in (
                    ("weight_ih_l0", (9, 2)), ("weight_hh_l0", (9, 3)),
                    ("bias_ih_l0", (9,)), ("bias_hh_l0", (9,)))}

        gru = fr.from_torch(Fake())
        assert isinstance(gru, fr.GRU) and gru.hidden_size == 3
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


# --------------------------------------------------------------------------
# fastrnn convert
# --------------------------------------------------------------------------


def convert(*argv):
    return cli.main(["convert", *map(str, argv)])


def same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(np.array_equal(sa[k], sb[k]) for k in sa)


def test_convert_state_dict(tmp_path):
    module = torch.nn.LSTM(3, 5, num_layers=2, bidirectional=True)
    torch.save(module.state_dict(), tmp_path / "sd.pt")
    assert convert(tmp_path / "sd.pt", "--type", "lstm", "--out", tmp_path / "m.npz") == 0
    model = fr.load(tmp_path / "m.npz")
    assert same_weights(model, fr.from_torch(module))
    assert (model.num_layers, model.bidirectional) == (2, True)


def test_convert_projected_lstm_state_dict(tmp_path):
    module = torch.nn.LSTM(3, 6, num_layers=2, proj_size=2).double()
    torch.save(module.state_dict(), tmp_path / "sd.pt")
    assert convert(tmp_path / "sd.pt", "--type", "lstm", "--out", tmp_path / "m.npz") == 0
    model = fr.load(tmp_path / "m.npz")
    assert (model.hidden_size, model.proj_size, model.num_layers) == (6, 2, 2)
    assert same_weights(model, fr.from_torch(module))
    x = np.random.default_rng(0).standard_normal((5, 2, 3))
    for g, w in zip(fr_out(model, x), torch_out(module, x)):
        assert rel_err(g, w) < 1e-12


def test_convert_whole_module_and_to_onnx(tmp_path):
    module = torch.nn.GRU(3, 4, batch_first=True).double()
    torch.save(module, tmp_path / "m.pt")
    assert convert(tmp_path / "m.pt", "--out", tmp_path / "m.npz") == 0
    model = fr.load(tmp_path / "m.npz")
    assert model.batch_first and model.dtype == np.float64
    assert same_weights(model, fr.from_torch(module))
    assert convert(tmp_path / "m.pt", "--dtype", "float32", "--out", tmp_path / "m.onnx") == 0
    x = np.random.default_rng(0).standard_normal((2, 5, 3))
    got = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"]).run(
        None, {"X": x.astype(np.float32)}
    )
    for g, w in zip(got, torch_out(module, x)):
        assert rel_err(g, w) < 1e-5
    # and back from ONNX and .npz
    assert convert(tmp_path / "m.onnx", "--out", tmp_path / "back.npz") == 0
    assert fr.load(tmp_path / "back.npz").config() == dict(model.config(), dtype="float32")
    assert convert(tmp_path / "m.npz", "--out", tmp_path / "again.onnx") == 0


def test_convert_checkpoint_key_and_prefix(tmp_path, capsys):
    enc, dec = torch.nn.RNN(3, 4, nonlinearity="relu"), torch.nn.GRU(4, 4)
    state = {
        **{"encoder.rnn." + k: v for k, v in enc.state_dict().items()},
        **{"decoder." + k: v for k, v in dec.state_dict().items()},
    }
    torch.save({"model": state, "epoch": 3}, tmp_path / "ck.pt")
    assert (
        convert(
            tmp_path / "ck.pt", "--type", "rnn_relu", "--key", "model", "--out", tmp_path / "x.npz"
        )
        == 1
    )
    assert "--prefix" in capsys.readouterr().err  # two candidates: must choose
    assert (
        convert(
            tmp_path / "ck.pt",
            "--type",
            "rnn_relu",
            "--key",
            "model",
            "--prefix",
            "encoder.rnn.",
            "--out",
            tmp_path / "enc.npz",
        )
        == 0
    )
    enc_fr = fr.load(tmp_path / "enc.npz")
    assert enc_fr.nonlinearity == "relu" and same_weights(enc_fr, fr.from_torch(enc))
    torch.save(
        {"model": {"decoder." + k: v for k, v in dec.state_dict().items()}}, tmp_path / "dec.pt"
    )
    assert (
        convert(
            tmp_path / "dec.pt", "--type", "gru", "--key", "model", "--out", tmp_path / "dec.npz"
        )
        == 0
    )  # prefix found alone
    assert same_weights(fr.load(tmp_path / "dec.npz"), fr.from_torch(dec))


class Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_convert_never_unpickles_code(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.save({"weight_ih_l0": Evil()}, tmp_path / "evil.pt")
    with open(tmp_path / "evil.pkl", "wb") as f:
        pickle.dump(Evil(), f)
    torch.save(torch.nn.Linear(2, 3), tmp_path / "linear.pt")
    for name in ("evil.pt", "evil.pkl", "linear.pt"):
        assert convert(tmp_path / name, "--type", "lstm", "--out", tmp_path / "o.npz") == 1
        assert "error" in capsys.readouterr().err
    assert not (tmp_path / "pwned").exists()
    assert not (tmp_path / "o.npz").exists()


def test_convert_usage_errors(tmp_path, capsys):
    torch.save(torch.nn.LSTM(2, 3).state_dict(), tmp_path / "sd.pt")
    for args, match in (
        ((tmp_path / "sd.pt", "--out", tmp_path / "m.npz"), "--type is required"),
        ((tmp_path / "sd.pt", "--type", "gru", "--out", tmp_path / "m.npz"), "another cell type"),
        ((tmp_path / "sd.pt", "--type", "lstm", "--out", tmp_path / "m.txt"), ".npz or .onnx"),
        (
            (tmp_path / "sd.pt", "--type", "lstm", "--key", "model", "--out", tmp_path / "m.npz"),
            "--key 'model'",
        ),
    ):
        assert convert(*args) == 1
        assert match in capsys.readouterr().err
