"""Models on disk: one .npz with each parameter under its PyTorch name and the
configuration as a JSON string. Loading never unpickles (allow_pickle=False);
saving goes through a temporary file and an atomic rename, so a crash mid-save
leaves the old file intact. On Linux the temporary file has no name until it
is complete (O_TMPFILE), so even a killed process leaves nothing behind."""

from __future__ import annotations

import json
import lzma
import math
import os
import shutil
import tempfile
import zipfile
import zlib
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

if TYPE_CHECKING:
    from .module import Module

FORMAT = "fastrnn"
VERSION = 1
CONFIG_KEY = "__fastrnn_config__"

# The classes `load` can rebuild, by the type name `save` records. This
# module cannot import them (they import it to save themselves), so the
# package registers them (fastrnn/__init__.py).
MODELS: dict = {}


def register(*classes: type) -> None:
    """Let `load` rebuild each of `classes` from a file naming its type."""
    for cls in classes:
        MODELS[cls.__name__] = cls


def save(
    path: str | os.PathLike[str],
    kind: str,
    config: Mapping[str, Any],
    params: Mapping[str, np.ndarray],
) -> None:
    """Write a model file: `params` (name -> array) and, as JSON, the type
    name `kind` and `config` (its constructor arguments), atomically (see
    the module docstring). Models call it from their `save`."""
    path = os.fspath(path)
    meta = json.dumps({"format": FORMAT, "version": VERSION, "type": kind, "config": config})
    arrays: dict[str, Any] = dict(params)
    arrays[CONFIG_KEY] = np.array(meta)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = _temp_file(folder)
    try:
        os.fchmod(fd, _file_mode(path))  # mkstemp's 0600, not what open() would give
        with os.fdopen(fd, "w+b") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
            if tmp is None:  # unnamed until now: name it, then rename
                tmp = _link_temp(folder, f)
        os.replace(tmp, path)
    except BaseException:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _temp_file(folder):
    """(fd, name) of a new file in `folder` for the model: unnamed (name None)
    where Linux offers O_TMPFILE, so a process killed mid-save leaves nothing;
    else a hidden .fastrnn-*.tmp."""
    flag = getattr(os, "O_TMPFILE", 0)
    if flag and os.path.isdir("/proc/self/fd"):
        try:
            return os.open(folder, flag | os.O_RDWR, 0o600), None
        except OSError:
            pass  # a file system without O_TMPFILE
    return tempfile.mkstemp(prefix=".fastrnn-", suffix=".tmp", dir=folder)


def _link_temp(folder, f):
    """A hidden name in `folder` for the complete unnamed file `f` (open(2):
    linkat of /proc/self/fd/N); where that is refused, a named copy."""
    dirfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        while True:
            name = f".fastrnn-{os.urandom(6).hex()}.tmp"
            try:
                os.link(f"/proc/self/fd/{f.fileno()}", name, dst_dir_fd=dirfd)
                return os.path.join(folder, name)
            except FileExistsError:
                continue
            except OSError:
                break
    finally:
        os.close(dirfd)
    fd, tmp = tempfile.mkstemp(prefix=".fastrnn-", suffix=".tmp", dir=folder)
    try:
        os.fchmod(fd, os.fstat(f.fileno()).st_mode & 0o7777)
        with os.fdopen(fd, "wb") as g:
            f.seek(0)
            shutil.copyfileobj(f, g)
            g.flush()
            os.fsync(g.fileno())
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


def _file_mode(path):
    """The permissions `path` gets: those of the file it replaces, else what
    open() would create (0666 less the umask)."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        pass
    try:
        with open("/proc/self/status") as f:
            umask = next(int(line.split()[1], 8) for line in f if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError):
        umask = os.umask(0o022)
        os.umask(umask)
    return 0o666 & ~umask


def _read_arrays(data):
    """name -> array of every member of an open NpzFile. Each member must be
    a .npy array without objects whose header claims no more bytes than the
    archive holds for it: a forged header must not make numpy allocate (or
    refuse with MemoryError) what it claims."""
    fmt = np.lib.format
    headers = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}
    for info in data.zip.infolist():
        if not info.filename.endswith(".npy"):
            raise ValueError(f"member {info.filename!r} is not a .npy array")
        with data.zip.open(info) as f:
            version = fmt.read_magic(f)
            if version not in headers:
                raise ValueError(f"member {info.filename!r} has .npy version {version}")
            shape, _, dtype = headers[version](f)
        if dtype.hasobject:
            raise ValueError(f"member {info.filename!r} holds Python objects (dtype {dtype})")
        nbytes = math.prod(shape) * dtype.itemsize
        if nbytes > info.file_size:
            raise ValueError(
                f"member {info.filename!r} claims shape {shape} of {dtype} "
                f"({nbytes} bytes) but holds {info.file_size} bytes"
            )
    return {k: data[k] for k in data.files}


def load(path: str | os.PathLike[str]) -> Module:
    """Read a model saved by `save` (model.save(path)): returns the model
    object, a fastrnn RNN, LSTM, GRU, cell, Embedding or Linear, with its
    configuration and parameters.

    Nothing is unpickled or executed; the configuration is checked against
    the arrays before anything is allocated. Raises ValueError for a path
    that cannot be read or is not a fastrnn model file (damaged, forged, or
    of another format version)."""
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError("not an .npz archive")
        with data:
            if CONFIG_KEY not in data.files:
                raise ValueError(f"path: {path!r} is an .npz without a fastrnn configuration")
            arrays = _read_arrays(data)
            meta = json.loads(str(arrays.pop(CONFIG_KEY)[()]))
            params = arrays
    except (ValueError, RecursionError) as e:
        raise ValueError(f"path: cannot load {path!r} as a fastrnn model: {e}") from None
    except (
        OSError,
        EOFError,
        zipfile.BadZipFile,
        KeyError,
        zlib.error,
        lzma.LZMAError,
        NotImplementedError,
        RuntimeError,
    ) as e:  # e.g. an unknown compression, encryption
        raise ValueError(
            f"path: cannot load {path!r} as a fastrnn model: {type(e).__name__}: {e}"
        ) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"path: {path!r} is not a fastrnn model file")
    if meta.get("version") != VERSION:
        raise ValueError(
            f"path: {path!r} has format version {meta.get('version')!r}; "
            f"this fastrnn reads {VERSION}"
        )
    cls = MODELS.get(meta.get("type")) if isinstance(meta.get("type"), str) else None
    config = meta.get("config")
    if cls is None or not isinstance(config, dict):
        raise ValueError(f"path: {path!r} holds an unknown model type {meta.get('type')!r}")
    # Check the configuration against the arrays before allocating anything it
    # describes: every size in it is at most a dimension (or the count) of the
    # arrays the file holds, so a forged config cannot make us loop or allocate.
    bound = max([len(params)] + [d for a in params.values() for d in a.shape])
    for key, value in config.items():
        if isinstance(value, int) and not isinstance(value, bool) and value > bound:
            raise ValueError(f"path: {path!r} has {key}={value}, larger than any of its arrays")
    model = cls.__new__(cls)
    try:
        model._configure(**config)
    except TypeError as e:
        raise ValueError(f"path: {path!r} has a bad configuration: {e}") from None
    shapes = model._param_shapes()
    if set(shapes) != set(params):
        raise ValueError(
            f"path: {path!r} parameters {sorted(params)} do not match its "
            f"configuration, which needs {sorted(shapes)}"
        )
    for name, shape in shapes.items():
        if params[name].shape != shape:
            raise ValueError(
                f"path: {path!r} parameter {name!r} has shape {params[name].shape}, "
                f"its configuration needs {shape}"
            )
        if params[name].dtype.kind not in "fiu":
            raise ValueError(f"path: {path!r} parameter {name!r} has dtype {params[name].dtype}")
    model._params = {name: np.array(params[name], dtype=model.dtype) for name in shapes}
    model._params_changed()
    return model
