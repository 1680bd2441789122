"""The `fastrnn` command: train on a tiny text, resume exactly, sample; the
default corpus; `python -m fastrnn`; running without tqdm; clear errors."""

import os
import subprocess
import sys

import numpy as np
import pytest

import fastrnn as fr
from fastrnn import charlm
from fastrnn.cli import main

TINY = ["--hidden", "12", "--embed", "6", "--batch", "4", "--seq-len", "10", "--lr", "0.01"]
TEXT = "".join(f"def f{i}(x):\n    return x * {i} + {i % 7}\n\n" for i in range(60))


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "tiny.txt"
    path.write_text(TEXT)
    return str(path)


def weights(path):
    config, arrays = charlm.load_checkpoint(path)
    return config, {k: v for k, v in arrays.items() if k.startswith(("model.", "optim."))}


def test_train_resume_and_sample(text_file, tmp_path, capsys, monkeypatch):
    straight, split = str(tmp_path / "straight"), str(tmp_path / "split")
    every = ["--sample-every", "2", "--save-every", "3"]
    assert main(["train", text_file, "--steps", "6", "--out", straight] + TINY + every) == 0
    out = capsys.readouterr().out
    assert "held-out" in out and "bits per character" in out and "--- sample" in out
    assert sorted(os.listdir(straight)) == ["checkpoint.npz"]  # atomic: no temporary left

    # killed right after the checkpoint of step 3, then resumed with the same
    # command: the same weights, optimizer state and sampling RNG as in one go
    save = charlm.save_checkpoint

    def save_then_die(path, model, vocab, optimizer, tbptt, step, *rest):
        save(path, model, vocab, optimizer, tbptt, step, *rest)
        if step == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(charlm, "save_checkpoint", save_then_die)
    every = ["--sample-every", "2", "--save-every", "3"]
    assert main(["train", text_file, "--steps", "6", "--out", split] + TINY + every) == 130
    assert weights(os.path.join(split, "checkpoint.npz"))[0]["step"] == 3
    monkeypatch.setattr(charlm, "save_checkpoint", save)
    assert main(["train", text_file, "--steps", "6", "--out", split, "--resume"] + every) == 0
    assert "resumed" in capsys.readouterr().out
    (c1, w1), (c2, w2) = (
        weights(os.path.join(straight, "checkpoint.npz")),
        weights(os.path.join(split, "checkpoint.npz")),
    )
    assert c1["step"] == c2["step"] == 6 and c1["rng"] == c2["rng"]
    assert w1.keys() == w2.keys()
    for k in w1:
        np.testing.assert_array_equal(w1[k], w2[k], err_msg=k)

    ckpt = os.path.join(split, "checkpoint.npz")
    args = [
        "sample",
        ckpt,
        "--length",
        "40",
        "--seed",
        "3",
        "--prime",
        "def ",
        "--temperature",
        "1.0",
    ]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert first.startswith("def ") and len(first) == 4 + 40 + 1
    assert set(first[:-1]) <= set(TEXT)
    assert main(args) == 0
    assert capsys.readouterr().out == first  # seeded: reproducible
    assert main(["sample", ckpt, "--length", "30", "--temperature", "0"]) == 0
    assert len(capsys.readouterr().out) == 31


def test_python_m_fastrnn(text_file, tmp_path):
    out = str(tmp_path / "run")
    run = subprocess.run(
        [sys.executable, "-m", "fastrnn", "train", text_file, "--steps", "2", "--out", out] + TINY,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "bits per character" in run.stdout
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "fastrnn",
            "sample",
            os.path.join(out, "checkpoint.npz"),
            "--length",
            "20",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert len(run.stdout) == 21


def test_default_corpus_is_the_standard_library(tmp_path, capsys):
    text, starts = charlm.stdlib_corpus(max_chars=300_000)
    again, starts_again = charlm.stdlib_corpus(max_chars=300_000)
    assert text == again and starts == starts_again  # deterministic
    assert 100_000 < len(text) <= 300_000 and text.isascii()
    assert starts[0] == 0 and len(starts) > 5 and "import" in text
    # no TEXT: trains on it (one step of a tiny model)
    out = str(tmp_path / "stdlib")
    assert (
        main(
            [
                "train",
                "--steps",
                "1",
                "--out",
                out,
                "--hidden",
                "8",
                "--embed",
                "4",
                "--batch",
                "8",
                "--seq-len",
                "8",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "standard library" in printed and "bits per character" in printed


def test_trains_without_tqdm(text_file, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # `import tqdm` now fails
    assert main(["train", text_file, "--steps", "2", "--out", str(tmp_path / "r")] + TINY) == 0
    assert "step 2/2  loss" in capsys.readouterr().err  # progress goes to stderr


def test_errors_are_clear(text_file, tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["train", text_file, "--steps", "1", "--out", out] + TINY) == 0
    capsys.readouterr()
    assert (
        main(["train", text_file, "--steps", "2", "--out", out, "--resume", "--hidden", "9"]) == 1
    )
    assert "cannot change hidden" in capsys.readouterr().err

    bad = tmp_path / "bad.npz"
    bad.write_text("not a checkpoint")
    assert main(["sample", str(bad)]) == 1
    assert "cannot read" in capsys.readouterr().err
    lstm_file = tmp_path / "lstm.npz"
    fr.LSTM(2, 3).save(lstm_file)
    assert main(["sample", str(lstm_file)]) == 1
    assert "not a fastrnn character-model checkpoint" in capsys.readouterr().err
    assert main(["sample", os.path.join(out, "checkpoint.npz"), "--prime", "\u00e9"]) == 1
    assert "not in the model's vocabulary" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--cell", "transformer"])


def test_threads_apply_to_the_command_only(text_file, tmp_path, capsys):
    before = fr.get_num_threads()
    for n in ("1", "2", "0"):
        assert (
            main(
                ["train", text_file, "--steps", "1", "--out", str(tmp_path / n), "--threads", n]
                + TINY
            )
            == 0
        )
        assert fr.get_num_threads() == before
    assert main(["train", text_file, "--out", str(tmp_path / "x"), "--threads", "-1"]) == 1
    assert "--threads" in capsys.readouterr().err
