"""`load`: an ONNX graph as a Model, evaluated node by node in topological
order (recurrent nodes by recurrent.RecurrentNode, the rest by ops.OPS),
and `Model.layer`, the one fastrnn layer its recurrent nodes form, if any.
See the package docstring for what is supported."""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

from .ops import OPS
from .proto import DTYPES, attributes, constant_value, parse, tensor_to_array, type_name
from .recurrent import GATES, RecurrentNode

if TYPE_CHECKING:
    import os

    import onnx
    from numpy.typing import ArrayLike

    from ..cells import GRUCell, LSTMCell, RNNCell
    from ..layers import GRU, LSTM, RNN

RECURRENT = tuple(GATES)  # "RNN", "GRU", "LSTM"
MAX_OUTPUTS = {"RNN": 2, "GRU": 2, "LSTM": 3, "Dropout": 2, "Split": None}
DOMAINS = ("", "ai.onnx")


def load(model: str | os.PathLike[str] | bytes | onnx.ModelProto) -> Model:
    """Read an ONNX model (a path, bytes, or an onnx.ModelProto) as a Model
    that fastrnn evaluates. Needs the onnx package (not onnxruntime).

    Nothing in the file is executed and external data is refused. Raises
    ValueError, naming the node, for an unsupported operator or attribute,
    a graph with a cycle or an undefined input, mismatched dtypes, or a
    tensor over fastrnn.onnx.limits.MAX_TENSOR_BYTES; TypeError for a
    `model` of another type. See fastrnn.onnx for what is supported."""
    return Model(parse(model))


class _Input:
    __slots__ = ("name", "dtype", "shape")

    def __init__(self, vi, where):
        t = vi.type
        if t.WhichOneof("value") not in (None, "tensor_type"):
            raise ValueError(
                f"{where}: only tensor inputs are supported, got {t.WhichOneof('value')}"
            )
        self.name = vi.name
        code = t.tensor_type.elem_type
        if code and code not in DTYPES:
            raise ValueError(f"{where}: element type {type_name(code)} is not supported")
        self.dtype = DTYPES.get(code)
        self.shape = None
        if t.tensor_type.HasField("shape"):
            self.shape = [
                d.dim_value if d.HasField("dim_value") else None for d in t.tensor_type.shape.dim
            ]


class _Node:
    """A node ready to evaluate: `fn(node, inputs) -> outputs`."""

    __slots__ = (
        "op",
        "where",
        "inputs",
        "outputs",
        "attrs",
        "opset",
        "fn",
        "n_outputs",
        "recurrent",
        "layer",
        "params",
    )
    attrs: dict[str, Any]
    fn: Callable[..., Any]

    def __init__(self, proto, index, opset):
        self.op = proto.op_type
        self.where = (
            f"node {index} ({self.op} {proto.name!r})"
            if proto.name
            else f"node {index} ({self.op})"
        )
        self.inputs = list(proto.input)
        self.outputs = list(proto.output)
        self.n_outputs = len(self.outputs)
        self.opset = opset
        self.recurrent = self.layer = self.params = None


# ---------------------------------------------------------------- the model


class Model:
    """An ONNX graph evaluated by fastrnn (made by fastrnn.onnx.load).
    `run(output_names, feeds)` as onnxruntime's InferenceSession.run.

    Attributes: `input_names`, the graph inputs the feeds must give
    (inputs with an initializer as default are left out, and may still be
    fed); `output_names`; `opset`, the default domain's opset version;
    `layer`, the equivalent fastrnn layer or None (see the fastrnn.onnx
    docstring).
    """

    input_names: list[str]
    output_names: list[str]
    opset: int
    layer: RNN | LSTM | GRU | RNNCell | LSTMCell | GRUCell | None

    def __init__(self, proto: onnx.ModelProto) -> None:
        if not proto.HasField("graph"):
            raise ValueError("model: no graph (empty or truncated file?)")
        g = proto.graph
        opsets = [o.version for o in proto.opset_import if o.domain in DOMAINS]
        if not opsets:
            raise ValueError("model: no opset for the default ONNX domain")
        self.opset = int(opsets[0])
        if g.sparse_initializer:
            raise ValueError("model: sparse initializers are not supported")
        # names whose value is fixed by the file (initializers, Constant nodes)
        self._constants: dict[str, np.ndarray] = {}
        for t in g.initializer:
            if not t.name or t.name in self._constants:
                raise ValueError(f"model: initializer name {t.name!r} empty or repeated")
            arr = tensor_to_array(t, f"initializer {t.name!r}")
            arr.flags.writeable = False
            self._constants[t.name] = arr
        self._inputs = [_Input(vi, f"graph input {vi.name!r}") for vi in g.input]
        names = [i.name for i in self._inputs]
        if len(set(names)) != len(names) or "" in names:
            raise ValueError(f"model: graph input names empty or repeated: {names}")
        # an initializer that is also a graph input is a default, overridable by a feed
        self._defaults = {n: self._constants.pop(n) for n in names if n in self._constants}
        self.input_names = [n for n in names if n not in self._defaults]
        self.output_names = [o.name for o in g.output]
        if not self.output_names or "" in self.output_names:
            raise ValueError("model: the graph declares no (or an unnamed) output")
        self._nodes = self._read_nodes(g)
        self._order = self._toposort()
        self._producer = {o: n for n in self._order for o in n.outputs if o}
        # output names -> the nodes they need, in order
        self._plans: dict[tuple[str, ...], list[_Node]] = {}
        for node in self._order:
            if node.op in RECURRENT:
                self._prepare_recurrent(node)
        self.layer = self._assemble_layer()

    # ------------------------------------------------------------ loading

    def _read_nodes(self, g):
        nodes, unsupported = [], []
        produced = set(self._constants) | {i.name for i in self._inputs}
        for k, p in enumerate(g.node):
            node = _Node(p, k, self.opset)
            if p.domain not in DOMAINS or not (
                node.op in OPS or node.op in RECURRENT or node.op == "Constant"
            ):
                unsupported.append(f"{p.domain + ':' if p.domain else ''}{node.op} ({node.where})")
                continue
            node.attrs = attributes(p, node.where)
            limit = MAX_OUTPUTS.get(node.op, 1)
            if limit is not None and node.n_outputs > limit:
                raise ValueError(
                    f"{node.where}: {node.n_outputs} outputs, {node.op} has at most {limit}"
                )
            for out in node.outputs:
                if out and out in produced:
                    raise ValueError(f"{node.where}: output {out!r} is produced twice")
                produced.add(out)
            if node.op == "Constant":
                if node.n_outputs != 1:
                    raise ValueError(f"{node.where}: Constant has one output")
                value = constant_value(node.attrs, node.where)
                value.flags.writeable = False
                self._constants[node.outputs[0]] = value
                continue
            node.fn = OPS.get(node.op, _run_recurrent)
            nodes.append(node)
        if unsupported:
            raise ValueError(
                f"model: unsupported ONNX operator(s): {', '.join(unsupported)}. "
                f"fastrnn.onnx evaluates RNN, LSTM, GRU, Constant and "
                f"{', '.join(sorted(OPS))}"
            )
        missing = [o for o in self.output_names if o not in produced]
        if missing:
            raise ValueError(f"model: graph output(s) {missing} are produced by no node")
        return nodes

    def _toposort(self):
        """Kahn's algorithm; ValueError on a cycle or an input nobody produces."""
        known = set(self._constants) | set(self._defaults) | set(self.input_names)
        producer = {o: n for n in self._nodes for o in n.outputs if o}
        deps = {}
        for node in self._nodes:
            deps[id(node)] = set()
            for name in node.inputs:
                if not name or name in known:
                    continue
                if name not in producer:
                    raise ValueError(
                        f"{node.where}: input {name!r} is produced by no node, "
                        f"initializer or graph input"
                    )
                deps[id(node)].add(id(producer[name]))
        users = {}
        for node in self._nodes:
            for k in deps[id(node)]:
                users.setdefault(k, []).append(node)
        waiting = {k: len(d) for k, d in deps.items()}
        ready = collections.deque(n for n in self._nodes if waiting[id(n)] == 0)
        order = []
        while ready:
            node = ready.popleft()
            order.append(node)
            for user in users.get(id(node), ()):
                waiting[id(user)] -= 1
                if waiting[id(user)] == 0:
                    ready.append(user)
        if len(order) != len(self._nodes):
            # drop the nodes that merely wait on a cycle: what is left feeds itself
            stuck = {id(n): n for n in self._nodes if waiting[id(n)] > 0}
            while True:
                tail = [k for k in stuck if not any(id(u) in stuck for u in users.get(k, ()))]
                if not tail:
                    break
                for k in tail:
                    del stuck[k]
            names = [n.where for n in self._nodes if id(n) in stuck]
            raise ValueError(f"model: the graph has a cycle through {', '.join(names)}")
        return order

    def _prepare_recurrent(self, node):
        """Check the node's attributes; with constant weights, check them
        and build the fastrnn layer that runs it (when the engine can)."""
        most = 8 if node.op == "LSTM" else 6  # GRU / RNN have no initial_c, P
        if len(node.inputs) > most:
            raise ValueError(
                f"{node.where}: {len(node.inputs)} inputs, {node.op} has at most {most}"
            )
        node.recurrent = RecurrentNode(node.op, node.attrs, node.where)
        names = (node.inputs + [""] * 8)[:8]
        W, R, B, P = (self._constants.get(names[k]) if names[k] else None for k in (1, 2, 3, 7))
        if W is None or R is None or (names[3] and B is None) or (names[7] and P is None):
            return  # weights arrive at run time
        node.recurrent.check_weights(W, R, B, P)
        if node.recurrent.engine and W.dtype in (np.float32, np.float64):
            node.layer = node.recurrent.make_layer(W, R, B, P)
            node.params = node.recurrent.fastrnn_params(W, R, B, P)

    # ------------------------------------------------------------ running

    def run(
        self,
        output_names: Sequence[str] | Mapping[str, ArrayLike] | None = None,
        feeds: Mapping[str, ArrayLike] | None = None,
    ) -> list[np.ndarray]:
        """Evaluate the graph, as onnxruntime's InferenceSession.run:
        output_names (a list, or None for all graph outputs), feeds (a dict
        input name -> array, of each input's declared dtype and shape).
        Returns a list of arrays in the order of output_names. `run(feeds)`
        is short for `run(None, feeds)`. Raises ValueError for an unknown or
        missing input, a feed of the wrong dtype or shape, or an unknown
        output name; TypeError when feeds is not a mapping."""
        if feeds is None and hasattr(output_names, "keys"):
            output_names, feeds = None, output_names
        if feeds is None:
            feeds = {}
        if not hasattr(feeds, "keys"):
            raise TypeError(f"feeds: expected a dict name -> array, got {type(feeds).__name__}")
        wanted = self.output_names if output_names is None else list(output_names)
        env = dict(self._constants)
        env.update(self._defaults)
        env.update(self._check_feeds(feeds))
        for name in wanted:
            if name not in env and name not in self._producer:
                raise ValueError(
                    f"output_names: {name!r} is not a value of this graph; "
                    f"outputs are {self.output_names}"
                )
        plan = self._plans.get(tuple(wanted))
        if plan is None:
            plan = self._plans[tuple(wanted)] = self._needed(wanted)
        for node in plan:
            ins = [env[n] if n else None for n in node.inputs]
            outs = node.fn(node, ins)
            for name, value in zip(node.outputs, outs):
                if name:
                    env[name] = value
        return [env[n] if env[n].flags.writeable else env[n].copy() for n in wanted]

    def _check_feeds(self, feeds):
        expected = {i.name: i for i in self._inputs}
        out = {}
        for name, value in feeds.items():
            if name not in expected:
                raise ValueError(
                    f"feeds: {name!r} is not an input of this graph; inputs are {self.input_names}"
                )
            spec = expected[name]
            try:
                arr = np.asarray(value)
            except Exception as e:
                raise ValueError(f"feeds[{name!r}]: not an array ({e})") from None
            if spec.dtype is not None and arr.dtype != spec.dtype:
                raise ValueError(f"feeds[{name!r}]: expected dtype {spec.dtype}, got {arr.dtype}")
            if spec.dtype is None and arr.dtype not in DTYPES.values():
                raise ValueError(f"feeds[{name!r}]: dtype {arr.dtype} is not supported")
            if spec.shape is not None:
                if arr.ndim != len(spec.shape) or any(
                    d is not None and d != s for d, s in zip(spec.shape, arr.shape)
                ):
                    shown = tuple("?" if d is None else d for d in spec.shape)
                    raise ValueError(f"feeds[{name!r}]: expected shape {shown}, got {arr.shape}")
            out[name] = arr
        missing = [n for n in self.input_names if n not in out]
        if missing:
            raise ValueError(f"feeds: missing input(s) {missing}")
        return out

    def _needed(self, wanted):
        """The nodes the wanted values depend on, in topological order."""
        producer = self._producer
        need, stack = set(), [producer[n] for n in wanted if n in producer]
        while stack:
            node = stack.pop()
            if id(node) in need:
                continue
            need.add(id(node))
            stack.extend(producer[n] for n in node.inputs if n in producer)
        return [n for n in self._order if id(n) in need]

    # ------------------------------------------------------------ one layer

    def _assemble_layer(self):
        """The fastrnn layer equal to the recurrent nodes, or None."""
        rec = [n for n in self._order if n.op in RECURRENT]
        if not rec or any(n.layer is None for n in rec):
            return None
        r0, base = rec[0].recurrent, rec[0].layer.config()
        if r0.direction == "reverse":
            return None
        for n in rec[1:]:
            same = (
                n.op == rec[0].op
                and n.recurrent.layout == r0.layout
                and n.recurrent.direction == r0.direction
                and dict(n.layer.config(), input_size=base["input_size"]) == base
            )
            if not same or n.layer.input_size != r0.D * base["hidden_size"]:
                return None
        if not all(self._feeds_next(prev, n, r0.D) for prev, n in zip(rec, rec[1:])):
            return None
        params = {}
        for k, n in enumerate(rec):
            for name, value in n.params.items():
                params[name.replace("_l0", f"_l{k}")] = value
        x = self._producer.get(rec[0].inputs[0])
        batch_first = r0.layout == 1 or (
            x is not None and x.op == "Transpose" and x.attrs.get("perm") == [1, 0, 2]
        )
        layer = type(rec[0].layer)(
            **dict(base, num_layers=len(rec), batch_first=batch_first, seed=0)
        )
        layer.load_state_dict(params)
        return layer

    def _feeds_next(self, prev, node, D):
        """Whether `node`'s X is `prev`'s Y with the direction axis merged
        into the features: Squeeze of the direction axis (D = 1) or
        Transpose (layout 0) + Reshape to [0, 0, -1] / [0, 0, D*H]."""
        producer = self._producer
        layout = prev.recurrent.layout
        y = prev.outputs[0] if prev.outputs else ""
        dir_axis = 1 if layout == 0 else 2
        name = node.inputs[0]
        chain = []
        while name in producer and producer[name] is not prev:
            p = producer[name]
            if p.op not in ("Squeeze", "Reshape", "Transpose", "Identity") or len(chain) > 3:
                return False
            chain.append(p)
            name = p.inputs[0]
        if name != y or not y:
            return False
        chain.reverse()  # from prev's Y to node's X
        ops = [p.op for p in chain if p.op != "Identity"]
        steps = [p for p in chain if p.op != "Identity"]
        if ops == ["Squeeze"]:
            return D == 1 and self._const_list(steps[0], 1, "axes") in ([dir_axis], [dir_axis - 4])
        if layout == 0 and ops == ["Transpose", "Reshape"]:
            return steps[0].attrs.get("perm") == [0, 2, 1, 3] and self._merges_last(
                steps[1], D, prev
            )
        if ops == ["Reshape"] and (D == 1 or layout == 1):
            return self._merges_last(steps[0], D, prev)
        return False

    def _const_list(self, node, k, attr):
        if len(node.inputs) > k and node.inputs[k]:
            v = self._constants.get(node.inputs[k])
            return None if v is None else [int(x) for x in np.asarray(v).reshape(-1)]
        return node.attrs.get(attr)

    def _merges_last(self, reshape, D, prev):
        shape = self._const_list(reshape, 1, "shape")
        H = prev.layer.hidden_size
        return (
            shape is not None
            and len(shape) == 3
            and shape[:2] == [0, 0]
            and shape[2] in (-1, D * H)
            and not reshape.attrs.get("allowzero", 0)
        )

    def __repr__(self):
        return (
            f"fastrnn.onnx.Model(inputs={self.input_names}, outputs={self.output_names}, "
            f"opset={self.opset}, nodes={len(self._order)}, "
            f"layer={self.layer!r})"
        )


def _run_recurrent(node, inputs):
    ins = (list(inputs) + [None] * 8)[:8]
    Y, Y_h, Y_c = node.recurrent.run(*ins, layer=node.layer)
    return [Y, Y_h, Y_c][: node.n_outputs]
