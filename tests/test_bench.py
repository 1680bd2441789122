"""`fastrnn bench`: the JSON schema, peers that are missing, the correctness
gate, --only, --plot and the subcommand. All on the test-only tiny sizes
(--tiny), a few seconds each. And the FMA peak the rows are measured against
(_core.fma_peak): its sanity, not fastrnn's speed."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

import fastrnn
from fastrnn import _core, bench

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

ALL = ("fastrnn", "PyTorch", "ONNX Runtime", "NumPy")
PER_SCENARIO = {
    "stream": ALL,
    "sequence": ALL,
    "train": ("fastrnn", "PyTorch"),
    "mixed": ("fastrnn", "PyTorch", "ONNX Runtime"),
    "train-mixed": ("fastrnn", "PyTorch"),
}
KEYS = {
    "scenario",
    "cell",
    "name",
    "params",
    "engine",
    "status",
    "reason",
    "samples_s",
    "median_s",
    "p99_s",
    "gflops",
    "sgemm_fraction",
    "peak_fraction",
    "ratio_vs_fastrnn",
}


def run(tmp_path, capsys, *args):
    """`fastrnn bench --tiny ARGS --json PATH`: (exit status, JSON, stdout, stderr)."""
    path = tmp_path / "bench.json"
    status = bench.main(["--tiny", "--no-progress", "--threads", "1", "--json", str(path), *args])
    out, err = capsys.readouterr()
    return status, json.loads(path.read_text()), out, err


def by_engine(results):
    out = {}
    for r in results:
        out.setdefault(r["engine"], []).append(r)
    return out


def test_schema_every_engine_every_row(tmp_path, capsys):
    status, data, out, _ = run(tmp_path, capsys)
    assert status == 0
    meta, results = data["meta"], data["results"]
    assert meta["threads"] == 1 and meta["cpu"] and meta["logical_cores"] >= 1
    assert {"python", "numpy", "scipy", "fastrnn", "torch", "onnxruntime"} <= set(meta["versions"])
    assert meta["threadpools"] and all(p["num_threads"] == 1 for p in meta["threadpools"])
    assert meta["sgemm"] and all(s["gflops"] > 0 for s in meta["sgemm"])
    peak = meta["fma_peak"]
    assert peak["simd"] == meta["simd"] == fastrnn.simd_level() and peak["cores"] == 1
    assert math.isfinite(peak["gflops"]) and peak["gflops"] == peak["one_core_gflops"] > 0
    rows = bench.rows_for(bench.TINY)
    assert meta["rows"] == [r.name for r in rows]
    for row in rows:
        mine = [r for r in results if r["name"] == row.name]
        assert sorted(r["engine"] for r in mine) == sorted(PER_SCENARIO[row.scenario])
    for r in results:
        assert KEYS <= set(r), r["name"]
        assert r["status"] == "ok", (r["name"], r["engine"], r["reason"])
        s = np.asarray(r["samples_s"])
        # rounds x at least min_calls, each sample a positive number of seconds
        assert s.size >= bench.TINY.rounds * bench.TINY.min_calls and (s > 0).all()
        assert r["median_s"] == pytest.approx(float(np.median(s)), rel=1e-6)
        assert r["p99_s"] >= r["median_s"] > 0
        assert r["gflops"] > 0 and r["sgemm_fraction"] > 0
        assert 0 < r["peak_fraction"] < 1.5, (r["name"], r["engine"], r["peak_fraction"])
        assert r["peak_fraction"] == pytest.approx(r["gflops"] / peak["gflops"])
        assert len(r["round_medians_s"]) == bench.TINY.rounds
        if r["engine"] != "fastrnn":
            assert r["rel_err"] < bench.MAX_REL_ERR
    assert "### Streaming step" in out and "### Sequence inference" in out and "### Training" in out
    assert "| cell | H | fastrnn | PyTorch | ONNX Runtime | NumPy |" in out
    assert f"- FMA peak ({meta['simd']}, 1 core): " in out
    assert "| fastrnn GFLOP/s | of SGEMM | of peak | load |" in out


@pytest.mark.parametrize("missing, engine", [("onnxruntime", "ONNX Runtime"), ("torch", "PyTorch")])
def test_missing_peer_is_skipped_with_reason(tmp_path, capsys, monkeypatch, missing, engine):
    monkeypatch.setitem(sys.modules, missing, None)  # `import missing` raises ImportError
    status, data, out, _ = run(tmp_path, capsys, "--only", "stream/gru", "--only", "train/rnn")
    assert status == 0
    assert data["meta"]["versions"][missing] is None
    results = by_engine(data["results"])
    for r in results[engine]:
        assert r["status"] == "skipped" and missing in r["reason"] and r["samples_s"] == []
    others = [r for e, rs in results.items() if e != engine for r in rs]
    assert others and all(r["status"] == "ok" and r["samples_s"] for r in others)
    assert f"{engine}: skipped" in out and "not installed" in out


def test_gate_catches_a_wrong_engine(tmp_path, capsys):
    status, data, out, err = run(
        tmp_path,
        capsys,
        "--only",
        "stream/lstm",
        "--only",
        "sequence/rnn",
        "--test-faulty",
        "NumPy",
    )
    assert status == 1
    results = by_engine(data["results"])
    assert len(results["NumPy"]) == 2
    for r in results["NumPy"]:
        assert r["status"] == "mismatch" and r["samples_s"] == [] and r["median_s"] is None
        assert r["rel_err"] > bench.MAX_REL_ERR and "rel err" in r["reason"]
    assert all(
        r["status"] == "ok" for e in ("fastrnn", "PyTorch", "ONNX Runtime") for r in results[e]
    )
    assert "NumPy MISMATCH" in err and "NOT timed" in err
    assert "**MISMATCH**" in out


def test_gate_compares_training_gradients(tmp_path, capsys):
    status, data, _, _ = run(tmp_path, capsys, "--only", "train/gru", "--test-faulty", "PyTorch")
    assert status == 1
    (torch_row,) = by_engine(data["results"])["PyTorch"]
    assert torch_row["status"] == "mismatch"


def test_only_filters(tmp_path, capsys):
    status, data, out, _ = run(tmp_path, capsys, "--only", "sequence/lstm")
    assert status == 0
    assert {(r["scenario"], r["cell"]) for r in data["results"]} == {("sequence", "lstm")}
    assert "### Streaming" not in out and "### Training" not in out
    assert [r.name for r in bench.rows_for(bench.FULL, ["*/gru/B1-*"])] == [
        "sequence/gru/B1-H128",
        "sequence/gru/B1-H256",
        "sequence/gru/B1-H512",
    ]
    assert bench.main(["--tiny", "--only", "no-such-row"]) == 2
    assert "matches no row" in capsys.readouterr().err


def test_plot_writes_a_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    png = tmp_path / "bench.png"
    status, _, _, _ = run(tmp_path, capsys, "--only", "rnn", "--plot", str(png))
    assert status == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_says_so(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert bench.main(["--tiny", "--plot", str(tmp_path / "x.png")]) == 2
    assert "--plot needs matplotlib" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_suite_sizes():
    """The full suite's rows: streaming, sequences, training, and mixed lengths
    in inference and training; --quick is a subset."""
    full = [r.name for r in bench.rows_for(bench.FULL)]
    assert len(full) == 3 * 4 + 3 * 9 + 3 + 3 + 3
    assert "stream/lstm/H512" in full and "sequence/gru/B64-H512" in full
    assert "train/rnn/T64-B32-H256" in full
    assert "mixed/lstm/B64-H256" in full and "train-mixed/gru/T64-B32-H128" in full
    assert set(r.name for r in bench.rows_for(bench.QUICK)) < set(full)


def test_subcommand(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fastrnn",
            "bench",
            "--tiny",
            "--threads",
            "1",
            "--only",
            "stream/rnn",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "# fastrnn bench (1 thread)" in proc.stdout
    assert "- FMA peak (" in proc.stdout and "GFLOP/s" in proc.stdout
    assert "| RNN | 16 |" in proc.stdout
    assert "stream/rnn/H16" in proc.stderr  # the progress bar


def test_fma_peak_is_a_rate():
    flops = _core.fma_peak(0.02)
    assert math.isfinite(flops) and flops > 0
    for bad in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="seconds"):
            _core.fma_peak(bad)


def peak_under(isa):
    """(simd_level(), _core.fma_peak()) in a child Python with FASTRNN_ISA=isa
    (the level is chosen at import)."""
    env = dict(os.environ, FASTRNN_ISA=isa)
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, fastrnn as fr\n"
            "print(json.dumps([fr.simd_level(), fr._core.fma_peak(0.1)]))",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return tuple(json.loads(proc.stdout))


def test_fma_peak_of_avx2_above_generic():
    """AVX2's FMAs do 4x the work per instruction of SSE2's separate
    multiplies and adds: the peak of the avx2 path is above the generic one's
    on any CPU that has both (a loose check, with room for a busy machine)."""
    level, avx2 = peak_under("avx2")
    if level != "avx2":
        pytest.skip(f"this CPU (or build) has no avx2 path (ran {level})")
    level, generic = peak_under("generic")
    assert level == "generic"
    assert 0 < generic < avx2, (generic, avx2)
