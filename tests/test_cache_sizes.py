"""The cache sizes the C core reads once (csrc/cache_sizes.c) steer only how
work is blocked and shared, never the results: each case runs fastrnn in a
child Python with FASTRNN_L2_KB or FASTRNN_L3_KB set (read at first use, in
the child's C core) and compares the outputs and gradients bitwise."""

import numpy as np
import pytest

from helpers import run_fastrnn

# An LSTM's outputs and every weight gradient, float32, one array; argv[1]
# is where it goes, argv[2] the thread count. B = 48 rows are whole row
# blocks of every SIMD path (8, 6, 4 rows), and a step has work enough for
# two threads (csrc/sequence.inc).
_RUN = """
import sys, numpy as np
fr.set_num_threads(int(sys.argv[2]))
layer = fr.LSTM(40, 72, seed=3)
x = np.random.default_rng(0).standard_normal((50, 48, 40)).astype(np.float32)
y, _, cache = layer.forward(x)
layer.backward(np.ones_like(y), cache)
np.save(sys.argv[1], np.concatenate([y.ravel()] + [g.ravel() for g in layer.grads.values()]))
"""


def run(tmp_path, isa, threads, env):
    path = str(tmp_path / f"out{len(list(tmp_path.iterdir()))}.npy")
    run_fastrnn(isa, _RUN, path, str(threads), env=env)
    return np.load(path)


@pytest.mark.parametrize("isa", [None, "avx2"], ids=["best", "avx2"])
def test_l2_size_leaves_outputs_and_gradients_bitwise(isa, tmp_path):
    """L2 sets the input projection's blocks of steps and chunks of rows,
    the weight-gradient products' column blocks and when the backward keeps
    its gate gradients by non-temporal stores: a Zen 3's 512 KB, a tiny and a
    large L2 give the same bits (the blocks never change the order of a
    sum)."""
    got = [run(tmp_path, isa, 1, {"FASTRNN_L2_KB": kb}) for kb in ("16", "512", "8192")]
    for g in got[1:]:
        np.testing.assert_array_equal(g, got[0])


@pytest.mark.parametrize("isa", [None, "avx2"], ids=["best", "avx2"])
def test_l3_size_picks_the_thread_split_not_the_results(isa, tmp_path):
    """Two threads split the batch rows while the weights take at most a
    third of L3, else the hidden units: with the CPU's L3 (rows) and a 16 KB
    one (units) the results are those of one thread, bit for bit."""
    one = run(tmp_path, isa, 1, {})
    for env in ({}, {"FASTRNN_L3_KB": "16"}):
        np.testing.assert_array_equal(run(tmp_path, isa, 2, env), one, err_msg=str(env))
