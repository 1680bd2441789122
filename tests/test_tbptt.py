"""fr.TBPTT: what one update backpropagates through (against full BPTT and
hand-built references), that no gradient crosses a window boundary or a
document reset, that the carried state is the whole sequence's forward, exact
resumption, learning a task with a known answer, and flat memory."""

import os
import resource

import numpy as np
import pytest

import fastrnn as fr
from fastrnn import charlm, optim
from fastrnn.tbptt import evaluate


class Recorder(fr.SGD):
    """SGD with lr = 0 (weights never change) that keeps each update's gradients."""

    def __init__(self, items):
        super().__init__(items, lr=0.0)
        self.record = []

    def step(self):
        self.record.append(
            {k: g.copy() for k, _, _, _, g in optim._entries(self.items) if g is not None}
        )
        super().step()


def char_model(V=4, cell="lstm", H=5, seed=0):
    return charlm.CharRNN(
        V, cell, hidden_size=H, num_layers=2, embed_dim=3, dtype=np.float64, seed=seed
    )


def grads_of(model):
    return {
        f"{i}.{k}": g.copy()
        for i, m in enumerate(model.modules.values())
        for k, g in m.grads.items()
    }


def full_bptt(model, inputs, targets, state=None, **loss_kw):
    """Gradients of one forward/backward over the whole sequence."""
    model.zero_grad()
    logits, _, cache = model.forward(inputs, state)
    _, d = fr.cross_entropy(logits, targets, **loss_kw)
    model.backward(d, cache)
    out = grads_of(model)
    model.zero_grad()
    return out


def assert_grads_equal(a, b, rtol=1e-11):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=rtol, atol=1e-14, err_msg=k)


def data(rng, N, B, V):
    ids = rng.integers(0, V, size=(N + 1, B))
    return ids[:-1], ids[1:]


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_one_window_is_full_bptt(cell):
    rng = np.random.default_rng(0)
    model = char_model(cell=cell)
    inputs, targets = data(rng, 9, 3, 4)
    expected = full_bptt(model, inputs, targets)
    opt = Recorder(list(model.modules.values()))
    tb = fr.TBPTT(model, opt, inputs, targets, k1=9)
    loss = tb.step()
    assert_grads_equal(opt.record[0], expected)
    assert np.isclose(loss, fr.cross_entropy(model(inputs)[0], targets)[0], rtol=1e-13)
    assert (tb.position, tb.epoch, tb.state) == (0, 1, None)  # a new epoch from a zero state


def test_works_with_a_bare_layer_and_any_loss():
    """The model is anything with forward/backward; here a GRU layer with a
    squared-error loss on its outputs."""
    rng = np.random.default_rng(1)
    gru = fr.GRU(3, 4, dtype=np.float64, seed=0)
    x = rng.standard_normal((8, 2, 3))
    y_target = rng.standard_normal((8, 2, 4))

    def mse(out, target):
        diff = out - target
        return float(np.sum(diff**2)), 2 * diff

    y, _, cache = gru.forward(x)
    gru.backward(2 * (y - y_target), cache)
    expected = {f"0.{k}": g.copy() for k, g in gru.grads.items()}
    gru.zero_grad()
    opt = Recorder([gru])
    fr.TBPTT(gru, opt, x, y_target, k1=8, loss=mse).step()
    assert_grads_equal(opt.record[0], expected)


def test_no_gradient_crosses_a_window_boundary():
    """Window 1 sees only tokens 0 and 1, window 2 only 2 and 3: the update
    of window 2 must not touch the embeddings of 0 and 1, though its loss
    depends on them through the carried state. Full BPTT would."""
    rng = np.random.default_rng(2)
    B, k = 3, 6
    ids = np.concatenate([rng.integers(0, 2, (k, B)), rng.integers(2, 4, (k + 1, B))])
    inputs, targets = ids[:-1], ids[1:]
    model = char_model()
    opt = Recorder(list(model.modules.values()))
    tb = fr.TBPTT(model, opt, inputs, targets, k1=k)
    tb.step()
    carried = tb.state
    tb.step()
    second = opt.record[1]
    assert not second["0.weight"][[0, 1]].any()
    assert second["0.weight"][[2, 3]].any()
    # it is the gradient of window 2 from the carried state taken as a constant
    assert_grads_equal(second, full_bptt(model, inputs[k:], targets[k:], state=carried))
    # while full BPTT of the same loss reaches tokens 0 and 1
    masked = targets.copy()
    masked[:k] = -100
    assert np.abs(full_bptt(model, inputs, masked)["0.weight"][[0, 1]]).max() > 1e-6


def test_k2_greater_than_k1_backpropagates_through_k2_steps():
    """TBPTT(k1=4, k2=8): the third update backpropagates through steps
    [4, 12) with loss on the fresh steps [8, 12) only; tokens before step 4
    get no gradient, those of the context steps [4, 8) do."""
    rng = np.random.default_rng(3)
    B = 2
    ids = np.concatenate([np.zeros((4, B), int), np.ones((4, B), int), rng.integers(2, 4, (5, B))])
    inputs, targets = ids[:-1], ids[1:]
    model = char_model()
    opt = Recorder(list(model.modules.values()))
    tb = fr.TBPTT(model, opt, inputs, targets, k1=4, k2=8)
    losses = tb.run(3)
    third = opt.record[2]
    assert not third["0.weight"][0].any()
    assert np.abs(third["0.weight"][1]).max() > 1e-8
    _, state4 = model(inputs[:4])
    masked = targets[4:12].copy()
    masked[:4] = -100
    assert_grads_equal(third, full_bptt(model, inputs[4:12], masked, state=state4))
    # the second update: context [0, 4), fresh [4, 8)
    masked = targets[:8].copy()
    masked[:4] = -100
    assert_grads_equal(opt.record[1], full_bptt(model, inputs[:8], masked))
    # the reported loss is that of the fresh steps
    logits, _ = model(inputs[:12])
    assert np.isclose(losses[2], fr.cross_entropy(logits[8:12], targets[8:12])[0], rtol=1e-12)


@pytest.mark.parametrize("k1,k2", [(5, None), (3, 7), (4, 4)])
def test_carried_state_is_the_whole_sequence_forward(k1, k2):
    rng = np.random.default_rng(4)
    inputs, targets = data(rng, 23, 3, 4)
    model = char_model()
    tb = fr.TBPTT(model, Recorder(list(model.modules.values())), inputs, targets, k1=k1, k2=k2)
    while tb.position + k1 < len(inputs):
        tb.step()
        _, (h, c) = model(inputs[: tb.position])
        np.testing.assert_allclose(tb.state[0], h, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(tb.state[1], c, rtol=1e-13, atol=1e-15)


def test_resets_separate_documents_in_values_and_gradients():
    """Stream 0 starts a new document at step 4, stream 1 at step 7: with one
    window over everything (sum loss), the gradients are those of the four
    documents trained apart, and the carried state is that of the last ones."""
    rng = np.random.default_rng(5)
    N = 10
    inputs, targets = data(rng, N, 2, 4)
    resets = np.zeros((N, 2), bool)
    resets[4, 0] = resets[7, 1] = True
    model = char_model(cell="gru")
    expected = None
    for b, lo, hi in [(0, 0, 4), (0, 4, N), (1, 0, 7), (1, 7, N)]:
        g = full_bptt(model, inputs[lo:hi, b : b + 1], targets[lo:hi, b : b + 1], reduction="sum")
        expected = g if expected is None else {k: expected[k] + g[k] for k in g}
    opt = Recorder(list(model.modules.values()))
    tb = fr.TBPTT(
        model,
        opt,
        inputs,
        targets,
        k1=N,
        resets=resets,
        loss=lambda out, t: fr.cross_entropy(out, t, reduction="sum"),
    )
    tb.step()
    assert_grads_equal(opt.record[0], expected)

    walk = fr.TBPTT(
        model, Recorder(list(model.modules.values())), inputs, targets, k1=3, resets=resets
    )
    walk.run(3)
    assert walk.position == 9
    _, h0 = model(inputs[4:9, 0:1])
    _, h1 = model(inputs[7:9, 1:2])
    np.testing.assert_allclose(walk.state[:, 0], h0[:, 0], rtol=1e-13)
    np.testing.assert_allclose(walk.state[:, 1], h1[:, 0], rtol=1e-13)


def test_evaluate_is_the_mean_loss_of_the_whole_forward():
    rng = np.random.default_rng(6)
    inputs, targets = data(rng, 30, 2, 4)
    model = char_model()
    nats = evaluate(model, inputs, targets, window=7)
    assert np.isclose(nats, fr.cross_entropy(model(inputs)[0], targets)[0], rtol=1e-12)


def test_state_dict_resumes_exactly():
    rng = np.random.default_rng(7)
    inputs, targets = data(rng, 40, 3, 4)
    resets = rng.random((40, 3)) < 0.05

    def setup():
        model = char_model(seed=1)
        opt = fr.Adam(list(model.modules.values()), lr=0.01)
        return (
            model,
            opt,
            fr.TBPTT(model, opt, inputs, targets, k1=4, k2=6, resets=resets, clip_norm=1.0),
        )

    model, opt, tb = setup()
    tb.run(7)
    straight = model.state_dict()

    model, opt, tb = setup()
    tb.run(3)
    saved = (model.state_dict(), opt.state_dict(), tb.state_dict())
    model, opt, tb = setup()
    model.load_state_dict(saved[0])
    opt.load_state_dict(saved[1])
    tb.load_state_dict(saved[2])
    tb.run(4)
    for k, v in straight.items():
        np.testing.assert_array_equal(model.state_dict()[k], v, err_msg=k)


def test_learns_next_char_of_a_periodic_string():
    """'abacabad' repeated: the next character after 'a' depends on the three
    before it, so the model must remember; a perfect model has zero loss.
    The loss falls below 0.05 nats within 150 updates."""
    text = "abacabad" * 200
    vocab = charlm.Vocabulary(text)
    inputs, targets, resets = charlm.split_streams(vocab.encode(text), [0], batch=8)
    model = charlm.CharRNN(len(vocab), "lstm", hidden_size=24, num_layers=1, embed_dim=8, seed=0)
    opt = fr.Adam(list(model.modules.values()), lr=2e-2)
    tb = fr.TBPTT(model, opt, inputs, targets, k1=16, clip_norm=5.0)
    losses = tb.run(150)
    assert losses[:5].mean() > 1.0
    assert losses[-5:].mean() < 0.05, losses[-10:]
    assert charlm.sample(model, vocab, 16, temperature=0, prime="abacabad") == "abacabad" * 2


def test_nonfinite_loss_is_reported():
    inputs, targets = data(np.random.default_rng(8), 6, 2, 4)
    model = char_model()
    model.head.load_state_dict({"weight": np.full((4, 5), np.nan)}, strict=False)
    tb = fr.TBPTT(model, fr.SGD(list(model.modules.values()), lr=0.1), inputs, targets, k1=3)
    with pytest.raises(
        FloatingPointError, match=r"non-finite loss nan in the window of steps \[0, 3\)"
    ):
        tb.step()


def test_arguments_are_checked():
    inputs, targets = data(np.random.default_rng(9), 6, 2, 4)
    model = char_model()
    opt = fr.SGD(list(model.modules.values()), lr=0.1)
    with pytest.raises(ValueError, match="k1 <= k2"):
        fr.TBPTT(model, opt, inputs, targets, k1=4, k2=2)
    with pytest.raises(ValueError, match="targets: expected shape"):
        fr.TBPTT(model, opt, inputs, targets[:, :1], k1=4)
    with pytest.raises(ValueError, match="resets: expected shape"):
        fr.TBPTT(model, opt, inputs, targets, k1=4, resets=np.zeros((6, 3), bool))


def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc")
def test_memory_is_flat_over_1000_training_steps():
    rng = np.random.default_rng(10)
    inputs, targets = data(rng, 400, 2, 5)
    resets = rng.random((400, 2)) < 0.02
    model = charlm.CharRNN(5, "lstm", hidden_size=8, num_layers=2, embed_dim=4, seed=0)
    opt = fr.Adam(list(model.modules.values()), lr=1e-3)
    tb = fr.TBPTT(model, opt, inputs, targets, k1=8, k2=12, resets=resets, clip_norm=1.0)
    tb.run(200)
    before = _rss_bytes()
    tb.run(1000)
    grown = _rss_bytes() - before
    assert grown < 2 * 2**20, f"resident memory grew by {grown / 2**20:.2f} MiB over 1000 steps"
