"""Optimizers with torch.optim's update rules, gradient clipping and
learning-rate schedules.

An optimizer steps a list of modules (every parameter in `module._params`
with its gradient in `module.grads`) and/or (param, grad) pairs of arrays:

    opt = fr.Adam([embedding, lstm, head], lr=2e-3)
    ...backward passes fill the .grads...
    fr.clip_grad_norm_([embedding, lstm, head], 5.0)
    opt.step(); opt.zero_grad()

Each update is one fused C pass per parameter (csrc/optim.c) with PyTorch's
operations in PyTorch's order, so a run matches torch.optim step for step.
`lr` is a number or a schedule: a callable step -> lr, called with the number
of steps taken so far (0 for the first), like LambdaLR; StepLR and CosineLR
below are such callables.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

import numpy as np

from . import _core
from ._validate import as_real_array

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

    from .module import Module


def _entries(items):
    """(key, module or None, name or None, param, grad-or-None) for what an
    optimizer or a clipping function is given; grads are looked up now, so a
    module may create its .grads lazily."""
    if isinstance(items, Optimizer):
        items = items.items
    out = []
    for i, item in enumerate(items):
        params = getattr(item, "_params", None)
        if isinstance(params, dict):
            grads = getattr(item, "grads", None) or {}
            for name, p in params.items():
                out.append((f"{i}.{name}", item, name, p, grads.get(name)))
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            out.append((str(i), None, None, item[0], item[1]))
        else:
            raise TypeError(
                f"params[{i}]: expected a fastrnn module or a (param, grad) pair of "
                f"arrays, got {type(item).__name__}"
            )
    return out


def _count(v, name):
    """A saved step count: one integer >= 0."""
    a = np.asarray(v)
    if a.shape != () or a.dtype.kind not in "iu" or a < 0:
        raise ValueError(f"{name}: expected one integer >= 0, got {v!r}")
    return int(a)


def _check_pair(key, p, g):
    if not isinstance(p, np.ndarray) or p.dtype not in (np.float32, np.float64):
        raise TypeError(
            f"params[{key}]: expected a float32 or float64 numpy array, "
            f"got {getattr(p, 'dtype', type(p).__name__)}"
        )
    if not (p.flags.c_contiguous and p.flags.writeable):
        raise ValueError(
            f"params[{key}]: must be C-contiguous and writeable (it is updated in place)"
        )
    if not isinstance(g, np.ndarray) or g.dtype != p.dtype or g.shape != p.shape:
        raise ValueError(
            f"grad of params[{key}]: expected a {p.dtype} array of shape {p.shape}, "
            f"got {getattr(g, 'dtype', type(g).__name__)} {getattr(g, 'shape', '')}"
        )


class Optimizer:
    """What the optimizers share: the parameters, the step count, per-parameter
    state (created at a parameter's first update, as in PyTorch) and its
    state_dict. Subclasses name their state buffers in `_buffers` and apply
    one update in `_update`."""

    _buffers: tuple[str, ...] = ()

    def __init__(
        self,
        params: Iterable[Module | tuple[np.ndarray, np.ndarray]],
        lr: float | Callable[[int], float],
    ) -> None:
        self.items = list(params)
        _entries(self.items)  # type-check now, not at the first step
        if not callable(lr) and not lr >= 0:
            raise ValueError(f"lr: expected a number >= 0 or a callable step -> lr, got {lr!r}")
        self.lr = lr
        self.step_count = 0
        self.state: dict[str, dict[str, Any]] = {}  # key -> {"step": int, buffer name: array}

    def current_lr(self) -> float:
        """The learning rate of the next step."""
        return float(self.lr(self.step_count)) if callable(self.lr) else float(self.lr)

    def step(self) -> None:
        """Update every parameter that has a gradient (in place), then tell
        each module its parameters changed (its streams and packed weights
        take the new values). Parameters whose gradient is None are skipped;
        TypeError or ValueError for a pair that is not two float32 / float64
        arrays of one shape, or a parameter not C-contiguous and writeable."""
        lr = self.current_lr()
        changed = []
        for key, module, _, p, g in _entries(self.items):
            if g is None:
                continue
            _check_pair(key, p, g)
            st = self.state.get(key)
            if st is None:
                st = self.state[key] = self._init_state(p)
            st["step"] += 1
            self._update(p, g, st, lr)
            if module is not None and module not in changed:
                changed.append(module)
        for module in changed:
            module._params_changed()
        self.step_count += 1

    def zero_grad(self) -> None:
        """Set every gradient of the optimizer's parameters to zero, in place."""
        for *_, g in _entries(self.items):
            if g is not None:
                g.fill(0)

    def _init_state(self, p):
        return {"step": 0, **{b: np.zeros_like(p) for b in self._buffers}}

    def _update(self, p, g, st, lr):
        """Update parameter `p` in place from its gradient `g`, its state `st`
        (a dict: 'step' and the buffers) and the learning rate `lr`."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, np.ndarray]:
        """Flat name -> numpy array (ready for an .npz): 'step_count' and, per
        parameter key ('{index}.{name}' for a module's parameter, '{index}' for
        a pair), '{key}.step' and '{key}.{buffer}'. Hyperparameters are not
        stored: they come from the constructor."""
        out = {"step_count": np.array(self.step_count, np.int64)}
        for key, st in self.state.items():
            for b, v in st.items():
                out[f"{key}.{b}"] = np.array(v, np.int64) if b == "step" else v.copy()
        return out

    def load_state_dict(self, state_dict: Mapping[str, ArrayLike]) -> None:
        """Restore what state_dict returned (or an .npz of it); every key and
        shape is checked against this optimizer's parameters before anything
        changes (ValueError for a missing, unknown or misshapen entry)."""
        if "step_count" not in state_dict:
            raise ValueError("state_dict: missing 'step_count'")
        expected = {"step_count"}
        new = {}
        for key, _, _, p, _ in _entries(self.items):
            if f"{key}.step" not in state_dict:
                continue
            st = {"step": _count(state_dict[f"{key}.step"], f"state_dict[{key}.step]")}
            for b in self._buffers:
                if f"{key}.{b}" not in state_dict:
                    raise ValueError(f"state_dict: missing {key}.{b!r}")
                v = as_real_array(state_dict[f"{key}.{b}"], f"state_dict[{key}.{b!r}]", p.dtype)
                if v.shape != p.shape:
                    raise ValueError(
                        f"state_dict[{key}.{b!r}]: expected shape {p.shape}, got {v.shape}"
                    )
                st[b] = v.copy()
            expected.update(f"{key}.{b}" for b in st)
            new[key] = st
        unknown = sorted(set(state_dict) - expected)
        if unknown:
            raise ValueError(
                f"state_dict: unknown key(s) {unknown} for this optimizer's parameters"
            )
        step_count = _count(state_dict["step_count"], "state_dict['step_count']")
        self.state = new
        self.step_count = step_count


class SGD(Optimizer):
    """torch.optim.SGD: d = g + weight_decay p; with momentum, buf = d at the
    first step, then buf = momentum buf + (1 - dampening) d, and d = buf (or
    d + momentum buf with nesterov); p -= lr d.

    params: fastrnn modules and/or (param, grad) pairs of arrays (see
    fastrnn.optim). lr: a number or a schedule step -> lr. momentum,
    weight_decay >= 0; nesterov needs momentum > 0 and dampening 0
    (ValueError otherwise).
    """

    def __init__(
        self,
        params: Iterable[Module | tuple[np.ndarray, np.ndarray]],
        lr: float | Callable[[int], float] = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        super().__init__(params, lr)
        if momentum < 0 or weight_decay < 0:
            raise ValueError(
                f"momentum and weight_decay: expected >= 0, got {momentum}, {weight_decay}"
            )
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("nesterov: requires a momentum > 0 and zero dampening")
        self.momentum, self.dampening = float(momentum), float(dampening)
        self.weight_decay, self.nesterov = float(weight_decay), bool(nesterov)
        self._buffers = ("momentum_buffer",) if self.momentum else ()

    def _update(self, p, g, st, lr):
        _core.sgd_update(
            p,
            g,
            buf=st.get("momentum_buffer"),
            lr=lr,
            momentum=self.momentum,
            dampening=self.dampening,
            weight_decay=self.weight_decay,
            nesterov=self.nesterov,
            first_step=st["step"] == 1,
        )


class Adam(Optimizer):
    """torch.optim.Adam: g += weight_decay p (L2); m = lerp(m, g, 1 - beta1);
    v = beta2 v + (1 - beta2) g^2 (amsgrad: the running max of v is used);
    p -= lr / (1 - beta1^t) m / (sqrt(v) / sqrt(1 - beta2^t) + eps).

    params: fastrnn modules and/or (param, grad) pairs of arrays (see
    fastrnn.optim). lr: a number or a schedule step -> lr. betas: (beta1,
    beta2), each in [0, 1); eps, weight_decay >= 0 (ValueError otherwise).
    """

    _decoupled = False

    def __init__(
        self,
        params: Iterable[Module | tuple[np.ndarray, np.ndarray]],
        lr: float | Callable[[int], float] = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
    ) -> None:
        super().__init__(params, lr)
        b1, b2 = betas
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise ValueError(f"betas: expected each in [0, 1), got {betas}")
        if eps < 0 or weight_decay < 0:
            raise ValueError(f"eps and weight_decay: expected >= 0, got {eps}, {weight_decay}")
        self.betas, self.eps = (float(b1), float(b2)), float(eps)
        self.weight_decay, self.amsgrad = float(weight_decay), bool(amsgrad)
        self._buffers = ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if amsgrad else ())

    def _update(self, p, g, st, lr):
        _core.adam_update(
            p,
            g,
            exp_avg=st["exp_avg"],
            exp_avg_sq=st["exp_avg_sq"],
            max_exp_avg_sq=st.get("max_exp_avg_sq"),
            lr=lr,
            beta1=self.betas[0],
            beta2=self.betas[1],
            eps=self.eps,
            weight_decay=self.weight_decay,
            decoupled_weight_decay=self._decoupled,
            step=st["step"],
        )


class AdamW(Adam):
    """torch.optim.AdamW: Adam with decoupled weight decay, p *= 1 - lr
    weight_decay before the Adam update (default weight_decay 0.01); the
    arguments are Adam's."""

    _decoupled = True

    def __init__(
        self,
        params: Iterable[Module | tuple[np.ndarray, np.ndarray]],
        lr: float | Callable[[int], float] = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)


class Adagrad(Optimizer):
    """torch.optim.Adagrad (min-char-rnn's optimizer): g += weight_decay p;
    sum += g^2; p -= lr / (1 + (t - 1) lr_decay) g / (sqrt(sum) + eps).

    params: fastrnn modules and/or (param, grad) pairs of arrays (see
    fastrnn.optim). lr: a number or a schedule step -> lr. `sum` starts at
    initial_accumulator_value; lr_decay, weight_decay,
    initial_accumulator_value and eps >= 0 (ValueError otherwise).
    """

    _buffers = ("sum",)

    def __init__(
        self,
        params: Iterable[Module | tuple[np.ndarray, np.ndarray]],
        lr: float | Callable[[int], float] = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
    ) -> None:
        super().__init__(params, lr)
        if lr_decay < 0 or weight_decay < 0 or initial_accumulator_value < 0 or eps < 0:
            raise ValueError(
                "lr_decay, weight_decay, initial_accumulator_value and eps: expected >= 0"
            )
        self.lr_decay, self.weight_decay = float(lr_decay), float(weight_decay)
        self.initial_accumulator_value, self.eps = float(initial_accumulator_value), float(eps)

    def _init_state(self, p):
        return {"step": 0, "sum": np.full_like(p, self.initial_accumulator_value)}

    def _update(self, p, g, st, lr):
        _core.adagrad_update(
            p,
            g,
            state_sum=st["sum"],
            lr=lr,
            lr_decay=self.lr_decay,
            weight_decay=self.weight_decay,
            eps=self.eps,
            step=st["step"],
        )


def _grads(items):
    return [g for _, _, _, _, g in _entries(items) if g is not None]


def clip_grad_norm_(
    params: Iterable[Module | tuple[np.ndarray, np.ndarray]] | Optimizer,
    max_norm: float,
    norm_type: float = 2.0,
) -> float:
    """torch.nn.utils.clip_grad_norm_: scale every gradient by
    max_norm / (total_norm + 1e-6) when that is below 1, where total_norm is
    the norm of all gradients together. `params` is what an optimizer takes
    (or an optimizer). norm_type: p > 0 of the p-norm, or math.inf for the
    largest absolute value (ValueError otherwise). Gradients are scaled in
    place. Returns total_norm (a float; inf or NaN pass through)."""
    grads = _grads(params)
    norm_type = float(norm_type)
    if not grads:
        return 0.0
    if norm_type == math.inf:
        total = max(float(np.max(np.abs(g))) if g.size else 0.0 for g in grads)
    elif norm_type == 2.0:
        total = math.sqrt(sum(_core.sum_squares(np.ascontiguousarray(g)) for g in grads))
    elif norm_type > 0:
        total = sum(float(np.sum(np.abs(g.astype(np.float64)) ** norm_type)) for g in grads)
        total = total ** (1.0 / norm_type)
    else:
        raise ValueError(f"norm_type: expected > 0 or inf, got {norm_type}")
    coef = float(max_norm) / (total + 1e-6)
    if coef < 1.0:
        with np.errstate(invalid="ignore"):  # an inf gradient times 0 is NaN, as in torch
            for g in grads:
                g *= g.dtype.type(coef)
    return total


def clip_grad_value_(
    params: Iterable[Module | tuple[np.ndarray, np.ndarray]] | Optimizer, clip_value: float
) -> None:
    """torch.nn.utils.clip_grad_value_: clamp every gradient to
    [-clip_value, clip_value], in place. `params` as for clip_grad_norm_."""
    clip_value = float(clip_value)
    for g in _grads(params):
        np.clip(g, -clip_value, clip_value, out=g)


class StepLR:
    """lr * gamma ** (step // step_size), torch's StepLR as a schedule: a
    callable step -> lr to pass as an optimizer's `lr`. step_size >= 1
    (ValueError otherwise).

        opt = fr.SGD([lstm, head], lr=fr.StepLR(0.1, step_size=1000, gamma=0.5))
    """

    def __init__(self, lr: float, step_size: int, gamma: float = 0.1) -> None:
        if step_size < 1:
            raise ValueError(f"step_size: expected >= 1, got {step_size}")
        self.lr, self.step_size, self.gamma = float(lr), int(step_size), float(gamma)

    def __call__(self, step: int) -> float:
        """The learning rate of step `step` (0 for the first)."""
        return self.lr * self.gamma ** (step // self.step_size)


class CosineLR:
    """Cosine annealing from lr to min_lr over total_steps (torch's
    CosineAnnealingLR with T_max = total_steps, eta_min = min_lr), after an
    optional linear warmup from lr / warmup to lr; held at min_lr after.
    A callable step -> lr to pass as an optimizer's `lr`. total_steps >= 1,
    warmup >= 0 steps (ValueError otherwise)."""

    def __init__(self, lr: float, total_steps: int, min_lr: float = 0.0, warmup: int = 0) -> None:
        if total_steps < 1 or warmup < 0:
            raise ValueError(
                f"total_steps >= 1 and warmup >= 0 expected, got {total_steps}, {warmup}"
            )
        self.lr, self.total_steps = float(lr), int(total_steps)
        self.min_lr, self.warmup = float(min_lr), int(warmup)

    def __call__(self, step: int) -> float:
        """The learning rate of step `step` (0 for the first)."""
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        t = min(step - self.warmup, self.total_steps)
        cosine = (1 + math.cos(math.pi * t / self.total_steps)) / 2
        return self.min_lr + (self.lr - self.min_lr) * cosine
