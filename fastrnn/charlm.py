"""A character-level language model, end to end: vocabulary, corpus,
contiguous-stream batching, the training loop (TBPTT), sampling and
checkpoints. `fastrnn train` / `fastrnn sample` (fastrnn/cli.py) drive it.

Model: Embedding(V, E) -> RNN/LSTM/GRU(E, H, L) -> Linear(H, V), trained
with softmax cross-entropy on the next character.

Checkpoints are one .npz, written atomically by fastrnn.serialization.save
(kind 'CharLM') and read with allow_pickle=False: the weights
('model.<module>.<name>'), the optimizer state ('optim.*'), where the TBPTT
walk is ('tbptt.*', with the carried hidden state) and, in the JSON
configuration, the vocabulary, the step, the hyperparameters and the sampling
RNG's state, so that a resumed run continues exactly as the uninterrupted one.
"""

import hashlib
import json
import math
import os
import sys
import sysconfig
import time
import zipfile

import numpy as np

from . import serialization
from .embedding import Embedding
from .layers import GRU, LSTM, RNN
from .linear import Linear
from .optim import SGD, Adagrad, Adam, AdamW, CosineLR
from .tbptt import TBPTT, evaluate

CELLS = {"lstm": LSTM, "gru": GRU, "rnn": RNN}
OPTIMIZERS = {"adam": Adam, "adamw": AdamW, "adagrad": Adagrad, "sgd": SGD}
KIND = "CharLM"


# ------------------------------------------------------------------ data


class Vocabulary:
    """The characters of a text, sorted; ids are their positions."""

    def __init__(self, chars):
        self.chars = "".join(sorted(set(chars)))
        if not self.chars:
            raise ValueError("vocabulary: the text is empty")
        self._table = {c: i for i, c in enumerate(self.chars)}

    def __len__(self):
        return len(self.chars)

    def encode(self, text):
        try:
            return np.array([self._table[c] for c in text], dtype=np.int32)
        except KeyError as e:
            raise ValueError(
                f"text: character {e.args[0]!r} is not in the model's vocabulary"
            ) from None

    def decode(self, ids):
        return "".join(self.chars[i] for i in ids)


def stdlib_corpus(max_chars=3_000_000):
    """The Python standard library's own .py sources, present on every
    machine: ASCII files under sysconfig's 'stdlib' path (site-packages
    excluded), in sorted path order, whole files as long as they fit in
    max_chars. Returns (text, starts): the offsets where each file begins."""
    root = sysconfig.get_paths()["stdlib"]
    paths = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(
            d for d in dirs if d not in ("site-packages", "dist-packages", "__pycache__")
        )
        paths.extend(os.path.join(folder, f) for f in files if f.endswith(".py"))
    paths.sort(key=lambda p: os.path.relpath(p, root).replace(os.sep, "/"))
    parts, starts, size = [], [], 0
    for path in paths:
        try:
            if size + os.path.getsize(path) > max_chars:
                continue  # too big for what is left; a smaller file later may fit
            with open(path, "rb") as f:
                text = f.read().decode("ascii")
        except (OSError, UnicodeDecodeError):
            continue
        text = text.replace("\r\n", "\n")
        if not text.strip():
            continue
        starts.append(size)
        parts.append(text)
        size += len(text)
    if not parts:
        raise RuntimeError(f"no readable .py files under the standard library path {root!r}")
    return "".join(parts), starts


def read_text(path):
    """A text file as one document (undecodable bytes become U+FFFD)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError as e:
        raise ValueError(f"TEXT: cannot read {path!r}: {e.strerror}") from None
    if len(text) < 8:
        raise ValueError(f"TEXT: {path!r} holds {len(text)} characters; need at least 8")
    return text, [0]


def split_streams(ids, starts, batch):
    """char-rnn's layout: the text cut into `batch` contiguous streams side by
    side. Returns inputs (N, B), targets (N, B) = the next characters, and
    resets (N, B), True where a document starts in that stream."""
    ids = np.asarray(ids)
    n = len(ids) // batch
    if n < 2:
        raise ValueError(
            f"text: {len(ids)} characters are too few for {batch} streams of at "
            f"least 2; use a smaller --batch or a longer text"
        )
    begins = np.zeros(len(ids), bool)
    begins[np.asarray(starts, dtype=np.int64)] = True
    data = np.ascontiguousarray(ids[: n * batch].reshape(batch, n).T)
    resets = np.ascontiguousarray(begins[: n * batch].reshape(batch, n).T)
    return data[:-1], data[1:], resets[:-1]


def holdout_split(text, starts, fraction=0.05, max_chars=50_000):
    """The last `fraction` of the text (at most max_chars) is held out.
    Returns (train_text, train_starts, heldout_text, heldout_starts)."""
    k = max(2, min(int(len(text) * fraction), max_chars))
    cut = len(text) - k
    return (
        text[:cut],
        [s for s in starts if s < cut],
        text[cut:],
        [0] + [s - cut for s in starts if s > cut],
    )


# ------------------------------------------------------------------ model


class CharRNN:
    """Embedding -> recurrent layers -> Linear, with the layers' training API:
    forward(ids, state) -> (logits, state_n, cache), backward(dlogits, cache,
    dstate) -> (None, dstate0); calling it runs inference."""

    def __init__(
        self,
        vocab_size,
        cell="lstm",
        hidden_size=256,
        num_layers=1,
        embed_dim=32,
        dtype=np.float32,
        seed=None,
    ):
        if cell not in CELLS:
            raise ValueError(f"cell: expected one of {sorted(CELLS)}, got {cell!r}")
        seeds = [int(s) for s in np.random.SeedSequence(seed).generate_state(3)]
        self.cell = cell
        self.embedding = Embedding(vocab_size, embed_dim, dtype=dtype, seed=seeds[0])
        self.rnn = CELLS[cell](embed_dim, hidden_size, num_layers, dtype=dtype, seed=seeds[1])
        self.head = Linear(hidden_size, vocab_size, dtype=dtype, seed=seeds[2])

    @property
    def modules(self):
        return {"embedding": self.embedding, "rnn": self.rnn, "head": self.head}

    def config(self):
        return dict(
            vocab_size=self.embedding.num_embeddings,
            cell=self.cell,
            hidden_size=self.rnn.hidden_size,
            num_layers=self.rnn.num_layers,
            embed_dim=self.embedding.embedding_dim,
            dtype=self.rnn.dtype.name,
        )

    def __call__(self, ids, state=None):
        """Inference: ids (T, B) -> (logits (T, B, V), state_n)."""
        y, state = self.rnn(self.embedding(ids), state)
        return self.head(y), state

    def forward(self, ids, state=None):
        e, c_e = self.embedding.forward(ids)
        y, state, c_r = self.rnn.forward(e, state)
        logits, c_h = self.head.forward(y)
        return logits, state, (c_e, c_r, c_h)

    def backward(self, dlogits, cache, dstate=None):
        c_e, c_r, c_h = cache
        dy = self.head.backward(dlogits, c_h)
        de, dstate0 = self.rnn.backward(dy, c_r, dstate)
        self.embedding.backward(de, c_e)
        return None, dstate0

    def zero_grad(self):
        for m in self.modules.values():
            m.zero_grad()

    def state_dict(self):
        return {
            f"{k}.{name}": p for k, m in self.modules.items() for name, p in m.state_dict().items()
        }

    def load_state_dict(self, d):
        for k, m in self.modules.items():
            m.load_state_dict(_part(d, k + "."))

    def num_params(self):
        return sum(p.size for m in self.modules.values() for p in m._params.values())


def sample(model, vocab, length, temperature=1.0, prime=None, rng=None):
    """`length` characters drawn one at a time from softmax(logits / T), after
    running `prime` through the model from a zero state (the start of a
    document). Without a prime the model starts from a newline (or from the
    vocabulary's first character if it has none). temperature 0 takes the
    most likely character. Returns the new characters, without the prime."""
    if not temperature >= 0:
        raise ValueError(f"temperature: expected >= 0, got {temperature}")
    rng = np.random.default_rng(rng)
    if not prime:
        prime = "\n" if "\n" in vocab.chars else vocab.chars[0]
    ids = vocab.encode(prime)
    state = None
    if len(ids) > 1:
        _, state = model(ids[:-1, None], state)
    last, out = int(ids[-1]), []
    for _ in range(int(length)):
        logits, state = model(np.array([[last]]), state)
        z = logits[0, 0].astype(np.float64)
        if temperature == 0:
            last = int(np.argmax(z))
        else:
            z = z / temperature
            p = np.exp(z - z.max())
            last = int(rng.choice(len(p), p=p / p.sum()))
        out.append(last)
    return vocab.decode(out)


# ------------------------------------------------------------------ checkpoints


def save_checkpoint(path, model, vocab, optimizer, tbptt, step, settings, rng, data=None):
    """One .npz, atomically (see the module docstring); `data` identifies the
    training text, so a resume knows whether the saved walk applies."""
    arrays = {f"model.{k}": v for k, v in model.state_dict().items()}
    arrays.update({f"optim.{k}": v for k, v in optimizer.state_dict().items()})
    arrays.update({f"tbptt.{k}": v for k, v in tbptt.state_dict().items()})
    config = dict(
        model=model.config(),
        vocab=vocab.chars,
        step=int(step),
        settings=settings,
        rng=rng.bit_generator.state,
        data=data,
    )
    serialization.save(path, KIND, config, arrays)


def load_checkpoint(path):
    """Returns (config, arrays) of a checkpoint written by save_checkpoint."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if serialization.CONFIG_KEY not in data.files:
                raise ValueError("no fastrnn configuration inside")
            meta = json.loads(str(data[serialization.CONFIG_KEY][()]))
            arrays = {k: data[k] for k in data.files if k != serialization.CONFIG_KEY}
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise ValueError(f"checkpoint: cannot read {path!r}: {e}") from None
    if (
        not isinstance(meta, dict)
        or meta.get("type") != KIND
        or not isinstance(meta.get("config"), dict)
    ):
        raise ValueError(f"checkpoint: {path!r} is not a fastrnn character-model checkpoint")
    return meta["config"], arrays


def _part(arrays, prefix):
    return {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}


def load_model(path):
    """(model, vocab, config) from a checkpoint, for sampling."""
    config, arrays = load_checkpoint(path)
    try:
        vocab = Vocabulary(config["vocab"])
        spec = dict(config["model"])
        if spec.pop("vocab_size") != len(vocab):
            raise ValueError("the vocabulary does not match the model")
        model = CharRNN(len(vocab), **spec)
        model.load_state_dict(_part(arrays, "model."))
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"checkpoint: {path!r} has a bad configuration: {e}") from None
    return model, vocab, config


# ------------------------------------------------------------------ training

# The defaults train in about a minute on this 2-core machine (one thread,
# ~30 ms per step of 32 streams x 32 characters) to ~1.9 bits per character on
# held-out standard-library code.
DEFAULTS = dict(
    cell="lstm",
    hidden=256,
    layers=1,
    embed=32,
    seq_len=32,
    batch=32,
    lr=6e-3,
    optimizer="adam",
    clip=5.0,
    seed=0,
    dtype="float32",
    min_lr_ratio=0.1,
)
STEPS = 1500
# what a resumed run cannot change: the model, its optimizer state and the data layout
FIXED_ON_RESUME = (
    "cell",
    "hidden",
    "layers",
    "embed",
    "seq_len",
    "batch",
    "optimizer",
    "seed",
    "dtype",
)


def _digest(ids):
    return hashlib.sha256(np.ascontiguousarray(ids, np.int32).tobytes()).hexdigest()[:16]


class _Progress:
    """tqdm when it is installed (pip install fastrnn[train]); else a line
    every few percent."""

    def __init__(self, total, initial, out):
        self.out, self.total, self.n = out, total, initial
        try:
            from tqdm import tqdm
        except ImportError:
            self.bar, self.every = None, max(1, (total - initial) // 20)
        else:
            self.bar = tqdm(
                total=total,
                initial=initial,
                unit="step",
                file=out,
                dynamic_ncols=True,
                mininterval=0.5,
            )

    def update(self, loss, rate):
        self.n += 1
        if self.bar is not None:
            self.bar.set_postfix_str(
                f"loss {loss:.3f} ({loss / math.log(2):.2f} bpc), {rate:,.0f} chars/s",
                refresh=False,
            )
            self.bar.update(1)
        elif self.n % self.every == 0 or self.n == self.total:
            print(
                f"step {self.n}/{self.total}  loss {loss:.3f} ({loss / math.log(2):.2f} bpc)  "
                f"{rate:,.0f} chars/s",
                file=self.out,
                flush=True,
            )

    def write(self, text):
        if self.bar is not None:
            self.bar.write(text, file=self.out)
        else:
            print(text, file=self.out, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def train(
    text_path=None,
    steps=STEPS,
    out="fastrnn-run",
    resume=False,
    sample_every=None,
    save_every=None,
    sample_length=200,
    temperature=0.8,
    log=None,
    **settings,
):
    """Train (or resume training of) a character model up to `steps` updates.

    With text_path None it trains on the standard library's sources
    (stdlib_corpus); the last 5% of the text (at most 50,000 characters) is
    held out. The learning rate follows a cosine from lr down to
    lr * min_lr_ratio over `steps`. Every `sample_every` steps it prints a
    sample, every `save_every` it writes out/checkpoint.npz; at the end it
    saves, reports the held-out bits per character and prints a sample.
    `settings` (None: the default, or the checkpoint's on resume) are those
    of DEFAULTS. With resume and an existing out/checkpoint.npz, training goes
    on from it exactly where it stopped. Returns a dict of results."""
    unknown = set(settings) - set(DEFAULTS)
    if unknown:
        raise TypeError(f"train: unknown setting(s) {sorted(unknown)}")
    log = sys.stdout if log is None else log
    given = {k: v for k, v in settings.items() if v is not None}
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "checkpoint.npz")
    config = arrays = None
    if resume and not os.path.exists(path):
        print(f"resume: no checkpoint in {out}; starting a new run", file=log)
    elif not resume and os.path.exists(path):
        print(f"{path} exists: a new run replaces it (--resume continues it)", file=log)
    if resume and os.path.exists(path):
        config, arrays = load_checkpoint(path)
        changed = [
            k for k in FIXED_ON_RESUME if k in given and given[k] != config["settings"].get(k)
        ]
        if changed:
            had = ", ".join(f"{k}={config['settings'].get(k)!r}" for k in changed)
            raise ValueError(
                f"resume: cannot change {', '.join(changed)} of the run in {path} (it has {had})"
            )
        s = {**DEFAULTS, **config["settings"], **given}
    else:
        s = {**DEFAULTS, **given}
    if s["cell"] not in CELLS:
        raise ValueError(f"cell: expected one of {sorted(CELLS)}, got {s['cell']!r}")
    if s["optimizer"] not in OPTIMIZERS:
        raise ValueError(f"optimizer: expected one of {sorted(OPTIMIZERS)}, got {s['optimizer']!r}")

    text, starts = read_text(text_path) if text_path else stdlib_corpus()
    train_text, train_starts, held_text, held_starts = holdout_split(text, starts)
    vocab = Vocabulary(config["vocab"] if config else text)
    try:
        train_ids, held_ids = vocab.encode(train_text), vocab.encode(held_text)
    except ValueError as e:
        raise ValueError(
            f"{e}: the text has characters the checkpoint's model does not know"
        ) from None
    inputs, targets, resets = split_streams(train_ids, train_starts, s["batch"])
    digest = _digest(train_ids)

    model = CharRNN(
        len(vocab), s["cell"], s["hidden"], s["layers"], s["embed"], s["dtype"], s["seed"]
    )
    schedule = CosineLR(s["lr"], steps, min_lr=s["lr"] * s["min_lr_ratio"])
    optimizer = OPTIMIZERS[s["optimizer"]](list(model.modules.values()), lr=schedule)
    tbptt = TBPTT(
        model,
        optimizer,
        inputs,
        targets,
        k1=s["seq_len"],
        resets=resets,
        clip_norm=s["clip"] or None,
    )
    rng = np.random.default_rng(s["seed"])
    step = 0
    if config is not None:
        step = int(config["step"])
        model.load_state_dict(_part(arrays, "model."))
        optimizer.load_state_dict(_part(arrays, "optim."))
        if config.get("data") == digest:
            tbptt.load_state_dict(_part(arrays, "tbptt."))
        else:
            print(
                "resume: the training text differs from the checkpoint's; its walk over the "
                "data starts again at the beginning",
                file=log,
            )
        rng.bit_generator.state = config["rng"]
        print(f"resumed {path} at step {step}", file=log)
    sample_every = sample_every or max(1, steps // 4)
    save_every = save_every or max(1, steps // 4)

    def checkpoint():
        save_checkpoint(path, model, vocab, optimizer, tbptt, step, s, rng, digest)

    corpus = text_path or f"the Python standard library's sources ({len(starts)} files)"
    print(
        f"training a {s['layers']}-layer {s['cell'].upper()}, hidden {s['hidden']} "
        f"({model.num_params():,} parameters), on {corpus}: {len(text):,} characters, "
        f"vocabulary {len(vocab)}, {len(held_text):,} held out",
        file=log,
        flush=True,
    )
    progress = _Progress(steps, step, sys.stderr if log is sys.stdout else log)  # bar on stderr
    t0, trained, losses = time.perf_counter(), 0, []
    try:
        while step < steps:
            position = tbptt.position
            loss = tbptt.step()
            step += 1
            trained += s["batch"] * ((tbptt.position or len(inputs)) - position)
            losses.append(loss)
            smooth = float(np.mean(losses[-50:]))
            progress.update(smooth, trained / (time.perf_counter() - t0))
            if step % sample_every == 0 and step < steps:
                progress.write(
                    f"--- step {step}, loss {smooth:.3f} ({smooth / math.log(2):.2f} "
                    f"bpc) ---\n"
                    f"{sample(model, vocab, sample_length, temperature, rng=rng)}\n---"
                )
            if step % save_every == 0 and step < steps:
                checkpoint()
    finally:
        progress.close()
    seconds = time.perf_counter() - t0
    checkpoint()
    streams = max(1, min(16, len(held_ids) // 2))
    nats = evaluate(model, *split_streams(held_ids, held_starts, streams))
    bpc = nats / math.log(2)
    text_out = sample(model, vocab, 2 * sample_length, temperature, rng=rng)
    print(
        f"step {step}: held-out {bpc:.3f} bits per character ({len(held_text):,} characters); "
        f"trained on {trained:,} characters in {seconds:.1f} s; saved {path}",
        file=log,
    )
    print(f"--- sample (temperature {temperature}) ---\n{text_out}\n---", file=log, flush=True)
    return dict(
        step=step,
        heldout_bpc=bpc,
        train_loss=losses[-1] if losses else None,
        checkpoint=path,
        seconds=seconds,
        sample=text_out,
    )
