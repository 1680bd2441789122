"""The API reference and the docstrings it is made of.

docs/api.md must be what docs/gen_api.py writes now (run `python
docs/gen_api.py` after changing a docstring or a signature), and every
public name must have a docstring: each name in fastrnn.__all__ and
fastrnn.onnx.__all__, each public function of fastrnn.interop, and each
public method and property of those classes (their own docstring, or that
of the fastrnn method they override)."""

import importlib.util
import inspect
import types
from pathlib import Path

import pytest

import fastrnn as fr
import fastrnn.onnx as fr_onnx
from fastrnn import interop, stream

ROOT = Path(__file__).resolve().parent.parent


def load_generator():
    spec = importlib.util.spec_from_file_location("gen_api", ROOT / "docs" / "gen_api.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    return gen


GEN = load_generator()


def test_api_md_is_up_to_date():
    text = GEN.render()
    assert (ROOT / "docs" / "api.md").read_text(encoding="utf-8") == text, (
        "docs/api.md is out of date: run python docs/gen_api.py"
    )


def test_api_md_is_machine_independent():
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    assert " at 0x" not in text  # no object addresses
    assert str(ROOT) not in text  # no paths of this checkout


def test_gen_api_check_mode(tmp_path, monkeypatch, capsys):
    gen = load_generator()
    assert gen.main(["--check"]) == 0
    monkeypatch.setattr(gen, "OUT", tmp_path / "api.md")
    (tmp_path / "api.md").write_text("stale\n", encoding="utf-8")
    assert gen.main(["--check"]) == 1
    assert "out of date" in capsys.readouterr().err


# ---------------------------------------------------------------- docstrings

# Public names of fastrnn that its __all__ leaves out.
EXTRAS = ("get_num_threads", "set_num_threads")


def public_objects():
    out = {}
    for name in list(fr.__all__) + list(EXTRAS):
        out[f"fastrnn.{name}"] = getattr(fr, name)  # interop, onnx: their docstrings
    for name in fr_onnx.__all__:
        out[f"fastrnn.onnx.{name}"] = getattr(fr_onnx, name)
    for name, obj in vars(interop).items():
        if (
            not name.startswith("_")
            and inspect.isfunction(obj)
            and obj.__module__ == interop.__name__
        ):
            out[f"fastrnn.interop.{name}"] = obj
    return out


def has_doc(obj):
    doc = getattr(obj, "__doc__", None)
    return isinstance(doc, str) and bool(doc.strip())


def member_doc_found(cls, name):
    """Whether cls.name has a docstring: its own, or that of the fastrnn
    class's member it overrides (the generator's rule, docs/gen_api.py)."""
    return GEN.doc_owner(cls, name) is not None


def public_members(cls):
    for name in dir(cls):
        if name.startswith("_") and name != "__call__":
            continue
        value = inspect.getattr_static(cls, name)
        if inspect.isroutine(value) or inspect.isdatadescriptor(value):
            yield name, value


def stream_attributes_text():
    """The paragraph of fastrnn/stream.py's docstring naming Stream's
    read-only attributes (Cython's `cdef readonly` attributes carry no
    docstring of their own)."""
    doc = stream.__doc__
    start = doc.index("Attributes (read-only")
    return doc[start : doc.index("\n\n", start)]


PUBLIC = public_objects()


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_public_name_has_docstring(name):
    assert has_doc(PUBLIC[name]), f"{name} has no docstring"


@pytest.mark.parametrize("name", sorted(n for n, o in PUBLIC.items() if inspect.isclass(o)))
def test_public_members_have_docstrings(name):
    cls = PUBLIC[name]
    missing = []
    for member, value in public_members(cls):
        if member_doc_found(cls, member):
            continue
        if (
            cls is fr.Stream
            and inspect.isgetsetdescriptor(value)
            and member in stream_attributes_text()
        ):
            continue
        missing.append(member)
    assert not missing, f"{name}: no docstring for {missing}"


def test_every_public_name_of_fastrnn_is_in_all():
    """A new function or class imported into fastrnn/__init__.py is either
    in __all__ (so the reference and these tests see it) or listed in
    EXTRAS here and in docs/gen_api.py."""
    names = {
        n
        for n, v in vars(fr).items()
        if not n.startswith("_") and not isinstance(v, types.ModuleType)
    }
    assert names == (set(fr.__all__) - {"interop", "onnx"}) | set(EXTRAS)
    assert tuple(GEN.FASTRNN_EXTRAS) == EXTRAS


def test_modules_have_docstrings():
    """The package and the modules whose docstrings the reference shows."""
    modules = [fr] + [
        item
        for section in GEN.SECTIONS
        for item in section.items
        if isinstance(item, types.ModuleType)
    ]
    for mod in modules:
        assert has_doc(mod), f"{mod.__name__} has no docstring"


def test_signatures_are_annotated():
    """The public functions and methods written in Python carry type hints
    (the compiled Stream's are in fastrnn/_core.pyi)."""
    unannotated = []
    for name, obj in PUBLIC.items():
        funcs = []
        if inspect.isfunction(obj):
            funcs.append((name, obj))
        elif inspect.isclass(obj):
            for member, value in public_members(obj):
                if isinstance(value, property):
                    value = value.fget
                if inspect.isfunction(value):
                    funcs.append((f"{name}.{member}", value))
            init = getattr(obj, "__init__", None)
            if inspect.isfunction(init):
                funcs.append((f"{name}.__init__", init))
        for fname, f in funcs:
            sig = inspect.signature(f)
            params = [p for p in sig.parameters.values() if p.name not in ("self", "cls")]
            if sig.return_annotation is sig.empty or any(p.annotation is p.empty for p in params):
                unannotated.append(fname)
    assert not unannotated, f"missing type hints: {sorted(set(unannotated))}"
