"""The ONNX RNN, LSTM and GRU operators: attributes, the map between ONNX's
weight layout and fastrnn's, and the two ways a node is run.

fastrnn's engine runs a node when its layers can express it: the default
activations (RNN: Tanh or Relu, the same in both directions), no `clip`, no
`input_forget`, float32 or float64. Anything else runs through `numpy_node`,
a plain NumPy loop over time written from the operator definitions: slower,
computed in float64 and rounded to the input's dtype at the end.

ONNX conventions (opset 14; earlier opsets are the same without `layout`):
  W (D, G*H, I), R (D, G*H, H), B (D, 2*G*H) = [Wb, Rb], P (D, 3*H)
  LSTM gates i, o, f, c      fastrnn i, f, g, o;  P i, o, f -> weight_peep i, f, o
  GRU gates z, r, h          fastrnn r, z, n;     linear_before_reset default 0
  layout 0: X (T, B, I), Y (T, D, B, H), Y_h / Y_c / initial_h / initial_c (D, B, H)
  layout 1: X (B, T, I), Y (B, T, D, H), Y_h / Y_c / initial_h / initial_c (B, D, H)
  sequence_lens (B,): Y is zero past a sequence's length, Y_h / Y_c hold the
  state at its own last step (the reverse direction starts there); as in
  onnxruntime, a sequence of length 0 has zero Y_h and Y_c.
"""

import numpy as np

from .. import layers
from . import limits

GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
DEFAULT_ACTIVATIONS = {
    "RNN": ("tanh",),
    "GRU": ("sigmoid", "tanh"),
    "LSTM": ("sigmoid", "tanh", "tanh"),
}
# fastrnn gate block k is ONNX block ONNX_TO_FASTRNN[op][k] (and back)
ONNX_TO_FASTRNN = {"RNN": [0], "GRU": [1, 0, 2], "LSTM": [0, 2, 3, 1]}
FASTRNN_TO_ONNX = {"RNN": [0], "GRU": [1, 0, 2], "LSTM": [0, 3, 1, 2]}
PEEP_ORDER = [0, 2, 1]  # ONNX P i, o, f <-> fastrnn weight_peep i, f, o (its own inverse)
DIRECTIONS = {"forward": 1, "reverse": 1, "bidirectional": 2}
FLOATS = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
ENGINE_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


# name -> (function of x, alpha, beta; default alpha; default beta). Defaults
# are the ONNX operator definitions'; alpha and beta are consumed, in order,
# only by the functions that take them (onnxruntime's reading of the spec).
ACTIVATIONS = {
    "relu": (lambda x, a, b: np.maximum(x, 0), None, None),
    "tanh": (lambda x, a, b: np.tanh(x), None, None),
    "sigmoid": (lambda x, a, b: _sigmoid(x), None, None),
    "affine": (lambda x, a, b: a * x + b, 1.0, 0.0),
    "leakyrelu": (lambda x, a, b: np.where(x >= 0, x, a * x), 0.01, None),
    "thresholdedrelu": (lambda x, a, b: np.where(x > a, x, 0.0), 1.0, None),
    "scaledtanh": (lambda x, a, b: a * np.tanh(b * x), 1.0, 1.0),
    "hardsigmoid": (lambda x, a, b: np.clip(a * x + b, 0.0, 1.0), 0.2, 0.5),
    "elu": (lambda x, a, b: np.where(x >= 0, x, a * np.expm1(np.minimum(x, 0))), 1.0, None),
    "softsign": (lambda x, a, b: x / (1 + np.abs(x)), None, None),
    "softplus": (lambda x, a, b: np.logaddexp(0.0, x), None, None),
}
ACTIVATION_NAMES = (
    "Relu",
    "Tanh",
    "Sigmoid",
    "Affine",
    "LeakyRelu",
    "ThresholdedRelu",
    "ScaledTanh",
    "HardSigmoid",
    "Elu",
    "Softsign",
    "Softplus",
)


class Activation:
    __slots__ = ("name", "alpha", "beta")

    def __init__(self, name, alpha, beta):
        self.name, self.alpha, self.beta = name, alpha, beta

    def __call__(self, x):
        return ACTIVATIONS[self.name][0](x, self.alpha, self.beta)


def parse_activations(op, names, alphas, betas, D, where):
    """The activations attribute -> one tuple of Activation per direction."""
    n = len(DEFAULT_ACTIVATIONS[op])
    if names is None:
        names = list(DEFAULT_ACTIVATIONS[op]) * D
    names = [str(s).lower() for s in names]
    if len(names) == n and D == 2:
        names = names * 2  # one direction's list, used for both
    if len(names) != n * D:
        raise ValueError(
            f"{where}: activations: expected {n} names per direction ({n * D} for "
            f"{D} direction(s)), got {len(names)}"
        )
    alphas, betas = list(alphas or []), list(betas or [])
    acts = []
    for name in names:
        if name not in ACTIVATIONS:
            raise ValueError(
                f"{where}: unsupported activation {name!r}; ONNX lists "
                f"{', '.join(ACTIVATION_NAMES)}"
            )
        _, da, db = ACTIVATIONS[name]
        alpha = (float(alphas.pop(0)) if alphas else da) if da is not None else None
        beta = (float(betas.pop(0)) if betas else db) if db is not None else None
        acts.append(Activation(name, alpha, beta))
    return [tuple(acts[d * n : (d + 1) * n]) for d in range(D)]


def reorder(a, order, axis=0):
    """Gate blocks of `a` along `axis`, taken in `order`."""
    blocks = np.split(np.asarray(a), len(order), axis=axis)
    return np.concatenate([blocks[i] for i in order], axis=axis)


class RecurrentNode:
    """One ONNX RNN / LSTM / GRU node: its checked attributes, and `run`."""

    def __init__(self, op, attrs, where):
        self.op, self.where = op, where
        known = {
            "activation_alpha",
            "activation_beta",
            "activations",
            "clip",
            "direction",
            "hidden_size",
            "layout",
        }
        known |= {"LSTM": {"input_forget"}, "GRU": {"linear_before_reset"}, "RNN": set()}[op]
        unknown = set(attrs) - known
        if unknown:
            raise ValueError(f"{where}: unknown attribute(s) {sorted(unknown)} for {op}")
        self.direction = attrs.get("direction", "forward")
        if self.direction not in DIRECTIONS:
            raise ValueError(
                f"{where}: direction: expected forward, reverse or bidirectional, "
                f"got {self.direction!r}"
            )
        self.D = DIRECTIONS[self.direction]
        self.hidden_size = attrs.get("hidden_size")
        if self.hidden_size is not None and (
            not isinstance(self.hidden_size, int) or self.hidden_size < 1
        ):
            raise ValueError(
                f"{where}: hidden_size: expected a positive integer, got {self.hidden_size!r}"
            )
        self.layout = attrs.get("layout", 0)
        if self.layout not in (0, 1):
            raise ValueError(f"{where}: layout: expected 0 or 1, got {self.layout!r}")
        clip = attrs.get("clip")
        if clip is not None and not (isinstance(clip, float) and clip > 0):
            raise ValueError(f"{where}: clip: expected a positive float, got {clip!r}")
        self.clip = clip
        self.input_forget = bool(attrs.get("input_forget", 0))
        self.linear_before_reset = bool(attrs.get("linear_before_reset", 0))
        self.activations = parse_activations(
            op,
            attrs.get("activations"),
            attrs.get("activation_alpha"),
            attrs.get("activation_beta"),
            self.D,
            where,
        )
        names = [tuple(a.name for a in acts) for acts in self.activations]
        if op == "RNN":
            self.nonlinearity = names[0][0] if names[0][0] in ("tanh", "relu") else None
            same = all(n == names[0] for n in names)
            default_acts = self.nonlinearity is not None and same
        else:
            self.nonlinearity = None
            default_acts = all(n == DEFAULT_ACTIVATIONS[op] for n in names)
        # what fastrnn's engine expresses (the dtype is checked per run)
        self.engine = default_acts and clip is None and not self.input_forget

    # ------------------------------------------------------------ checking

    def check(self, X, W, R, B, seq_lens, h0, c0, P):
        """Shapes and dtypes of the inputs (None: omitted); returns (T, Bt, I, H)."""
        where, D, G = self.where, self.D, GATES[self.op]
        if X is None or W is None or R is None:
            raise ValueError(f"{where}: inputs X, W and R are required")
        for name, a in (
            ("X", X),
            ("W", W),
            ("R", R),
            ("B", B),
            ("initial_h", h0),
            ("initial_c", c0),
            ("P", P),
        ):
            if a is not None and a.dtype not in FLOATS:
                raise ValueError(
                    f"{where}: input {name}: expected float16, float32 or float64, got {a.dtype}"
                )
            if a is not None and a.dtype != X.dtype:
                raise ValueError(
                    f"{where}: input {name} has dtype {a.dtype}, X has {X.dtype}; "
                    f"ONNX requires one type"
                )
        if X.ndim != 3 or W.ndim != 3 or R.ndim != 3:
            raise ValueError(
                f"{where}: X, W and R must be 3-D, got shapes {X.shape}, {W.shape}, {R.shape}"
            )
        H = R.shape[2]
        if self.hidden_size is not None and self.hidden_size != H:
            raise ValueError(
                f"{where}: hidden_size attribute {self.hidden_size} does not match "
                f"R of shape {R.shape} (hidden size {H})"
            )
        T, Bt, I = X.shape if self.layout == 0 else (X.shape[1], X.shape[0], X.shape[2])
        want = {
            "W": (D, G * H, I),
            "R": (D, G * H, H),
            "B": (D, 2 * G * H),
            "P": (D, 3 * H),
            "initial_h": (D, Bt, H) if self.layout == 0 else (Bt, D, H),
        }
        want["initial_c"] = want["initial_h"]
        for name, a in (
            ("W", W),
            ("R", R),
            ("B", B),
            ("initial_h", h0),
            ("initial_c", c0),
            ("P", P),
        ):
            if a is not None and a.shape != want[name]:
                raise ValueError(
                    f"{where}: input {name}: expected shape {want[name]} (direction "
                    f"{self.direction}, hidden_size {H}), got {a.shape}"
                )
        if seq_lens is not None:
            if seq_lens.dtype.kind not in "iu":
                raise ValueError(f"{where}: sequence_lens: expected integers, got {seq_lens.dtype}")
            if seq_lens.shape != (Bt,):
                raise ValueError(
                    f"{where}: sequence_lens: expected shape ({Bt},), got {seq_lens.shape}"
                )
            if Bt and (seq_lens.min() < 0 or seq_lens.max() > T):
                raise ValueError(
                    f"{where}: sequence_lens: expected values in [0, {T}], got min "
                    f"{seq_lens.min()} max {seq_lens.max()}"
                )
        return T, Bt, I, H

    def check_weights(self, W, R, B, P):
        """Load-time check of constant weights (X unknown yet)."""
        for name, a in (("W", W), ("R", R), ("B", B), ("P", P)):
            if a is not None and a.dtype not in FLOATS:
                raise ValueError(
                    f"{self.where}: input {name}: expected float16, float32 or "
                    f"float64, got {a.dtype}"
                )
        if W.ndim != 3 or R.ndim != 3:
            raise ValueError(f"{self.where}: W and R must be 3-D, got shapes {W.shape}, {R.shape}")
        H, I = R.shape[2], W.shape[2]
        fake_x = np.empty((0, 0, I), W.dtype)  # T = B = 0: checks all but X's sizes
        self.check(fake_x, W, R, B, None, None, None, P)
        return I, H

    # ------------------------------------------------------------ mapping

    def fastrnn_params(self, W, R, B, P):
        """The node's weights under fastrnn names of a one-layer layer
        (suffixes _l0 and, bidirectional, _l0_reverse; a reverse-only node
        is stored as _l0 and run on reversed sequences)."""
        order = ONNX_TO_FASTRNN[self.op]
        params = {}
        for d in range(self.D):
            sfx = "_l0" + ("_reverse" if d else "")
            params["weight_ih" + sfx] = reorder(W[d], order)
            params["weight_hh" + sfx] = reorder(R[d], order)
            if B is not None:
                wb, rb = np.split(B[d], 2)
                params["bias_ih" + sfx] = reorder(wb, order)
                params["bias_hh" + sfx] = reorder(rb, order)
            if P is not None:
                params["weight_peep" + sfx] = reorder(P[d], PEEP_ORDER)
        return params

    def layer_config(self, I, H, bias, peephole):
        """(class name, keyword arguments) of the equivalent one-layer fastrnn layer."""
        kw = dict(input_size=I, hidden_size=H, num_layers=1, bias=bias, bidirectional=self.D == 2)
        if self.op == "RNN":
            return "RNN", dict(kw, nonlinearity=self.nonlinearity)
        if self.op == "GRU":
            return "GRU", dict(kw, linear_before_reset=self.linear_before_reset)
        return "LSTM", dict(kw, peephole=peephole)

    def make_layer(self, W, R, B, P):
        I, H = W.shape[2], R.shape[2]
        name, kw = self.layer_config(I, H, B is not None, P is not None)
        layer = getattr(layers, name)(dtype=W.dtype, seed=0, **kw)
        layer.load_state_dict(self.fastrnn_params(W, R, B, P))
        return layer

    # ------------------------------------------------------------ running

    def run(
        self, X, W, R, B=None, seq_lens=None, h0=None, c0=None, P=None, layer=None, n_outputs=3
    ):
        """The node's outputs (Y, Y_h, Y_c; Y_c None but for LSTM) in ONNX's shapes.
        `layer`: a prebuilt engine layer for constant weights."""
        T, Bt, I, H = self.check(X, W, R, B, seq_lens, h0, c0, P)
        limits.check_alloc((T, self.D, Bt, H), np.float64, self.where)  # Y, at worst float64
        if self.op != "LSTM":
            c0 = None
        if self.layout == 1:  # work in layout 0
            X = X.transpose(1, 0, 2)
            h0 = None if h0 is None else h0.transpose(1, 0, 2)
            c0 = None if c0 is None else c0.transpose(1, 0, 2)
        lengths = None if seq_lens is None else np.asarray(seq_lens, np.int64)
        if self.engine and X.dtype in ENGINE_DTYPES and T > 0 and Bt > 0:
            Y, Y_h, Y_c = self._run_engine(X, W, R, B, lengths, h0, c0, P, layer)
        else:
            Y, Y_h, Y_c = numpy_node(self, X, W, R, B, lengths, h0, c0, P)
        if lengths is not None and Bt and lengths.min() == 0:
            empty = lengths == 0  # onnxruntime: zero final states
            Y_h[:, empty] = 0
            if Y_c is not None:
                Y_c[:, empty] = 0
        if self.layout == 1:
            Y = np.ascontiguousarray(Y.transpose(2, 0, 1, 3))
            Y_h = np.ascontiguousarray(Y_h.transpose(1, 0, 2))
            Y_c = None if Y_c is None else np.ascontiguousarray(Y_c.transpose(1, 0, 2))
        return Y, Y_h, Y_c

    def _run_engine(self, X, W, R, B, lengths, h0, c0, P, layer):
        """Through a fastrnn layer; X (T, B, I), states (D, B, H)."""
        T, Bt, _ = X.shape
        D, H = self.D, R.shape[2]
        if layer is None:
            layer = self.make_layer(W, R, B, P)
        state = None
        if self.op == "LSTM" and (h0 is not None or c0 is not None):
            zeros = np.zeros((D, Bt, H), X.dtype)
            state = (zeros if h0 is None else h0, zeros if c0 is None else c0)
        elif h0 is not None:
            state = h0
        reverse_only = self.direction == "reverse"
        if reverse_only:
            index = _reversal_index(T, Bt, lengths)
            X = np.take_along_axis(X, index[:, :, None], axis=0)
        y, s = layer(X, state, lengths=None if lengths is None else lengths.astype(np.int32))
        if reverse_only:
            y = np.take_along_axis(y, index[:, :, None], axis=0)
        h_n, c_n = s if self.op == "LSTM" else (s, None)
        Y = np.ascontiguousarray(y.reshape(T, Bt, D, H).transpose(0, 2, 1, 3))
        return Y, h_n, c_n


def _reversal_index(T, B, lengths):
    """index[t, b]: the time step that a reverse pass over sequence b sees at
    t, so that a forward pass over x[index] is the reverse pass over x (the
    permutation is its own inverse). Steps past a sequence's end stay put."""
    t = np.arange(T)[:, None]
    if lengths is None:
        return np.broadcast_to(T - 1 - t, (T, B)).copy()
    L = lengths[None, :]
    return np.where(t < L, L - 1 - t, t)


# ---------------------------------------------------------------- NumPy fallback


def numpy_node(node, X, W, R, B, lengths, h0, c0, P):
    """The operator definition, step by step in float64: X (T, B, I), states
    (D, B, H) -> Y (T, D, B, H), Y_h (D, B, H), Y_c (D, B, H) or None."""
    T, Bt, _ = X.shape
    D, G, H = node.D, GATES[node.op], R.shape[2]
    f64 = np.float64
    Y = np.zeros((T, D, Bt, H), f64)
    Y_h = np.zeros((D, Bt, H), f64)
    Y_c = np.zeros((D, Bt, H), f64) if node.op == "LSTM" else None
    lengths = np.full(Bt, T) if lengths is None else lengths
    for d in range(D):
        reverse = node.direction == "reverse" or d == 1
        bias = np.zeros(2 * G * H) if B is None else B[d].astype(f64)
        h = np.zeros((Bt, H)) if h0 is None else h0[d].astype(f64)
        c = np.zeros((Bt, H)) if c0 is None else c0[d].astype(f64)
        peep = np.zeros(3 * H) if P is None else P[d].astype(f64)
        xw = X.astype(f64) @ W[d].astype(f64).T + bias[: G * H]  # (T, B, G*H)
        Rd, Rb = R[d].astype(f64), bias[G * H :]
        step = {"RNN": _rnn_step, "GRU": _gru_step, "LSTM": _lstm_step}[node.op]
        for t in range(T - 1, -1, -1) if reverse else range(T):
            active = (t < lengths)[:, None]
            h_new, c_new = step(node, node.activations[d], xw[t], h, c, Rd, Rb, peep)
            Y[t, d] = np.where(active, h_new, 0.0)
            h = np.where(active, h_new, h)
            if c_new is not None:
                c = np.where(active, c_new, c)
        Y_h[d] = h
        if Y_c is not None:
            Y_c[d] = c
    dt = X.dtype
    return Y.astype(dt), Y_h.astype(dt), None if Y_c is None else Y_c.astype(dt)


def _clip(node, x):
    return x if node.clip is None else np.clip(x, -node.clip, node.clip)


def _rnn_step(node, acts, xw, h, c, R, Rb, peep):
    # Ht = f(Xt W^T + Ht-1 R^T + Wb + Rb)
    (f,) = acts
    return f(_clip(node, xw + h @ R.T + Rb)), None


def _gru_step(node, acts, xw, h, c, R, Rb, peep):
    # zt = f(Xt Wz^T + Ht-1 Rz^T + Wbz + Rbz); rt likewise
    # ht = g(Xt Wh^T + rt * (Ht-1 Rh^T + Rbh) + Wbh)   linear_before_reset != 0
    # ht = g(Xt Wh^T + (rt * Ht-1) Rh^T + Rbh + Wbh)   linear_before_reset = 0
    # Ht = (1 - zt) * ht + zt * Ht-1
    f, g = acts
    H = h.shape[1]
    xz, xr, xh = xw[:, :H], xw[:, H : 2 * H], xw[:, 2 * H :]
    Rz, Rr, Rh = R[:H], R[H : 2 * H], R[2 * H :]
    z = f(_clip(node, xz + h @ Rz.T + Rb[:H]))
    r = f(_clip(node, xr + h @ Rr.T + Rb[H : 2 * H]))
    if node.linear_before_reset:
        n = g(_clip(node, xh + r * (h @ Rh.T + Rb[2 * H :])))
    else:
        n = g(_clip(node, xh + (r * h) @ Rh.T + Rb[2 * H :]))
    return (1 - z) * n + z * h, None


def _lstm_step(node, acts, xw, h, c, R, Rb, peep):
    # it = f(Xt Wi^T + Ht-1 Ri^T + Pi * Ct-1 + Wbi + Rbi)
    # ft = f(Xt Wf^T + Ht-1 Rf^T + Pf * Ct-1 + Wbf + Rbf)   (input_forget: ft = 1 - it)
    # ct = g(Xt Wc^T + Ht-1 Rc^T + Wbc + Rbc)
    # Ct = ft * Ct-1 + it * ct
    # ot = f(Xt Wo^T + Ht-1 Ro^T + Po * Ct + Wbo + Rbo)
    # Ht = ot * h(Ct)
    f, g, hf = acts
    H = h.shape[1]
    gates = xw + h @ R.T + Rb
    gi, go, gf, gc = (gates[:, k * H : (k + 1) * H] for k in range(4))
    pi, po, pf = peep[:H], peep[H : 2 * H], peep[2 * H :]
    i = f(_clip(node, gi + pi * c))
    fg = 1 - i if node.input_forget else f(_clip(node, gf + pf * c))
    c_new = fg * c + i * g(_clip(node, gc))
    o = f(_clip(node, go + po * c_new))
    return o * hf(c_new), c_new
