"""Truncated backpropagation through time over B contiguous streams.

The data is a long sequence laid out as B streams side by side, inputs
(N, B, ...) and targets (N, B), as char-rnn splits a text: stream b is one
contiguous stretch of it, and the state of stream b at the end of a window is
where stream b goes on in the next one.

TBPTT(k1, k2) as Williams & Peng: every update advances k1 steps and
backpropagates through the last k2 >= k1 steps. Exactly what one update does,
for the window of fresh steps [s, e = s + k1) (shorter at the end of the data):

1. forward over [a, e), a = max(s - (k2 - k1), start of the epoch), from the
   state carried into step a as a VALUE, with the current weights (the k2 - k1
   context steps are recomputed, so forward and backward use one set of
   weights);
2. the loss (mean over the fresh steps [s, e) only, by default) is taken on
   the outputs of [s, e); the context steps [a, s) get no loss of their own,
   only gradient flowing back from the fresh steps;
3. gradients zeroed, then backward over [a, e); the gradient w.r.t. the
   state entering a is dropped, so no gradient crosses into an earlier window;
4. gradient clipping (optional) and one optimizer step. The (clipped)
   gradients of the update stay in the modules' .grads until the next one.

The state entering e (the carried state) and the one entering the next
window's a are kept as plain arrays. With k2 = k1 (the default) windows do
not overlap and this is the usual TBPTT of char-rnn.

Resets: a boolean mask (N, B), True at (t, b) where a new document starts in
stream b: the state of stream b entering step t is set to zero, so neither
values nor gradients cross a document boundary. After the last window of the
data the next window starts again at step 0 from a zero state (a new epoch).

The model is anything with the layers' training API:
    out, state_n, cache = model.forward(x, state)      # state None: zeros
    dx, dstate0 = model.backward(dout, cache, dstate)   # grads accumulate
and the loss a callable (out, targets) -> (loss, dout), by default
fastrnn.loss.cross_entropy with reduction 'mean'.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np

from .loss import cross_entropy
from .optim import clip_grad_norm_, clip_grad_value_

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

    from .optim import Optimizer


def map_state(state: Any, fn: Callable[[np.ndarray], Any]) -> Any:
    """Apply fn to every array of a state: None, an array, or a tuple of them
    (an LSTM's (h, c))."""
    if state is None:
        return None
    if isinstance(state, (tuple, list)):
        return tuple(None if s is None else fn(s) for s in state)
    return fn(state)


def _zero_streams(state, reset):
    """The state with streams where `reset` (B,) is True set to zero; states
    are (L*D, B, H) arrays."""
    if state is None or not reset.any():
        return state

    def zero(s):
        s = s.copy()
        s[:, reset] = 0
        return s

    return map_state(state, zero)


def _state_arrays(state):
    """A state as a list of arrays and its kind, for saving."""
    if state is None:
        return [], "none"
    if isinstance(state, (tuple, list)):
        return list(state), "tuple"
    return [state], "array"


def _state_from_arrays(arrays, kind):
    if kind == "none":
        return None
    return tuple(arrays) if kind == "tuple" else arrays[0]


class TBPTT:
    """Walks inputs (N, B, ...) / targets (N, B) in windows, training the
    model (see the module docstring for exactly what one update does).

        tb = TBPTT(model, optimizer, inputs, targets, k1=64, clip_norm=5.0,
                   resets=doc_starts)
        for _ in range(1000):
            loss = tb.step()            # the mean loss of the window's fresh steps

    model: anything with the layers' training API, forward(x, state) ->
    (out, state_n, cache) and backward(dout, cache, dstate) -> (dx,
    dstate0), e.g. a fastrnn layer or a model of several (charlm.CharRNN).
    optimizer: a fastrnn optimizer over the model's parameters (its
    zero_grad, step and `items` are used). inputs (N, B, ...): what
    model.forward takes, N steps of B streams; targets (N, B): what
    `loss` takes with the outputs. k1 >= 1: fresh steps per update;
    k2 >= k1 (default k1): steps backpropagated through. resets: a boolean
    mask (N, B), True where a new document starts (the state is zeroed
    there). loss: a callable (out, targets) -> (loss, dout), by default
    cross_entropy (mean). clip_norm, clip_value: clip the gradients before
    each step with clip_grad_norm_ / clip_grad_value_ (None: no clipping).
    ValueError for mismatched shapes or k1, k2 out of range.

    `tb.state` is the state carried into `tb.position`; `tb.epoch` counts
    passes over the data; `tb.grad_norm` is the norm before clipping of the
    last update with clip_norm; state_dict()/load_state_dict() save and
    restore where the walk is, for exact resumption."""

    def __init__(
        self,
        model: Any,
        optimizer: Optimizer,
        inputs: ArrayLike,
        targets: ArrayLike,
        k1: int,
        k2: int | None = None,
        resets: ArrayLike | None = None,
        loss: Callable[[np.ndarray, np.ndarray], tuple[float, np.ndarray]] = cross_entropy,
        clip_norm: float | None = None,
        clip_value: float | None = None,
    ) -> None:
        inputs = np.asarray(inputs)
        targets = np.asarray(targets)
        if inputs.ndim < 2:
            raise ValueError(f"inputs: expected shape (N, B, ...), got {inputs.shape}")
        if targets.shape[:2] != inputs.shape[:2]:
            raise ValueError(
                f"targets: expected shape starting {inputs.shape[:2]} (as inputs), "
                f"got {targets.shape}"
            )
        if inputs.shape[0] < 1:
            raise ValueError("inputs: expected at least one step")
        self.k1 = int(k1)
        self.k2 = self.k1 if k2 is None else int(k2)
        if self.k1 < 1 or self.k2 < self.k1:
            raise ValueError(f"k1, k2: expected 1 <= k1 <= k2, got k1={k1}, k2={k2}")
        if resets is not None:
            resets = np.asarray(resets, dtype=bool)
            if resets.shape != inputs.shape[:2]:
                raise ValueError(f"resets: expected shape {inputs.shape[:2]}, got {resets.shape}")
        self.model, self.optimizer, self.loss = model, optimizer, loss
        self.inputs, self.targets, self.resets = inputs, targets, resets
        self.clip_norm, self.clip_value = clip_norm, clip_value
        # the norm before clipping, of the last update with clip_norm
        self.grad_norm: float | None = None
        self.reset()

    def reset(self) -> None:
        """Back to step 0 of the data (epoch 0) with a zero state."""
        self.position, self.epoch = 0, 0
        self.state = None
        self._context = (0, None)  # (a, state entering a) for the next window

    def _cuts(self, a, a_next, e):
        """Piece boundaries of a window [a, e): its ends, where the next
        window's context starts and every step where some stream resets."""
        cuts = {a, a_next, e}
        if self.resets is not None:
            cuts.update((a + np.flatnonzero(self.resets[a + 1 : e].any(axis=1)) + 1).tolist())
        return sorted(cuts)

    def step(self) -> float:
        """One update on the next window; returns its loss (by default the
        mean over the window's fresh steps). Raises FloatingPointError for a
        non-finite loss, before anything is updated."""
        N = self.inputs.shape[0]
        s = self.position
        e = min(s + self.k1, N)
        a, state = self._context
        a_next = max(e - (self.k2 - self.k1), a)
        cuts = self._cuts(a, a_next, e)

        outs, caches, resets = [], [], []
        context_state = state
        for u, v in zip(cuts[:-1], cuts[1:]):
            reset = self.resets[u] if self.resets is not None else None
            if reset is not None:
                state = _zero_streams(state, reset)
            out, state, cache = self.model.forward(self.inputs[u:v], state)
            outs.append(out)
            caches.append(cache)
            resets.append(reset)
            if v == a_next:
                context_state = state
        out = outs[0] if len(outs) == 1 else np.concatenate(outs)

        loss, dfresh = self.loss(out[s - a :], self.targets[s:e])
        if not math.isfinite(loss):
            raise FloatingPointError(
                f"TBPTT: non-finite loss {loss} in the window of steps "
                f"[{s}, {e}) (epoch {self.epoch}); lower the learning "
                f"rate or clip gradients"
            )
        dout = dfresh
        if s > a:
            dout = np.zeros(out.shape, dfresh.dtype)
            dout[s - a :] = dfresh

        self.optimizer.zero_grad()
        dstate = None
        for u, v, cache, reset in zip(
            reversed(cuts[:-1]), reversed(cuts[1:]), reversed(caches), reversed(resets)
        ):
            _, dstate = self.model.backward(dout[u - a : v - a], cache, dstate)
            if reset is not None:
                dstate = _zero_streams(dstate, reset)
        # the gradient w.r.t. the state entering a is dropped here

        items = self.optimizer.items
        if self.clip_value is not None:
            clip_grad_value_(items, self.clip_value)
        if self.clip_norm is not None:
            self.grad_norm = clip_grad_norm_(items, self.clip_norm)
        self.optimizer.step()

        if e == N:
            self.position, self.epoch = 0, self.epoch + 1
            self.state, self._context = None, (0, None)
        else:
            self.position, self.state = e, state
            self._context = (a_next, context_state)
        return loss

    def run(self, windows: int) -> np.ndarray:
        """`windows` updates (step() repeated); returns their losses, an
        array of `windows` floats."""
        return np.array([self.step() for _ in range(int(windows))])

    def state_dict(self) -> dict[str, np.ndarray]:
        """Where the walk is, as arrays (for an .npz): position, epoch and the
        carried states. Save the model's and the optimizer's state_dict too
        to resume exactly."""
        out = {
            "position": np.array(self.position, np.int64),
            "epoch": np.array(self.epoch, np.int64),
            "context_start": np.array(self._context[0], np.int64),
        }
        for name, st in (("state", self.state), ("context", self._context[1])):
            arrays, kind = _state_arrays(st)
            out[f"{name}.kind"] = np.array(kind)
            for i, arr in enumerate(arrays):
                out[f"{name}.{i}"] = np.array(arr)
        return out

    def load_state_dict(self, d: Mapping[str, np.ndarray]) -> None:
        """Restore what state_dict returned (or an .npz of it), for the same
        data; ValueError for a missing entry or a position outside the data."""
        try:
            position, epoch = int(d["position"]), int(d["epoch"])
            start = int(d["context_start"])
            states = []
            for name in ("state", "context"):
                kind = str(d[f"{name}.kind"])
                n = {"none": 0, "array": 1, "tuple": 2}[kind]
                states.append(
                    _state_from_arrays([np.array(d[f"{name}.{i}"]) for i in range(n)], kind)
                )
        except KeyError as e:
            raise ValueError(f"state_dict: missing or bad entry {e}") from None
        N = self.inputs.shape[0]
        if not 0 <= start <= position < N:
            raise ValueError(
                f"state_dict: position {position} / context start {start} outside "
                f"the data's {N} steps"
            )
        self.position, self.epoch = position, epoch
        self.state, self._context = states[0], (start, states[1])


def evaluate(model, inputs, targets, resets=None, window=256, ignore_index=-100):
    """Mean cross-entropy (nats per target) of model over B streams, forward
    only, carrying the state from window to window (as in training, zeroed at
    resets). `model(x, state)` returns (logits, state_n). Divide by ln 2 for
    bits per character."""
    inputs, targets = np.asarray(inputs), np.asarray(targets)
    N = inputs.shape[0]
    cuts = set(range(0, N, int(window))) | {N}
    if resets is not None:
        resets = np.asarray(resets, dtype=bool)
        cuts.update(np.flatnonzero(resets.any(axis=1)).tolist())
    cuts = sorted(cuts)
    state, total, count = None, 0.0, 0
    for u, v in zip(cuts[:-1], cuts[1:]):
        if resets is not None:
            state = _zero_streams(state, resets[u])
        logits, state = model(inputs[u:v], state)
        loss, _ = cross_entropy(logits, targets[u:v], ignore_index=ignore_index, reduction="sum")
        total += loss
        count += int(np.sum(targets[u:v] != ignore_index))
    return total / count if count else float("nan")
