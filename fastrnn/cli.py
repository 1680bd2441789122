"""The `fastrnn` command (also `python -m fastrnn`):

    fastrnn train [TEXT] --steps N --out DIR [--cell lstm|gru|rnn] [--hidden H]
                  [--layers L] [--seq-len K] [--batch B] [--lr LR] [--resume]
    fastrnn sample CHECKPOINT [--temperature T] [--length N] [--prime TEXT] [--seed S]
    fastrnn convert SOURCE.pt|.npz|.onnx --out MODEL.npz|.onnx [--type lstm] [...]
    fastrnn bench [--quick] [--threads N] [--only PATTERN] [--json PATH] [--plot PATH]

Without TEXT, `train` learns the Python standard library's own sources."""

import argparse
import contextlib
import sys

from . import bench, charlm, interop
from .threads import get_num_threads, set_num_threads


def _positive(value):
    v = int(value)
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return v


def _parser():
    p = argparse.ArgumentParser(
        prog="fastrnn",
        description="Train and sample character-level recurrent language models on the CPU.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    d = charlm.DEFAULTS

    t = sub.add_parser(
        "train",
        help="train a character model (default corpus: the Python standard library's sources)",
        description="Train a character-level model with truncated BPTT; saves "
        "DIR/checkpoint.npz, prints samples and the held-out bits per character.",
    )
    t.add_argument(
        "text",
        nargs="?",
        metavar="TEXT",
        help="a UTF-8 text file (default: the Python standard library's .py sources)",
    )
    t.add_argument(
        "--steps",
        type=_positive,
        default=charlm.STEPS,
        help="train up to this many updates (counting those of a resumed run; default %(default)s)",
    )
    t.add_argument(
        "--out",
        default="fastrnn-run",
        metavar="DIR",
        help="where checkpoint.npz goes (default %(default)s)",
    )
    t.add_argument(
        "--resume", action="store_true", help="continue from DIR/checkpoint.npz if it exists"
    )
    t.add_argument("--cell", choices=sorted(charlm.CELLS), help=f"default {d['cell']}")
    t.add_argument("--hidden", type=_positive, help=f"hidden size (default {d['hidden']})")
    t.add_argument("--layers", type=_positive, help=f"recurrent layers (default {d['layers']})")
    t.add_argument("--embed", type=_positive, help=f"embedding size (default {d['embed']})")
    t.add_argument("--seq-len", type=_positive, help=f"TBPTT window k1 (default {d['seq_len']})")
    t.add_argument("--batch", type=_positive, help=f"parallel streams (default {d['batch']})")
    t.add_argument(
        "--lr",
        type=float,
        help=f"peak learning rate (default {d['lr']}; cosine "
        f"decay to {d['min_lr_ratio']}x over --steps)",
    )
    t.add_argument(
        "--optimizer", choices=sorted(charlm.OPTIMIZERS), help=f"default {d['optimizer']}"
    )
    t.add_argument(
        "--clip", type=float, help=f"gradient-norm clip, 0 for none (default {d['clip']})"
    )
    t.add_argument(
        "--seed", type=int, help=f"initialisation and sampling seed (default {d['seed']})"
    )
    t.add_argument("--dtype", choices=["float32", "float64"], help=f"default {d['dtype']}")
    t.add_argument(
        "--sample-every",
        type=_positive,
        metavar="N",
        help="print a sample every N steps (default: 4 times per run)",
    )
    t.add_argument(
        "--save-every",
        type=_positive,
        metavar="N",
        help="checkpoint every N steps (default: 4 times per run, and at the end)",
    )
    t.add_argument(
        "--temperature", type=float, default=0.8, help="of the samples (default %(default)s)"
    )

    s = sub.add_parser("sample", help="generate text from a checkpoint")
    s.add_argument("checkpoint", metavar="CHECKPOINT", help="a checkpoint.npz written by train")
    s.add_argument(
        "--temperature",
        type=float,
        default=0.8,
        help="softmax temperature, 0 for the most likely character (default %(default)s)",
    )
    s.add_argument(
        "--length", type=int, default=500, help="characters to generate (default %(default)s)"
    )
    s.add_argument("--prime", default="", help="text to start from (printed before the sample)")
    s.add_argument("--seed", type=int, help="random seed (default: fresh entropy)")
    for command in (t, s):
        command.add_argument(
            "--threads",
            type=int,
            default=1,
            help="threads of fastrnn's "
            "kernels and of BLAS (the latter with threadpoolctl installed); "
            "0 keeps the libraries' defaults. Default 1: for models of this "
            "size a few cores gain little and other load costs a lot",
        )
    interop.add_convert_parser(sub)
    bench.add_bench_parser(sub)
    return p


@contextlib.contextmanager
def _threads(n):
    """fastrnn's kernels and the BLAS libraries on n threads (0: unchanged)
    for the duration of a command."""
    if n < 0:
        raise ValueError(f"--threads: expected an integer >= 0, got {n}")
    if not n:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        blas = contextlib.nullcontext()
    else:
        blas = threadpool_limits(limits=n, user_api="blas")
    before = get_num_threads()
    set_num_threads(n)
    try:
        with blas:
            yield
    finally:
        set_num_threads(before)


def main(argv=None):
    args = _parser().parse_args(argv)
    try:
        if args.command == "convert":
            return interop.convert(args)
        if args.command == "bench":
            return bench.run_command(args)
        with _threads(args.threads):
            _run(args)
    except (ValueError, FloatingPointError) as e:
        print(f"fastrnn {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"fastrnn {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


def _run(args):
    if args.command == "train":
        settings = {k: getattr(args, k) for k in charlm.DEFAULTS if hasattr(args, k)}
        charlm.train(
            args.text,
            steps=args.steps,
            out=args.out,
            resume=args.resume,
            sample_every=args.sample_every,
            save_every=args.save_every,
            temperature=args.temperature,
            **settings,
        )
    else:
        if args.temperature < 0 or args.length < 0:
            raise ValueError("--temperature and --length must be >= 0")
        model, vocab, _ = charlm.load_model(args.checkpoint)
        text = charlm.sample(model, vocab, args.length, args.temperature, args.prime, rng=args.seed)
        sys.stdout.write(args.prime + text + "\n")
