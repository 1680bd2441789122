"""The training pieces against PyTorch and finite differences: optimizers
(torch.optim step for step), learning-rate schedules, gradient clipping,
the fused softmax cross-entropy, fr.Linear and fr.Embedding."""

import math

import numpy as np
import pytest
import torch

import fastrnn as fr
from helpers import numeric_grad

torch.set_num_threads(1)

TORCH_DTYPE = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}
# max |fastrnn - torch| / max |torch| over several steps
TOL = {np.dtype(np.float32): 1e-6, np.dtype(np.float64): 1e-12}
DTYPES = [np.float32, np.float64]


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


# ---------------------------------------------------------------- optimizers

OPTIMIZERS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.02)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, weight_decay=0.05, amsgrad=True)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.02, betas=(0.7, 0.9), weight_decay=0.3, amsgrad=True)),
    ("Adagrad", dict(lr=0.1)),
    (
        "Adagrad",
        dict(lr=0.1, lr_decay=0.05, weight_decay=0.01, initial_accumulator_value=0.2, eps=1e-6),
    ),
]
OPT_IDS = [f"{name}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for name, kw in OPTIMIZERS]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name,kw", OPTIMIZERS, ids=OPT_IDS)
def test_optimizer_matches_torch_step_for_step(name, kw, dtype):
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(0)
    shapes = [(6, 5), (5,), (3, 2, 4)]
    params = [rng.standard_normal(s).astype(dtype) for s in shapes]
    grads = [np.zeros_like(p) for p in params]
    tparams = [torch.tensor(p.copy(), requires_grad=True) for p in params]
    ours = getattr(fr, name)(list(zip(params, grads)), **kw)
    theirs = getattr(torch.optim, name)(tparams, **kw)
    for step in range(8):
        for g, tp in zip(grads, tparams):
            g[...] = rng.standard_normal(g.shape) * (1 + step)
            tp.grad = torch.tensor(g.copy())
        ours.step()
        theirs.step()
        for p, tp in zip(params, tparams):
            assert rel(p, tp.detach().numpy()) < TOL[dtype], f"step {step}"
    # and the state it keeps
    for i, tp in enumerate(tparams):
        for buf, value in theirs.state[tp].items():
            if buf != "step" and value is not None:
                assert rel(ours.state[str(i)][buf], value.numpy()) < TOL[dtype], buf


def test_optimizer_steps_modules_and_skips_missing_grads():
    """A module list: every parameter in module._params with its grads;
    same result as torch.nn.Linear under torch.optim.Adam."""
    lin = fr.Linear(4, 3, dtype=np.float64, seed=1)
    tlin = torch.nn.Linear(4, 3, dtype=torch.float64)
    tlin.load_state_dict({k: torch.tensor(v) for k, v in lin.state_dict().items()})
    opt = fr.Adam([lin], lr=0.05)
    topt = torch.optim.Adam(tlin.parameters(), lr=0.05)
    x = np.random.default_rng(2).standard_normal((5, 4))
    for _ in range(4):
        y, cache = lin.forward(x)
        lin.backward(2 * y, cache)  # d/dy of sum(y^2)
        (tlin(torch.tensor(x)) ** 2).sum().backward()
        opt.step()
        opt.zero_grad()
        topt.step()
        topt.zero_grad()
    for k, v in tlin.state_dict().items():
        assert rel(lin.state_dict()[k], v.numpy()) < 1e-12, k
    assert all(not g.any() for g in lin.grads.values())

    # a pair with grad None is skipped, as torch skips params without .grad
    p = np.ones(3)
    before = p.copy()
    fr.SGD([(p, None)], lr=1.0).step()
    np.testing.assert_array_equal(p, before)


def test_optimizer_calls_params_changed():
    lin = fr.Linear(2, 2, seed=0)
    calls = []
    lin._params_changed = lambda: calls.append(1)
    lin.grads["weight"][...] = 1
    fr.SGD([lin], lr=0.1).step()
    assert calls == [1]


@pytest.mark.parametrize(
    "name,kw",
    [
        ("SGD", dict(lr=0.1, momentum=0.9)),
        ("Adam", dict(lr=0.01, amsgrad=True)),
        ("Adagrad", dict(lr=0.1, initial_accumulator_value=0.1)),
    ],
)
def test_optimizer_state_dict_resumes_exactly(name, kw):
    rng = np.random.default_rng(3)
    gs = rng.standard_normal((6, 4, 3))

    def run(split):
        p = np.linspace(-1, 1, 12).reshape(4, 3)
        g = np.zeros_like(p)
        opt = getattr(fr, name)([(p, g)], **kw)
        for i in range(6):
            if i == split:
                saved = {k: np.array(v) for k, v in opt.state_dict().items()}
                opt = getattr(fr, name)([(p, g)], **kw)
                opt.load_state_dict(saved)
            g[...] = gs[i]
            opt.step()
        return p, opt.step_count

    p_straight, n1 = run(None)
    p_resumed, n2 = run(3)
    np.testing.assert_array_equal(p_straight, p_resumed)
    assert n1 == n2 == 6


def test_optimizer_state_dict_is_checked():
    p, g = np.ones(3), np.ones(3)
    opt = fr.Adam([(p, g)])
    opt.step()
    sd = opt.state_dict()
    assert set(sd) == {"step_count", "0.step", "0.exp_avg", "0.exp_avg_sq"}
    other = fr.Adam([(np.ones(4), np.ones(4))])
    with pytest.raises(ValueError, match="shape"):
        other.load_state_dict(sd)
    with pytest.raises(ValueError, match="unknown"):
        fr.Adam([(p, g)]).load_state_dict({**sd, "9.exp_avg": np.ones(3)})


def test_optimizer_rejects_bad_params():
    with pytest.raises(TypeError, match="params\\[0\\]"):
        fr.SGD([42])
    p = np.ones(3, np.float32)
    with pytest.raises(ValueError, match="grad of params"):
        fr.SGD([(p, np.ones(3))], lr=0.1).step()  # float64 grad for a float32 param
    with pytest.raises(ValueError, match="C-contiguous"):
        fr.SGD([(np.ones((3, 3))[:, 0], np.ones(3))], lr=0.1).step()
    with pytest.raises(ValueError, match="nesterov"):
        fr.SGD([(p, p)], nesterov=True)


def test_lr_schedule_callable_and_schedulers_match_torch():
    """lr may be a callable step -> lr, called with the steps taken so far;
    StepLR and CosineLR equal torch's schedulers."""
    p0 = np.random.default_rng(4).standard_normal(5)
    for ours_sched, make_theirs in [
        (
            fr.StepLR(0.1, step_size=3, gamma=0.5),
            lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5),
        ),
        (
            fr.CosineLR(0.1, total_steps=7, min_lr=0.01),
            lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=7, eta_min=0.01),
        ),
    ]:
        p, g = p0.copy(), np.ones(5)
        tp = torch.tensor(p0.copy(), requires_grad=True)
        opt = fr.SGD([(p, g)], lr=ours_sched)
        topt = torch.optim.SGD([tp], lr=0.1)
        sched = make_theirs(topt)
        for _ in range(8):
            assert math.isclose(opt.current_lr(), topt.param_groups[0]["lr"], rel_tol=1e-12)
            tp.grad = torch.ones(5, dtype=torch.float64)
            opt.step()
            topt.step()
            sched.step()
        assert rel(p, tp.detach().numpy()) < 1e-12
    warm = fr.CosineLR(1.0, total_steps=10, warmup=4)
    assert [warm(i) for i in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert warm(14) == warm(100) == 0.0


# ---------------------------------------------------------------- clipping


def _grads(rng, dtype):
    return [rng.standard_normal(s).astype(dtype) * 3 for s in [(4, 3), (7,), (2, 2, 2)]]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_clip_grad_norm_matches_torch(norm_type, max_norm, dtype):
    grads = _grads(np.random.default_rng(5), dtype)
    tparams = [torch.zeros(g.shape, dtype=TORCH_DTYPE[np.dtype(dtype)]) for g in grads]
    for tp, g in zip(tparams, grads):
        tp.grad = torch.tensor(g.copy())
    pairs = [(np.zeros_like(g), g) for g in grads]
    total = fr.clip_grad_norm_(pairs, max_norm, norm_type=norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(tparams, max_norm, norm_type=norm_type)
    tol = 1e-6 if dtype == np.float32 else 1e-12
    assert math.isclose(total, float(ttotal), rel_tol=tol)
    for g, tp in zip(grads, tparams):
        assert rel(g, tp.grad.numpy()) < tol


def test_clip_grad_norm_on_modules_and_value():
    lin = fr.Linear(3, 2, dtype=np.float64, seed=0)
    lin.grads["weight"][...] = [[3, 0, 0], [0, 0, 0]]
    lin.grads["bias"][...] = [0, 4]
    assert fr.clip_grad_norm_([lin], 1.0) == 5.0
    np.testing.assert_allclose(lin.grads["bias"], [0, 4 / (5 + 1e-6)], rtol=1e-15)

    grads = _grads(np.random.default_rng(6), np.float64)
    tparams = [torch.zeros(g.shape, dtype=torch.float64) for g in grads]
    for tp, g in zip(tparams, grads):
        tp.grad = torch.tensor(g.copy())
    fr.clip_grad_value_([(np.zeros_like(g), g) for g in grads], 0.7)
    torch.nn.utils.clip_grad_value_(tparams, 0.7)
    for g, tp in zip(grads, tparams):
        np.testing.assert_array_equal(g, tp.grad.numpy())


def test_clip_grad_norm_passes_nonfinite_through():
    g = np.array([1.0, np.inf])
    assert fr.clip_grad_norm_([(np.zeros(2), g)], 1.0) == math.inf


# ---------------------------------------------------------------- cross-entropy


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("shape", [(5, 3, 7), (11, 4), (6,)])
def test_cross_entropy_matches_torch(shape, reduction, dtype):
    rng = np.random.default_rng(7)
    logits = (rng.standard_normal(shape) * 4).astype(dtype)
    targets = rng.integers(0, shape[-1], size=shape[:-1])
    if targets.ndim:
        targets.flat[::3] = -100
    ignore = -100
    loss, dlogits = fr.cross_entropy(logits, targets, reduction=reduction)
    tl = torch.tensor(logits, requires_grad=True)
    tt = torch.tensor(targets)
    if tl.ndim == 3:  # torch wants the classes in dim 1
        tloss = torch.nn.functional.cross_entropy(
            tl.permute(0, 2, 1), tt, ignore_index=ignore, reduction=reduction
        )
    else:
        tloss = torch.nn.functional.cross_entropy(tl, tt, ignore_index=ignore, reduction=reduction)
    tloss.backward()
    tol = 1e-6 if dtype == np.float32 else 1e-13
    assert math.isclose(loss, tloss.item(), rel_tol=tol)
    assert dlogits.dtype == logits.dtype and dlogits.shape == logits.shape
    assert rel(dlogits, tl.grad.numpy()) < 10 * tol


def test_cross_entropy_custom_ignore_index_and_all_ignored():
    logits = np.random.default_rng(8).standard_normal((4, 5))
    t = np.array([1, 3, 3, 0])
    loss, d = fr.cross_entropy(logits, t, ignore_index=3)
    tl = torch.tensor(logits, requires_grad=True)
    tloss = torch.nn.functional.cross_entropy(tl, torch.tensor(t), ignore_index=3)
    tloss.backward()
    assert math.isclose(loss, tloss.item(), rel_tol=1e-14)
    np.testing.assert_allclose(d, tl.grad.numpy(), rtol=1e-13, atol=1e-16)
    loss, d = fr.cross_entropy(logits, np.full(4, -100))
    assert math.isnan(loss) and not d.any()  # torch: nan loss, zero gradient
    loss, d = fr.cross_entropy(logits, np.full(4, -100), reduction="sum")
    assert loss == 0.0 and not d.any()


def test_cross_entropy_finite_differences():
    rng = np.random.default_rng(9)
    logits = rng.standard_normal((3, 2, 5))
    t = rng.integers(0, 5, size=(3, 2))
    t[1, 0] = -100
    _, d = fr.cross_entropy(logits, t)
    eps = 1e-6
    num = np.zeros_like(logits)
    for i in np.ndindex(logits.shape):
        lp, lm = logits.copy(), logits.copy()
        lp[i] += eps
        lm[i] -= eps
        num[i] = (fr.cross_entropy(lp, t)[0] - fr.cross_entropy(lm, t)[0]) / (2 * eps)
    np.testing.assert_allclose(d, num, rtol=1e-6, atol=1e-9)


def test_cross_entropy_is_stable_for_huge_logits():
    logits = np.array([[1e4, 0.0, -1e4], [3e38, 3e38, 0.0]], np.float32)
    loss, d = fr.cross_entropy(logits, np.array([1, 0]), reduction="sum")
    assert math.isclose(loss, 1e4 + math.log(2), rel_tol=1e-6)
    assert np.all(np.isfinite(d))
    np.testing.assert_allclose(d, [[1, -1, 0], [-0.5, 0.5, 0]], atol=1e-6)


def test_cross_entropy_propagates_nan_and_checks_input():
    loss, _ = fr.cross_entropy(np.array([[np.nan, 1.0]]), np.array([0]))
    assert math.isnan(loss)
    with pytest.raises(ValueError, match="targets: expected shape"):
        fr.cross_entropy(np.zeros((3, 4)), np.zeros(2, int))
    with pytest.raises(ValueError, match="class indices in \\[0, 4\\)"):
        fr.cross_entropy(np.zeros((2, 4)), np.array([0, 4]))
    with pytest.raises(TypeError, match="targets: expected integers"):
        fr.cross_entropy(np.zeros((2, 4)), np.zeros(2))
    with pytest.raises(ValueError, match="reduction"):
        fr.cross_entropy(np.zeros((2, 4)), np.zeros(2, int), reduction="none")


# ---------------------------------------------------------------- Linear, Embedding


def test_linear_matches_torch_names_init_and_forward():
    lin = fr.Linear(40, 7, seed=0)
    tlin = torch.nn.Linear(40, 7)
    assert {k: v.shape for k, v in lin.state_dict().items()} == {
        k: tuple(v.shape) for k, v in tlin.state_dict().items()
    }
    assert lin.weight.dtype == np.float32
    bound = 1 / math.sqrt(40)
    assert np.abs(lin.weight).max() <= bound and np.abs(lin.weight).max() > 0.9 * bound
    assert np.abs(lin.bias).max() <= bound
    tlin.load_state_dict({k: torch.tensor(v) for k, v in lin.state_dict().items()})
    x = np.random.default_rng(1).standard_normal((3, 2, 40)).astype(np.float32)
    y = lin(x)
    assert y.shape == (3, 2, 7)
    assert rel(y, tlin(torch.tensor(x)).detach().numpy()) < 1e-6
    assert fr.Linear(3, 2, bias=False).state_dict().keys() == {"weight"}
    with pytest.raises(ValueError, match="x: expected shape \\(..., 40\\)"):
        lin(np.zeros((2, 39)))


def test_embedding_matches_torch_names_init_and_forward():
    emb = fr.Embedding(500, 40, seed=0)
    temb = torch.nn.Embedding(500, 40)
    assert emb.weight.shape == tuple(temb.weight.shape)
    assert abs(emb.weight.mean()) < 0.02 and abs(emb.weight.std() - 1) < 0.02  # N(0, 1)
    idx = np.array([[3, 499], [0, 3]])
    np.testing.assert_array_equal(emb(idx), emb.weight[idx])
    with pytest.raises(ValueError, match="indices must be in \\[0, 500\\)"):
        emb(np.array([500]))
    with pytest.raises(TypeError, match="integer"):
        emb(np.array([1.0]))


@pytest.mark.parametrize("bias", [True, False])
def test_linear_gradients_finite_differences(bias):
    rng = np.random.default_rng(10)
    lin = fr.Linear(4, 3, bias=bias, dtype=np.float64, seed=0)
    x = rng.standard_normal((2, 3, 4))
    w = rng.standard_normal((2, 3, 3))  # loss = sum(w * y)

    def loss():
        return float(np.sum(w * lin(x)))

    y, cache = lin.forward(x)
    dx = lin.backward(w, cache)
    lin.backward(w, cache)  # accumulates: twice the gradient
    np.testing.assert_allclose(dx, numeric_grad(loss, x), rtol=1e-7, atol=1e-9)
    for name, p in lin._params.items():
        np.testing.assert_allclose(
            lin.grads[name] / 2, numeric_grad(loss, p), rtol=1e-7, atol=1e-9, err_msg=name
        )
    lin.zero_grad()
    assert not any(g.any() for g in lin.grads.values())


def test_embedding_gradients_finite_differences_with_repeats():
    rng = np.random.default_rng(11)
    emb = fr.Embedding(5, 3, dtype=np.float64, seed=0)
    idx = np.array([[1, 4], [1, 1], [0, 4]])  # repeated rows add up; row 2, 3 unused
    w = rng.standard_normal((3, 2, 3))
    y, cache = emb.forward(idx)
    assert emb.backward(w, cache) is None
    num = numeric_grad(lambda: float(np.sum(w * emb(idx))), emb._params["weight"])
    np.testing.assert_allclose(emb.grads["weight"], num, rtol=1e-7, atol=1e-9)
    assert not emb.grads["weight"][[2, 3]].any()


def test_linear_and_embedding_save_load(tmp_path):
    for m in (fr.Linear(3, 2, seed=1, dtype=np.float64), fr.Embedding(6, 2, seed=2)):
        path = tmp_path / f"{type(m).__name__}.npz"
        m.save(path)
        back = fr.load(path)
        assert type(back) is type(m) and back.config() == m.config()
        for k, v in m.state_dict().items():
            np.testing.assert_array_equal(back.state_dict()[k], v)
        assert not any(g.any() for g in back.grads.values())
