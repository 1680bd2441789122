"""PyTorch interop: fastrnn models from torch modules and state dicts, and back.

    lstm = fr.from_torch(torch_lstm)                 # nn.RNN / LSTM / GRU and their cells
    torch_lstm.load_state_dict(lstm.to_torch_state_dict())
    module = fr.interop.to_torch(lstm)               # a new torch module with these weights

`from_torch` never imports torch: it reads the module's configuration
attributes and its state_dict() by duck typing (np.asarray of each
tensor.detach().cpu()); the layer's dtype is the module's (float32 or
float64). `to_torch_state_dict` (every model's method, so defined with
Module in fastrnn/module.py), `to_torch` and the `fastrnn convert` command
import torch, which they need. `convert` reads torch files with
torch.load(weights_only=True): tensors, state dicts and the torch.nn
recurrent modules only, never arbitrary pickled code.

Not expressible in PyTorch, so refused by to_torch_state_dict / to_torch:
peephole LSTMs and GRU(linear_before_reset=False). LSTM projections
(proj_size, weight_hr_l{k}) go both ways.
"""

from __future__ import annotations

import os
import re
import warnings
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from . import cells, layers, serialization
from . import onnx as fr_onnx
from .module import check_torch_expressible, to_torch_state_dict

if TYPE_CHECKING:
    import argparse

    from numpy.typing import ArrayLike, DTypeLike

    from .cells import GRUCell, LSTMCell, RNNCell
    from .layers import GRU, LSTM, RNN

TORCH_CLASSES = ("RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell")
GATES = {"rnn": 1, "lstm": 4, "gru": 3}
TYPES = (
    "rnn",
    "rnn_tanh",
    "rnn_relu",
    "lstm",
    "gru",
    "rnncell",
    "rnncell_relu",
    "lstmcell",
    "grucell",
)


def _torch_class(module):
    """The torch.nn recurrent class `module` is (or derives from), by name."""
    for cls in type(module).__mro__:
        if cls.__name__ in TORCH_CLASSES and cls.__module__.startswith("torch."):
            return cls.__name__
    raise TypeError(
        f"module: expected a torch.nn RNN, LSTM, GRU, RNNCell, LSTMCell or GRUCell "
        f"(or a subclass), got {type(module).__name__}"
    )


def _to_numpy(t, name):
    """A tensor's values as a NumPy array, float32 or float64 only."""
    dtype = str(getattr(t, "dtype", ""))
    if dtype not in ("torch.float32", "torch.float64"):
        raise TypeError(
            f"state_dict[{name!r}]: expected float32 or float64, got {dtype or type(t)}"
            f"; convert the module with .float() or .double() first"
        )
    if hasattr(t, "detach"):
        t = t.detach().cpu()
    return np.asarray(t)


def from_torch(module: Any) -> RNN | LSTM | GRU | RNNCell | LSTMCell | GRUCell:
    """A fastrnn layer or cell with the configuration and weights of a
    torch.nn.RNN / LSTM / GRU / RNNCell / LSTMCell / GRUCell (or a
    subclass). Does not import torch.

    The layer's dtype is the module's (float32 or float64: TypeError for
    another, e.g. half precision; convert with .float() first); batch_first,
    bidirectional, dropout and proj_size are carried over. TypeError for a
    module that is not one of these classes."""
    kind = _torch_class(module)
    state = {k: _to_numpy(v, k) for k, v in module.state_dict().items()}
    first = "weight_ih" if kind.endswith("Cell") else "weight_ih_l0"
    if first not in state:
        raise ValueError(f"module: its state_dict has no {first!r}; got keys {list(state)}")
    dtype = state[first].dtype
    common = dict(
        input_size=int(module.input_size),
        hidden_size=int(module.hidden_size),
        bias=bool(module.bias),
        dtype=dtype,
        seed=0,
    )
    if kind.endswith("Cell"):
        cls = getattr(cells, kind)
        if kind == "RNNCell":
            common["nonlinearity"] = module.nonlinearity
    else:
        cls = getattr(layers, kind)
        common.update(
            num_layers=int(module.num_layers),
            batch_first=bool(module.batch_first),
            bidirectional=bool(module.bidirectional),
            dropout=float(module.dropout),
        )
        if kind == "RNN":
            common["nonlinearity"] = module.nonlinearity
        if kind == "LSTM" and getattr(module, "proj_size", 0):
            common["proj_size"] = int(module.proj_size)
    with warnings.catch_warnings():  # torch already warned about dropout with one layer
        warnings.filterwarnings("ignore", message="dropout is applied")
        model = cls(**common)
    model.load_state_dict(state)
    return model


def layer_from_state_dict(
    state_dict: Mapping[str, ArrayLike],
    kind: str,
    batch_first: bool = False,
    dtype: DTypeLike | None = None,
    dropout: float = 0.0,
) -> RNN | LSTM | GRU | RNNCell | LSTMCell | GRUCell:
    """A fastrnn layer or cell from a PyTorch-style state dict (arrays or
    tensors); sizes, num_layers, bidirectional, bias, peepholes and
    proj_size come from the keys and shapes. kind: rnn (= rnn_tanh),
    rnn_relu, lstm, gru, rnncell, rnncell_relu, lstmcell, grucell.
    batch_first and dropout, which the weights do not tell, are the
    layer's; dtype: None for the weights' (float32 when they are neither
    float32 nor float64). ValueError for an unknown kind or weights that do
    not fit it."""
    name, kind = kind, str(kind).lower()
    if kind not in TYPES:
        raise ValueError(f"kind: expected one of {', '.join(TYPES)}, got {name!r}")
    state = {
        k: _to_numpy(v, k) if hasattr(v, "detach") else np.asarray(v) for k, v in state_dict.items()
    }
    is_cell = kind.endswith("cell") or kind == "rnncell_relu"
    mode = kind.replace("cell", "").replace("_relu", "").replace("_tanh", "")
    G = GATES[mode]
    first, hh = ("weight_ih", "weight_hh") if is_cell else ("weight_ih_l0", "weight_hh_l0")
    if first not in state or hh not in state:
        raise ValueError(
            f"state_dict: no {first!r} / {hh!r}; keys are {list(state)[:12]}"
            f"{' ...' if len(state) > 12 else ''} (a --prefix or --key missing?)"
        )
    w_ih, w_hh = state[first], state[hh]
    if w_ih.ndim != 2 or w_hh.ndim != 2:
        raise ValueError(
            f"state_dict: {first} and {hh} must be 2-D, got {w_ih.shape} and {w_hh.shape}"
        )
    H, I = w_hh.shape[1], w_ih.shape[1]
    proj = state.get("weight_hr_l0")
    if mode == "lstm" and not is_cell and proj is not None and np.ndim(proj) == 2:
        H = proj.shape[1]  # W_hh is (4H, P), W_hr (P, H)
    if w_ih.shape[0] != G * H or w_hh.shape[0] != G * H:
        raise ValueError(
            f"state_dict: a {mode.upper()} of hidden size {H} has {G * H} gate rows, "
            f"but {first} is {w_ih.shape} and {hh} {w_hh.shape}: another cell type?"
        )
    dtype = dtype or (w_ih.dtype if w_ih.dtype in (np.float32, np.float64) else np.float32)
    common = dict(
        input_size=I,
        hidden_size=H,
        bias=("bias_ih" if is_cell else "bias_ih_l0") in state,
        dtype=dtype,
        seed=0,
    )
    if is_cell:
        cls = {"rnn": cells.RNNCell, "lstm": cells.LSTMCell, "gru": cells.GRUCell}[mode]
        peep = "weight_peep" in state
    else:
        cls = {"rnn": layers.RNN, "lstm": layers.LSTM, "gru": layers.GRU}[mode]
        levels = [
            int(k[len("weight_ih_l") :].split("_")[0])
            for k in state
            if k.startswith("weight_ih_l") and k[len("weight_ih_l") :].split("_")[0].isdigit()
        ]
        common.update(
            num_layers=max(levels) + 1,
            batch_first=batch_first,
            dropout=dropout,
            bidirectional=any(k.endswith("_reverse") for k in state),
        )
        peep = "weight_peep_l0" in state
    if mode == "rnn":
        common["nonlinearity"] = "relu" if kind.endswith("_relu") else "tanh"
    if mode == "lstm" and peep:
        common["peephole"] = True
    if mode == "lstm" and not is_cell and proj is not None:
        common["proj_size"] = w_hh.shape[1]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="dropout is applied")
        model = cls(**common)
    model.load_state_dict(state)
    return model


def to_torch(model: RNN | LSTM | GRU | RNNCell | LSTMCell | GRUCell) -> Any:
    """A new torch.nn module (nn.RNN, nn.LSTM, ... of the model's dtype)
    with the configuration and weights of a fastrnn RNN / LSTM / GRU layer
    or cell. Imports torch. ValueError for what PyTorch cannot express
    (peephole LSTMs, GRU(linear_before_reset=False)); TypeError for another
    kind of model."""
    import torch

    check_torch_expressible(model)
    kind = type(model).__name__
    if kind not in TORCH_CLASSES:
        raise TypeError(f"model: expected a fastrnn RNN, LSTM, GRU or cell, got {kind}")
    kw = dict(
        input_size=model.input_size,
        hidden_size=model.hidden_size,
        bias=model.bias,
        dtype=getattr(torch, model.dtype.name),
    )
    if not kind.endswith("Cell"):
        kw.update(
            num_layers=model.num_layers,
            batch_first=model.batch_first,
            bidirectional=model.bidirectional,
            dropout=model.dropout,
        )
    if kind in ("RNN", "RNNCell"):
        kw["nonlinearity"] = model.nonlinearity
    if getattr(model, "proj_size", 0):
        kw["proj_size"] = model.proj_size
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="dropout option adds dropout")
        module = getattr(torch.nn, kind)(**kw)
    module.load_state_dict(to_torch_state_dict(model))
    return module


# ---------------------------------------------------------------- fastrnn convert

CONVERT_HELP = """Convert a model between PyTorch (.pt: a state dict, a checkpoint dict holding
one, or a whole torch.nn RNN/LSTM/GRU module or cell), fastrnn (.npz) and ONNX
(.onnx). The output format follows --out's extension (.npz or .onnx).

  fastrnn convert lstm_state.pt --type lstm --out lstm.npz
  fastrnn convert checkpoint.pt --type gru --key model --prefix encoder.rnn. --out gru.onnx
  fastrnn convert lstm.npz --out lstm.onnx
  fastrnn convert model.onnx --out model.npz       # when its RNN nodes form one layer

Torch files are read with torch.load(weights_only=True): no pickled code runs."""


def add_convert_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `convert` to the `fastrnn` command's subparsers; returns its parser."""
    import argparse

    c = subparsers.add_parser(
        "convert",
        help="convert a PyTorch / fastrnn / ONNX model",
        description=CONVERT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    c.add_argument(
        "source",
        metavar="SOURCE",
        help="a .pt / .pth file (or any torch.save file), a fastrnn .npz or an .onnx model",
    )
    c.add_argument("--out", required=True, metavar="PATH", help="model.npz or model.onnx")
    c.add_argument(
        "--type",
        choices=TYPES,
        help="the cell of a state dict (a whole module "
        "knows its own): rnn (tanh), rnn_relu, lstm, gru or a *cell",
    )
    c.add_argument("--key", help="the checkpoint entry holding the state dict (e.g. model)")
    c.add_argument(
        "--prefix",
        help="strip this prefix from the keys (e.g. encoder.rnn.); "
        "found automatically when only one prefix fits",
    )
    c.add_argument(
        "--batch-first",
        action="store_true",
        help="a state dict's layer takes (B, T, I) input (a module knows its own)",
    )
    c.add_argument("--dtype", choices=["float32", "float64"], help="default: the weights'")
    c.add_argument(
        "--initial-state", action="store_true", help="ONNX output: add h0 (and c0) inputs"
    )
    return c


def _torch_load(path):
    import pickle

    import torch

    allowed = [getattr(torch.nn, name) for name in TORCH_CLASSES]
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        match = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
        what = f" (it holds {match.group(1)})" if match else ""
        raise ValueError(
            f"{path}: refused by torch.load(weights_only=True){what}: only tensors, "
            f"state dicts and torch.nn RNN/LSTM/GRU modules and cells are read; "
            f"save module.state_dict() instead"
        ) from None
    except Exception as e:
        raise ValueError(
            f"{path}: cannot read as a torch file: {type(e).__name__}: "
            f"{str(e).strip().splitlines()[0] if str(e).strip() else ''}"
        ) from None


def _find_prefix(keys):
    """The one prefix p with p + weight_ih_l0 (or p + weight_ih) among keys."""
    found = sorted(
        {
            k[: -len(tail)]
            for k in keys
            for tail in ("weight_ih_l0", "weight_ih")
            if k.endswith(tail)
        }
    )
    if len(found) > 1:
        raise ValueError(
            f"several recurrent layers in the state dict (prefixes {found}); "
            f"choose one with --prefix"
        )
    return found[0] if found else ""


def _model_from_torch_file(args):
    obj = _torch_load(args.source)
    if hasattr(obj, "state_dict") and not hasattr(obj, "keys"):  # a whole module
        model = from_torch(obj)
        expected = type(model).__name__.lower()
        if args.type and args.type.replace("_tanh", "").replace("_relu", "") != expected:
            raise ValueError(f"--type {args.type}: the file holds a {type(obj).__name__}")
        return model
    if args.key is not None:
        if not hasattr(obj, "keys") or args.key not in obj:
            have = list(obj.keys()) if hasattr(obj, "keys") else type(obj).__name__
            raise ValueError(f"--key {args.key!r}: not in the file (it holds {have})")
        obj = obj[args.key]
    if not hasattr(obj, "keys"):
        raise ValueError(f"{args.source}: holds a {type(obj).__name__}, not a state dict")
    prefix = args.prefix if args.prefix is not None else _find_prefix(list(obj.keys()))
    state = {
        k[len(prefix) :]: v for k, v in obj.items() if k.startswith(prefix) and hasattr(v, "detach")
    }
    if not args.type:
        raise ValueError("--type is required for a state dict (rnn, rnn_relu, lstm, gru, ...)")
    return layer_from_state_dict(state, args.type, args.batch_first)


def convert(args: argparse.Namespace) -> int:
    """Run `fastrnn convert` on parsed arguments; returns the exit status.
    Problems are ValueErrors (the command prints them)."""
    try:
        return _convert(args)
    except TypeError as e:
        raise ValueError(str(e)) from None


def _convert(args):
    src, out = args.source, args.out
    ext = os.path.splitext(out)[1].lower()
    if ext not in (".npz", ".onnx"):
        raise ValueError(f"--out {out!r}: expected a .npz or .onnx path")
    src_ext = os.path.splitext(src)[1].lower()
    if src_ext == ".onnx":
        model = fr_onnx.load(src).layer
        if model is None:
            raise ValueError(
                f"{src}: its recurrent nodes do not form one fastrnn layer (or "
                f"need the NumPy fallback); use fastrnn.onnx.load to run it"
            )
    elif src_ext == ".npz":
        model = serialization.load(src)
    else:
        model = _model_from_torch_file(args)
    if args.dtype and args.dtype != model.dtype.name:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="dropout is applied")
            cast = type(model)(**dict(model.config(), dtype=args.dtype, seed=0))
        cast.load_state_dict(model.state_dict())
        model = cast
    if ext == ".onnx":
        fr_onnx.save(model, out, initial_state=args.initial_state)
    else:
        model.save(out)
    print(f"wrote {out}: {model!r}")
    return 0
