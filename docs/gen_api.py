"""Write docs/api.md, fastrnn's API reference, from its docstrings and signatures.

    python docs/gen_api.py           # rewrite docs/api.md
    python docs/gen_api.py --check   # exit 1 if docs/api.md is out of date

Needs only the standard library and an importable fastrnn (pip install -e .).
tests/test_docs.py runs the check, so a docstring or signature changed
without regenerating fails CI.

What goes in: SECTIONS below, in that order. A public class is shown with
its signature, its docstring and the public members (methods, properties,
`__call__`) it documents itself; members that RNN, LSTM and GRU (or the
cells, the optimizers, every model) share are documented once, under the
private or base class that defines them. A member without a docstring of
its own (an override of a documented method) is covered by the docstring it
inherits. The generator refuses to write a reference that leaves out a
public name: every name in fastrnn.__all__ and fastrnn.onnx.__all__, every
public function of fastrnn.interop and every public member of those classes
must appear in some section, with a docstring.

The output is deterministic and the same on every machine: a fixed order,
no memory addresses (defaults that are classes or functions are written by
name) and nothing measured from the CPU.
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
import types
from pathlib import Path

import fastrnn as fr
import fastrnn.onnx as fr_onnx
from fastrnn import (
    cells,
    interop,
    layers,
    loss,
    module,
    optim,
    serialization,
    simd,
    stream,
    tbptt,
    threads,
)

OUT = Path(__file__).resolve().parent / "api.md"
WIDTH = 92  # signatures longer than this get one parameter a line

# Public names of fastrnn outside its __all__ (documented all the same).
FASTRNN_EXTRAS = ("get_num_threads", "set_num_threads")


class Entry:
    """A public function or class, shown under `name`."""

    def __init__(self, name, obj):
        self.name, self.obj = name, obj


class Shared:
    """The members `owner` (a base class) documents, shared by several
    public classes; `names` limits them (None: all)."""

    def __init__(self, title, owner, names=None):
        self.title, self.owner, self.names = title, owner, names


class Section:
    """A `##` section: its items are Entry, Shared, or a module, whose
    docstring is shown there (the overview of what follows)."""

    def __init__(self, title, items):
        self.title, self.items = title, items


SECTIONS = [
    Section(
        "Layers",
        [
            layers,
            Entry("fastrnn.RNN", fr.RNN),
            Entry("fastrnn.LSTM", fr.LSTM),
            Entry("fastrnn.GRU", fr.GRU),
            Shared("Methods of RNN, LSTM and GRU", layers._RNNBase),
            Entry("fastrnn.Embedding", fr.Embedding),
            Entry("fastrnn.Linear", fr.Linear),
        ],
    ),
    Section(
        "Cells",
        [
            cells,
            Entry("fastrnn.RNNCell", fr.RNNCell),
            Entry("fastrnn.LSTMCell", fr.LSTMCell),
            Entry("fastrnn.GRUCell", fr.GRUCell),
            Shared("Methods of RNNCell, LSTMCell and GRUCell", cells._CellBase),
        ],
    ),
    Section(
        "Streaming",
        [
            stream,
            Entry("fastrnn.Stream", fr.Stream),
        ],
    ),
    Section(
        "Training",
        [
            loss,
            Entry("fastrnn.cross_entropy", fr.cross_entropy),
            Shared("Gradients of every model", module.Trainable),
            optim,
            Shared("Methods of every optimizer", optim.Optimizer),
            Entry("fastrnn.SGD", fr.SGD),
            Entry("fastrnn.Adam", fr.Adam),
            Entry("fastrnn.AdamW", fr.AdamW),
            Entry("fastrnn.Adagrad", fr.Adagrad),
            Entry("fastrnn.clip_grad_norm_", fr.clip_grad_norm_),
            Entry("fastrnn.clip_grad_value_", fr.clip_grad_value_),
            Entry("fastrnn.StepLR", fr.StepLR),
            Entry("fastrnn.CosineLR", fr.CosineLR),
            tbptt,
            Entry("fastrnn.TBPTT", fr.TBPTT),
        ],
    ),
    Section(
        "Saving and loading",
        [
            serialization,
            Entry("fastrnn.load", fr.load),
            Shared(
                "Methods of every model",
                module.Module,
                names=("state_dict", "load_state_dict", "save", "config"),
            ),
        ],
    ),
    Section(
        "Interop: PyTorch",
        [
            interop,
            Entry("fastrnn.from_torch", fr.from_torch),
            Entry("fastrnn.interop.to_torch", interop.to_torch),
            Shared(
                "Methods of every model (PyTorch)", module.Module, names=("to_torch_state_dict",)
            ),
            Entry("fastrnn.interop.layer_from_state_dict", interop.layer_from_state_dict),
            Entry("fastrnn.interop.convert", interop.convert),
            Entry("fastrnn.interop.add_convert_parser", interop.add_convert_parser),
        ],
    ),
    Section(
        "Interop: ONNX",
        [
            fr_onnx,
            Entry("fastrnn.onnx.load", fr_onnx.load),
            Entry("fastrnn.onnx.save", fr_onnx.save),
            Entry("fastrnn.onnx.to_onnx", fr_onnx.to_onnx),
            Entry("fastrnn.onnx.Model", fr_onnx.Model),
        ],
    ),
    Section(
        "Runtime: threads and SIMD",
        [
            threads,
            Entry("fastrnn.get_num_threads", fr.get_num_threads),
            Entry("fastrnn.set_num_threads", fr.set_num_threads),
            simd,
            Entry("fastrnn.simd_level", fr.simd_level),
        ],
    ),
]


# ---------------------------------------------------------------- what is public


def public_objects():
    """name -> object of every public function and class: those of
    fastrnn.__all__ (its modules, interop and onnx, are walked below) and
    FASTRNN_EXTRAS, fastrnn.onnx.__all__, and the functions fastrnn.interop
    defines."""
    out = {}
    for name in list(fr.__all__) + list(FASTRNN_EXTRAS):
        obj = getattr(fr, name)
        if not isinstance(obj, types.ModuleType):
            out[f"fastrnn.{name}"] = obj
    for name in fr_onnx.__all__:
        out[f"fastrnn.onnx.{name}"] = getattr(fr_onnx, name)
    for name, obj in vars(interop).items():
        if (
            not name.startswith("_")
            and inspect.isfunction(obj)
            and obj.__module__ == interop.__name__
            and not any(obj is o for o in out.values())
        ):  # from_torch: fastrnn's
            out[f"fastrnn.interop.{name}"] = obj
    return out


def is_member(name, value):
    """Whether class attribute `name` is API: a method, property or
    attribute descriptor, public or __call__ (plain class data is not)."""
    if name.startswith("_") and name != "__call__":
        return False
    return (
        inspect.isroutine(value) or isinstance(value, property) or inspect.isdatadescriptor(value)
    )


def public_members(cls):
    """Names of the public members of `cls`, own and inherited."""
    return [n for n in dir(cls) if is_member(n, inspect.getattr_static(cls, n))]


def own_doc(value):
    doc = getattr(value, "__doc__", None)
    return inspect.cleandoc(doc) if isinstance(doc, str) and doc.strip() else ""


def doc_owner(cls, name):
    """The class in cls's MRO whose `name` carries the docstring that
    `cls.name` shows: the first fastrnn class that defines `name` with a
    non-empty docstring. None if there is none."""
    for klass in cls.__mro__:
        if name in vars(klass) and klass.__module__.startswith("fastrnn"):
            if own_doc(vars(klass)[name]):
                return klass
    return None


def compiled(cls):
    """Whether `cls` comes from an extension module (fastrnn._core.Stream)."""
    return not str(getattr(sys.modules.get(cls.__module__), "__file__", "")).endswith(".py")


def documented_members(owner, names=None):
    """The members `owner` defines and documents itself, in a fixed order:
    definition order for Python classes, sorted for compiled ones (whose
    order is the compiler's)."""
    items = [
        (n, v)
        for n, v in vars(owner).items()
        if is_member(n, v) and (names is None or n in names) and doc_owner(owner, n) is owner
    ]
    if compiled(owner):
        items.sort(key=lambda item: item[0])
    return sorted(items, key=lambda item: item[0] != "__call__")  # stable: __call__ first


def undocumented_attributes(cls):
    """Read-only attributes of a compiled class without a docstring (the
    Stream's `cdef readonly` sizes have none): listed by name, their meaning
    in the section's text (fastrnn/stream.py's docstring)."""
    if not compiled(cls):
        return []
    return sorted(
        n
        for n, v in vars(cls).items()
        if is_member(n, v) and inspect.isgetsetdescriptor(v) and not own_doc(v)
    )


# ---------------------------------------------------------------- rendering


def fmt_annotation(a):
    if isinstance(a, str):
        return a
    if isinstance(a, type):
        return a.__name__
    return repr(a).replace("typing.", "")


def fmt_default(v):
    """A default value as source would write it, never with an address."""
    if isinstance(v, type):
        mod = v.__module__.split(".")[0]
        return ("np." if mod == "numpy" else "") + v.__qualname__
    if callable(v):
        return getattr(v, "__qualname__", type(v).__name__)
    text = repr(v)
    if re.search(r" at 0x[0-9a-f]+", text):
        raise SystemExit(f"gen_api: default {text} has no machine-independent form")
    return text


def signature(obj, skip_self):
    """(parameters, return annotation) as text, or None without a signature."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    params = list(sig.parameters.values())
    if skip_self and params and params[0].name in ("self", "cls"):
        params = params[1:]
    parts, star_done, slash_pending = [], False, False
    for p in params:
        if p.kind is p.POSITIONAL_ONLY:
            slash_pending = True
        elif slash_pending:
            parts.append("/")
            slash_pending = False
        if p.kind is p.KEYWORD_ONLY and not star_done:
            parts.append("*")
            star_done = True
        text = {p.VAR_POSITIONAL: "*", p.VAR_KEYWORD: "**"}.get(p.kind, "") + p.name
        if p.kind is p.VAR_POSITIONAL:
            star_done = True
        annotated = p.annotation is not p.empty
        if annotated:
            text += ": " + fmt_annotation(p.annotation)
        if p.default is not p.empty:
            text += (" = " if annotated else "=") + fmt_default(p.default)
        parts.append(text)
    if slash_pending:
        parts.append("/")
    ret = sig.return_annotation
    return parts, ("" if ret is sig.empty else fmt_annotation(ret))


def fmt_call(prefix, name, sig):
    if sig is None:
        return f"{prefix}{name}"
    parts, ret = sig
    if prefix == "class ":
        ret = ""  # __init__'s "-> None"
    tail = f" -> {ret}" if ret else ""
    one = f"{prefix}{name}({', '.join(parts)}){tail}"
    if len(one) <= WIDTH:
        return one
    inner = "".join(f"    {p},\n" for p in parts)
    return f"{prefix}{name}(\n{inner}){tail}"


def code(text, lang):
    return f"```{lang}\n{text}\n```\n"


def doc_block(doc):
    return code(doc, "text") if doc else ""


def slug(title):
    s = re.sub(r"[^\w\- ]", "", title.lower()).strip()
    return s.replace(" ", "-")


def render_member(name, value):
    if isinstance(value, property):
        ret = ""
        if value.fget is not None:
            sig = signature(value.fget, skip_self=True)
            ret = sig[1] if sig else ""
        head = f"property {name}" + (f" -> {ret}" if ret else "")
    elif inspect.isdatadescriptor(value):
        head = f"attribute {name}"
    else:
        head = fmt_call("def ", name, signature(value, skip_self=True))
    return f"#### `{name}`\n\n{code(head, 'python')}\n{doc_block(own_doc(value))}\n"


def locations():
    """(class, member) -> (order, section title, heading) of where each
    documented member is shown."""
    where = {}
    for section in SECTIONS:
        for item in section.items:
            if isinstance(item, Shared):
                owner, heading, names = item.owner, item.title, item.names
            elif isinstance(item, Entry) and inspect.isclass(item.obj):
                owner, heading, names = item.obj, item.name, None
                for a in undocumented_attributes(owner):
                    where[(owner, a)] = (len(where), section.title, heading)
            else:
                continue
            for name, _ in documented_members(owner, names):
                where[(owner, name)] = (len(where), section.title, heading)
    return where


def inherited_line(cls, section, where):
    """ "Also: ..." naming the members `cls` inherits and where they are shown."""
    groups = {}
    for name in public_members(cls):
        owner = doc_owner(cls, name) or cls
        if owner is not cls and (owner, name) in where:
            order, title, heading = where[(owner, name)]
            key = (title, heading)
            first, names = groups.get(key, (order, []))
            groups[key] = (min(first, order), names + [name])
    if not groups:
        return ""
    parts = []
    for (title, heading), (_, names) in sorted(groups.items(), key=lambda g: g[1][0]):
        place = heading if title == section.title else f"{heading}, in [{title}](#{slug(title)})"
        parts.append(", ".join(f"`{n}`" for n in names) + f" ({place})")
    return "Also: " + "; ".join(parts) + ".\n\n"


def render_class(entry, section, where):
    cls = entry.obj
    init = vars(cls).get("__init__")
    sig = None
    if inspect.isfunction(init):
        sig = signature(init, skip_self=True)
    elif not compiled(cls):
        for klass in cls.__mro__[1:]:
            if inspect.isfunction(vars(klass).get("__init__")):
                sig = signature(vars(klass)["__init__"], skip_self=True)
                break
    out = [
        f"### `{entry.name}`\n\n",
        code(fmt_call("class ", entry.name, sig), "python"),
        "\n",
        doc_block(own_doc(cls)),
        "\n",
    ]
    attrs = undocumented_attributes(cls)
    if attrs:
        out.append(
            "Read-only attributes (described above): "
            + ", ".join(f"`{a}`" for a in attrs)
            + ".\n\n"
        )
    out.append(inherited_line(cls, section, where))
    for name, value in documented_members(cls):
        out.append(render_member(name, value))
    return "".join(out)


def render_function(entry):
    sig = signature(entry.obj, skip_self=False)
    return (
        f"### `{entry.name}`\n\n"
        + code(fmt_call("def ", entry.name, sig), "python")
        + "\n"
        + doc_block(own_doc(entry.obj))
        + "\n"
    )


def render_shared(item):
    out = [f"### {item.title}\n\n"]
    for name, value in documented_members(item.owner, item.names):
        out.append(render_member(name, value))
    return "".join(out)


def render():
    """The text of docs/api.md. SystemExit if it would leave out a public
    name or show one without a docstring."""
    where = locations()
    shown, body, toc = {}, [], []
    for section in SECTIONS:
        names = []
        parts = [f"## {section.title}\n\n"]
        for item in section.items:
            if isinstance(item, types.ModuleType):
                parts.append(doc_block(own_doc(item)) + "\n")
            elif isinstance(item, Shared):
                parts.append(render_shared(item))
            elif inspect.isclass(item.obj):
                parts.append(render_class(item, section, where))
            else:
                parts.append(render_function(item))
            if isinstance(item, Entry):
                shown[item.name] = item.obj
                names.append(item.name.rsplit(".", 1)[-1])
        body.append("".join(parts))
        toc.append(f"- [{section.title}](#{slug(section.title)}): {', '.join(names)}\n")
    check_complete(shown, where)
    head = (
        "# fastrnn API reference\n\n"
        "Generated from the docstrings by `python docs/gen_api.py`; do not edit by hand "
        "(tests/test_docs.py checks that it is up to date).\n\n"
        + doc_block(own_doc(fr))
        + "\n"
        + "".join(toc)
        + "\n"
    )
    return (head + "\n".join(body)).rstrip("\n") + "\n"


def check_complete(shown, where):
    """SystemExit listing every public name or member that is missing from
    the sections or has no docstring."""
    problems = []
    for name, obj in public_objects().items():
        if name not in shown or shown[name] is not obj:
            problems.append(f"{name} is public but in no section of docs/gen_api.py")
        if not own_doc(obj):
            problems.append(f"{name} has no docstring")
        if not inspect.isclass(obj):
            continue
        for member in public_members(obj):
            owner = doc_owner(obj, member)
            if (owner or obj, member) in where:
                continue
            if owner is None:
                problems.append(f"{name}.{member} has no docstring")
            else:
                problems.append(
                    f"{name}.{member} (documented by {owner.__qualname__}) is in "
                    f"no section of docs/gen_api.py"
                )
    if problems:
        raise SystemExit("gen_api: " + "\n  ".join(problems))


def main(argv=None):
    p = argparse.ArgumentParser(description="Write docs/api.md from fastrnn's docstrings.")
    p.add_argument(
        "--check",
        action="store_true",
        help="exit 1 if docs/api.md differs from what would be written",
    )
    args = p.parse_args(argv)
    text = render()
    if args.check:
        current = OUT.read_text(encoding="utf-8") if OUT.exists() else ""
        if current != text:
            print(f"{OUT} is out of date: run python docs/gen_api.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
