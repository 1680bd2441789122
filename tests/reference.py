"""A plain float64 NumPy reference for fastrnn.

This is the oracle the tests compare fastrnn against. It is written for
reading, not speed: one function per cell, loops over time (and over the
sequences of a batch, so that `lengths` is just "how many steps this row
takes"). Everything is computed in float64 whatever the input dtype.

Conventions (PyTorch's, as torch.nn.RNN / LSTM / GRU define them):

  RNN   h' = act(W_ih x + b_ih + W_hh h + b_hh)                act = tanh | relu
  LSTM  gates i, f, g, o (rows of W_ih / W_hh in that order)
        i = sigmoid(W_ii x + b_ii + W_hi h + b_hi [+ p_i * c])
        f = sigmoid(W_if x + b_if + W_hf h + b_hf [+ p_f * c])
        g = tanh(W_ig x + b_ig + W_hg h + b_hg)
        c' = f * c + i * g
        o = sigmoid(W_io x + b_io + W_ho h + b_ho [+ p_o * c'])
        h' = o * tanh(c')
        (peephole vector weight_peep = [p_i, p_f, p_o], each of size H)
  GRU   gates r, z, n
        r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
        z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
        linear_before_reset=True  (PyTorch, ONNX linear_before_reset=1):
            n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
        linear_before_reset=False (original form, ONNX default):
            n = tanh(W_in x + b_in + W_hn (r * h) + b_hn)
        h' = (1 - z) * n + z * h

Layers take a state dict with PyTorch's names (weight_ih_l{k}[_reverse],
weight_hh_l{k}, bias_ih_l{k}, bias_hh_l{k}, weight_peep_l{k}); the number of
layers, bidirectionality, bias and peepholes are read from the keys present.

`lengths` follows PyTorch's packed sequences: row b takes lengths[b] steps;
outputs past that are zero; its final state is the state after its own last
step; the reverse direction starts at step lengths[b] - 1. A length of 0
leaves the output row zero and the final state equal to the initial state.
"""

import numpy as np

__all__ = [
    "sigmoid",
    "rnn_cell",
    "lstm_cell",
    "gru_cell",
    "cell_forward",
    "layer_forward",
    "layer_config",
    "num_gates",
]


def num_gates(mode):
    """Number of gate blocks in W_ih / W_hh: RNN 1, LSTM 4, GRU 3."""
    return {"rnn": 1, "lstm": 4, "gru": 3}[mode]


def sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def _affine(x, w, b):
    """x @ w.T (+ b). x is (..., in), w is (out, in), b is (out,) or None."""
    out = x @ w.T
    if b is not None:
        out = out + b
    return out


# --------------------------------------------------------------------------
# cells: one time step. x is (I,) or (B, I); h, c are (H,) or (B, H).
# --------------------------------------------------------------------------


def rnn_cell(x, h, w_ih, w_hh, b_ih=None, b_hh=None, nonlinearity="tanh"):
    pre = _affine(x, w_ih, b_ih) + _affine(h, w_hh, b_hh)
    if nonlinearity == "tanh":
        return np.tanh(pre)
    if nonlinearity == "relu":
        return np.maximum(pre, 0.0)
    raise ValueError(f"unknown nonlinearity {nonlinearity!r}")


def lstm_cell(x, h, c, w_ih, w_hh, b_ih=None, b_hh=None, w_peep=None):
    """h_new is o * tanh(c_new); a projected LSTM (w_hh (4H, P)) multiplies it
    by W_hr itself."""
    H = w_hh.shape[0] // 4
    gates = _affine(x, w_ih, b_ih) + _affine(h, w_hh, b_hh)
    a_i = gates[..., 0 * H : 1 * H]
    a_f = gates[..., 1 * H : 2 * H]
    a_g = gates[..., 2 * H : 3 * H]
    a_o = gates[..., 3 * H : 4 * H]
    if w_peep is not None:
        p_i, p_f, p_o = w_peep[0:H], w_peep[H : 2 * H], w_peep[2 * H : 3 * H]
        a_i = a_i + p_i * c  # i sees c(t-1)
        a_f = a_f + p_f * c  # f sees c(t-1)
    i = sigmoid(a_i)
    f = sigmoid(a_f)
    g = np.tanh(a_g)
    c_new = f * c + i * g
    if w_peep is not None:
        a_o = a_o + p_o * c_new  # o sees c(t)
    o = sigmoid(a_o)
    h_new = o * np.tanh(c_new)
    return h_new, c_new


def gru_cell(x, h, w_ih, w_hh, b_ih=None, b_hh=None, linear_before_reset=True):
    H = w_hh.shape[1]
    w_ir, w_iz, w_in = w_ih[0:H], w_ih[H : 2 * H], w_ih[2 * H : 3 * H]
    w_hr, w_hz, w_hn = w_hh[0:H], w_hh[H : 2 * H], w_hh[2 * H : 3 * H]
    if b_ih is None:
        b_ir = b_iz = b_in = None
    else:
        b_ir, b_iz, b_in = b_ih[0:H], b_ih[H : 2 * H], b_ih[2 * H : 3 * H]
    if b_hh is None:
        b_hr = b_hz = b_hn = None
    else:
        b_hr, b_hz, b_hn = b_hh[0:H], b_hh[H : 2 * H], b_hh[2 * H : 3 * H]

    r = sigmoid(_affine(x, w_ir, b_ir) + _affine(h, w_hr, b_hr))
    z = sigmoid(_affine(x, w_iz, b_iz) + _affine(h, w_hz, b_hz))
    if linear_before_reset:
        n = np.tanh(_affine(x, w_in, b_in) + r * _affine(h, w_hn, b_hn))
    else:
        n = np.tanh(_affine(x, w_in, b_in) + _affine(r * h, w_hn, b_hn))
    return (1.0 - z) * n + z * h


# --------------------------------------------------------------------------
# the cell API: parameters weight_ih, weight_hh, bias_ih, bias_hh, weight_peep
# --------------------------------------------------------------------------


def _f64(a):
    return None if a is None else np.asarray(a, dtype=np.float64)


def cell_forward(mode, params, x, state=None, nonlinearity="tanh", linear_before_reset=True):
    """One step of an RNNCell / LSTMCell / GRUCell with a cell state dict.

    x is (B, I) or (I,). state is None (zeros), h, or (h, c) for the LSTM.
    Returns h, or (h, c) for the LSTM.
    """
    p = {k: _f64(v) for k, v in params.items()}
    x = _f64(x)
    H = p["weight_hh"].shape[1]
    zeros = np.zeros(x.shape[:-1] + (H,))
    w = (p["weight_ih"], p["weight_hh"], p.get("bias_ih"), p.get("bias_hh"))
    if mode == "lstm":
        h, c = (zeros, zeros) if state is None else (_f64(state[0]), _f64(state[1]))
        return lstm_cell(x, h, c, *w, w_peep=p.get("weight_peep"))
    h = zeros if state is None else _f64(state)
    if mode == "gru":
        return gru_cell(x, h, *w, linear_before_reset=linear_before_reset)
    if mode == "rnn":
        return rnn_cell(x, h, *w, nonlinearity=nonlinearity)
    raise ValueError(f"unknown mode {mode!r}")


# --------------------------------------------------------------------------
# the layer: stacked layers, optional reverse direction, packed lengths
# --------------------------------------------------------------------------


def layer_config(params):
    """(num_layers, num_directions, bias, peephole) read from a state dict."""
    num_layers = 0
    while f"weight_ih_l{num_layers}" in params:
        num_layers += 1
    if num_layers == 0:
        raise ValueError("state dict has no weight_ih_l0")
    num_directions = 2 if "weight_ih_l0_reverse" in params else 1
    bias = "bias_ih_l0" in params
    peephole = "weight_peep_l0" in params
    return num_layers, num_directions, bias, peephole


def _run_direction(mode, w, x, h0, c0, lengths, reverse, nonlinearity, linear_before_reset):
    """One layer, one direction. x (T, B, I) float64; h0, c0 (B, H).

    Returns y (T, B, H) with zeros past each row's length, h_n, c_n (B, H)
    (c_n is None unless LSTM).
    """
    T, B, _ = x.shape
    H = w["weight_hh"].shape[1]
    y = np.zeros((T, B, H))
    h_n = np.zeros((B, H))
    c_n = np.zeros((B, H)) if mode == "lstm" else None
    cell_w = (w["weight_ih"], w["weight_hh"], w["bias_ih"], w["bias_hh"])
    for b in range(B):
        steps = range(lengths[b])
        if reverse:
            steps = reversed(steps)  # starts at this row's own last step
        h = h0[b]
        c = c0[b] if mode == "lstm" else None
        for t in steps:
            if mode == "lstm":
                h, c = lstm_cell(x[t, b], h, c, *cell_w, w_peep=w["weight_peep"])
            elif mode == "gru":
                h = gru_cell(x[t, b], h, *cell_w, linear_before_reset=linear_before_reset)
            else:
                h = rnn_cell(x[t, b], h, *cell_w, nonlinearity=nonlinearity)
            y[t, b] = h
        h_n[b] = h
        if mode == "lstm":
            c_n[b] = c
    return y, h_n, c_n


def layer_forward(
    mode,
    params,
    x,
    state=None,
    lengths=None,
    batch_first=False,
    nonlinearity="tanh",
    linear_before_reset=True,
):
    """Full RNN / LSTM / GRU layer stack, PyTorch semantics, in float64.

    mode: "rnn", "lstm" or "gru". params: a state dict with PyTorch names.
    x: (T, B, I), (B, T, I) if batch_first, or unbatched (T, I).
    state: None (zeros); h0 for RNN/GRU; (h0, c0) for LSTM; each (L*D, B, H)
    or (L*D, H) for unbatched input.
    lengths: None (all T) or B ints in [0, T].

    Returns (y, h_n) for RNN/GRU and (y, (h_n, c_n)) for LSTM, with
    y (T, B, D*H) (batch_first: (B, T, D*H); unbatched: (T, D*H)) and
    h_n, c_n (L*D, B, H) (unbatched: (L*D, H)).
    """
    if mode not in ("rnn", "lstm", "gru"):
        raise ValueError(f"unknown mode {mode!r}")
    p = {k: _f64(v) for k, v in params.items()}
    num_layers, D, bias, peephole = layer_config(p)
    H = p["weight_hh_l0"].shape[1]

    x = _f64(x)
    unbatched = x.ndim == 2
    if unbatched:
        x = x[:, None, :]  # (T, 1, I); batch_first ignored
        if state is not None:
            if mode == "lstm":
                state = (_f64(state[0])[:, None, :], _f64(state[1])[:, None, :])
            else:
                state = _f64(state)[:, None, :]
    elif batch_first:
        x = x.transpose(1, 0, 2)  # (T, B, I)
    T, B, _ = x.shape

    if lengths is None:
        lengths = [T] * B
    lengths = [int(n) for n in lengths]
    assert len(lengths) == B and all(0 <= n <= T for n in lengths)

    if state is None:
        h0 = np.zeros((num_layers * D, B, H))
        c0 = np.zeros((num_layers * D, B, H))
    elif mode == "lstm":
        h0, c0 = _f64(state[0]), _f64(state[1])
    else:
        h0, c0 = _f64(state), np.zeros((num_layers * D, B, H))

    h_n = np.zeros((num_layers * D, B, H))
    c_n = np.zeros((num_layers * D, B, H))
    layer_input = x
    for k in range(num_layers):
        outs = []
        for d in range(D):
            sfx = f"_l{k}" + ("_reverse" if d == 1 else "")
            w = {
                "weight_ih": p["weight_ih" + sfx],
                "weight_hh": p["weight_hh" + sfx],
                "bias_ih": p["bias_ih" + sfx] if bias else None,
                "bias_hh": p["bias_hh" + sfx] if bias else None,
                "weight_peep": p["weight_peep" + sfx] if peephole else None,
            }
            idx = k * D + d
            y_d, hn_d, cn_d = _run_direction(
                mode,
                w,
                layer_input,
                h0[idx],
                c0[idx],
                lengths,
                reverse=(d == 1),
                nonlinearity=nonlinearity,
                linear_before_reset=linear_before_reset,
            )
            outs.append(y_d)
            h_n[idx] = hn_d
            if mode == "lstm":
                c_n[idx] = cn_d
        layer_input = np.concatenate(outs, axis=2)  # (T, B, D*H)

    y = layer_input
    if unbatched:
        y, h_n, c_n = y[:, 0], h_n[:, 0], c_n[:, 0]
    elif batch_first:
        y = y.transpose(1, 0, 2)
    if mode == "lstm":
        return y, (h_n, c_n)
    return y, h_n
