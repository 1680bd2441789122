"""Model files: saving is atomic, loading never runs code, and no file makes
fr.load do anything but return a model or raise ValueError.

Extends tests/test_errors.py (missing, empty, random, text, .npy, truncated
at four points, flipped bytes, foreign .npz / zip, object arrays, missing /
extra / misshapen weights, garbage and forged configurations) with:
- a save interrupted at every stage (np.savez, fsync, os.replace raising an
  error or KeyboardInterrupt; a child process killed with SIGINT or SIGKILL
  in the middle of writing 80 MB), with each way of making the temporary
  file (unnamed O_TMPFILE, named, copied): the old file is intact, and no
  temporary file is left;
- the saved file's permissions are open()'s, not mkstemp's 0600;
- pickle payloads in every place an .npz can carry one never run;
- forged .npy headers (a shape of 10**12 elements), members that are not
  .npy, configurations that are deeply nested or of the wrong JSON types, and
  a truncation sweep over every part of the file: all ValueError.
"""

import io
import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
import zipfile

import numpy as np
import pytest

import fastrnn as fr
from fastrnn import serialization

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def model(seed=0, H=6):
    return fr.LSTM(3, H, num_layers=2, bidirectional=True, peephole=True, seed=seed)


def same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(np.array_equal(sa[k], sb[k]) for k in sa)


def listing(folder):
    return sorted(os.listdir(folder))


# --------------------------------------------------------------------------
# atomic save
# --------------------------------------------------------------------------


def _partial_savez(f, **arrays):
    """np.savez that writes half an archive, then fails."""
    f.write(b"PK\x03\x04" + b"\0" * 1000)
    raise OSError(28, "No space left on device")


@pytest.fixture(params=["unnamed", "named", "copied"])
def temp_kind(request, monkeypatch):
    """How save makes its temporary file: unnamed (Linux O_TMPFILE, then
    linked), named (mkstemp: no O_TMPFILE), or unnamed but copied into a named
    file (linking refused)."""
    if request.param == "named":
        monkeypatch.delattr(os, "O_TMPFILE", raising=False)
    elif request.param == "copied":
        real_link = os.link

        def refuse(src, *args, **kw):
            if str(src).startswith("/proc/self/fd/"):
                raise PermissionError(1, "Operation not permitted")
            return real_link(src, *args, **kw)

        monkeypatch.setattr(os, "link", refuse)
    return request.param


def test_save_round_trip_every_way(tmp_path, temp_kind):
    path = str(tmp_path / "model.npz")
    for seed in (0, 1):  # a new file, then over an old one
        m = model(seed)
        m.save(path)
        assert same_weights(fr.load(path), m)
        assert listing(tmp_path) == ["model.npz"]


@pytest.mark.parametrize("where", ["savez", "fsync", "replace", "interrupt"])
def test_failed_save_keeps_the_old_file(tmp_path, monkeypatch, where, temp_kind):
    path = str(tmp_path / "model.npz")
    old = model(0)
    old.save(path)
    before = listing(tmp_path)
    old_bytes = open(path, "rb").read()
    if where == "savez":
        monkeypatch.setattr(np, "savez", _partial_savez)
        error = OSError
    elif where == "fsync":

        def fsync(fd):
            raise OSError(5, "Input/output error")

        monkeypatch.setattr(os, "fsync", fsync)
        error = OSError
    elif where == "replace":

        def replace(src, dst):
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(os, "replace", replace)
        error = PermissionError
    else:

        def interrupted(f, **arrays):
            f.write(b"PK\x03\x04partial")
            raise KeyboardInterrupt

        monkeypatch.setattr(np, "savez", interrupted)
        error = KeyboardInterrupt
    with pytest.raises(error):
        model(1).save(path)
    assert open(path, "rb").read() == old_bytes, "the old file was changed"
    assert listing(tmp_path) == before, f"left behind: {set(listing(tmp_path)) - set(before)}"
    assert same_weights(fr.load(path), old)


def test_save_to_a_missing_folder_or_a_folder(tmp_path):
    with pytest.raises(OSError):
        model().save(str(tmp_path / "no" / "such" / "m.npz"))
    (tmp_path / "d").mkdir()
    with pytest.raises(OSError):
        model().save(str(tmp_path / "d"))
    assert listing(tmp_path) == ["d"] and listing(tmp_path / "d") == []


_SAVE_LOOP = textwrap.dedent("""
    import signal, sys
    # Ctrl-C raises KeyboardInterrupt even where SIGINT came ignored (a
    # background job of a non-interactive shell, such as a CI runner's)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    import fastrnn as fr
    big = fr.LSTM(512, 2048, seed=1)          # 84 MB of float32 weights
    print("ready", flush=True)
    while True:
        big.save(sys.argv[1])
""")


def _writing(pid, folder):
    """Whether process `pid` has a file in `folder` other than model.npz open
    with more than 1 MB in it: a save in progress (its temporary file, named
    or not)."""
    fds = f"/proc/{pid}/fd"
    for n in os.listdir(fds):
        try:
            target = os.readlink(os.path.join(fds, n))
            size = os.stat(os.path.join(fds, n)).st_size
        except OSError:
            continue
        if target.startswith(str(folder)) and not target.endswith("model.npz") and size > 2**20:
            return True
    return False


def _kill_mid_save(tmp_path, sig):
    """Start a child that saves a big model over `path` again and again;
    send `sig` while it is writing its temporary file."""
    path = str(tmp_path / "model.npz")
    old = model(0)
    old.save(path)
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(
        [sys.executable, "-c", _SAVE_LOOP, path], stdout=subprocess.PIPE, env=env, cwd=str(tmp_path)
    )
    try:
        assert proc.stdout.readline().strip() == b"ready"
        deadline = time.monotonic() + 60
        while not _writing(proc.pid, tmp_path):
            assert time.monotonic() < deadline, "the child never started writing"
            assert proc.poll() is None, "the child died"
            time.sleep(0.002)
        proc.send_signal(sig)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return path, old


needs_proc = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs Linux /proc")


@needs_proc
def test_interrupted_mid_save_keeps_the_old_file(tmp_path):
    """SIGINT (KeyboardInterrupt) while 80 MB are being written: the old file
    loads unchanged and no temporary file is left."""
    path, old = _kill_mid_save(tmp_path, signal.SIGINT)
    assert listing(tmp_path) == ["model.npz"]
    assert same_weights(fr.load(path), old)


@needs_proc
def test_killed_mid_save_keeps_the_old_file(tmp_path):
    """SIGKILL while 80 MB are being written: the old file loads unchanged,
    and nothing is left beside it -- the temporary file has no name until it
    is complete (O_TMPFILE; elsewhere a hidden .fastrnn-*.tmp would stay)."""
    path, old = _kill_mid_save(tmp_path, signal.SIGKILL)
    assert same_weights(fr.load(path), old)
    assert listing(tmp_path) == ["model.npz"]


def test_saved_file_has_the_permissions_open_gives(tmp_path):
    """Not mkstemp's 0600: a model saved for a service run by another user
    must be readable as any file the user writes; an overwritten file keeps
    its mode."""
    old = os.umask(0o022)
    try:
        model().save(str(tmp_path / "m.npz"))
        with open(tmp_path / "plain", "wb"):
            pass
        assert (
            os.stat(tmp_path / "m.npz").st_mode & 0o777
            == os.stat(tmp_path / "plain").st_mode & 0o777
            == 0o644
        )
        os.chmod(tmp_path / "m.npz", 0o640)
        model(1).save(str(tmp_path / "m.npz"))
        assert os.stat(tmp_path / "m.npz").st_mode & 0o777 == 0o640
    finally:
        os.umask(old)


# --------------------------------------------------------------------------
# loading never runs code
# --------------------------------------------------------------------------


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _members(path):
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in z.namelist()}


def _write_zip(path, members):
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)


def _npy(a):
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=True)
    return buf.getvalue()


def test_pickle_payloads_never_run(tmp_path):
    """A pickle that would create a file: as an object-array config, as an
    object-array weight (existing test: an extra entry), as raw pickle bytes
    under a .npy name, as a plain pickle file, and inside a 0-d object array
    holding the config dict. fr.load refuses each with ValueError; the
    payload never runs."""
    marker = str(tmp_path / "PWNED")
    src = str(tmp_path / "m.npz")
    model().save(src)
    good = _members(src)
    obj = np.empty(1, object)
    obj[0] = _Payload(marker)
    zero_d = np.empty((), object)
    zero_d[()] = {"format": "fastrnn", "payload": _Payload(marker)}
    cases = {
        "config_object": dict(good, **{serialization.CONFIG_KEY + ".npy": _npy(obj)}),
        "config_dict": dict(good, **{serialization.CONFIG_KEY + ".npy": _npy(zero_d)}),
        "weight_object": dict(good, **{"weight_hh_l0.npy": _npy(obj)}),
        "raw_pickle": dict(good, **{"weight_ih_l0.npy": pickle.dumps(_Payload(marker))}),
        "pickle_member": dict(good, **{"state.pkl": pickle.dumps(_Payload(marker))}),
    }
    for label, members in cases.items():
        p = str(tmp_path / f"{label}.npz")
        _write_zip(p, members)
        with pytest.raises(ValueError):
            fr.load(p)
        assert not os.path.exists(marker), f"{label}: the payload ran"
    p = str(tmp_path / "model.pkl")
    with open(p, "wb") as f:
        pickle.dump(_Payload(marker), f)
    with pytest.raises(ValueError):
        fr.load(p)
    assert not os.path.exists(marker)


# --------------------------------------------------------------------------
# corrupt, forged, truncated and foreign files
# --------------------------------------------------------------------------


def _forge_shape(raw, shape):
    """An .npy member whose header claims `shape` over the same data."""
    n = int.from_bytes(raw[8:10], "little")
    header = raw[10 : 10 + n].decode("latin1")
    start = header.index("'shape': (") + len("'shape': ")
    end = header.index(")", start) + 1
    new = (header[:start] + repr(tuple(shape)) + header[end:]).rstrip()
    assert len(new) < n, "the new header does not fit"
    return raw[:10] + (new.ljust(n - 1) + "\n").encode("latin1") + raw[10 + n :]


@pytest.mark.parametrize(
    "shape",
    [(10**12, 6), (2**62, 2**62), (40_000_000, 6), (-1, 6)],
    ids=["1e12", "overflow", "960MB", "negative"],
)
def test_forged_header_is_refused_before_allocating(tmp_path, shape):
    """A weight whose .npy header claims far more data than the file holds:
    ValueError, without numpy first trying to allocate what it claims
    (before the fix: MemoryError for 1e12 elements, a 960 MB allocation for
    4e7 x 6)."""
    src = str(tmp_path / "m.npz")
    model().save(src)
    members = _members(src)
    members["weight_ih_l0.npy"] = _forge_shape(members["weight_ih_l0.npy"], shape)
    p = str(tmp_path / "forged.npz")
    _write_zip(p, members)
    import tracemalloc

    tracemalloc.start()
    try:
        with pytest.raises(ValueError):
            fr.load(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20, f"fr.load allocated {peak / 2**20:.0f} MB for a forged header"


def test_members_that_are_not_arrays(tmp_path):
    """A weight or the config stored as bare bytes (not .npy), or an extra
    non-.npy member: ValueError (before the fix: AttributeError / TypeError)."""
    src = str(tmp_path / "m.npz")
    model().save(src)
    good = _members(src)
    key = serialization.CONFIG_KEY
    variants = {
        "bare_weight": {k: v for k, v in good.items() if k != "weight_ih_l0.npy"}
        | {"weight_ih_l0": b"not an array at all"},
        "bare_config": {k: v for k, v in good.items() if k != key + ".npy"}
        | {key: b'{"format": "fastrnn"}'},
        "extra_text": dict(good, **{"README.txt": b"hello"}),
        "bad_magic": dict(good, **{"weight_ih_l0.npy": b"\x93NUMPY\x09\x00garbage"}),
    }
    for label, members in variants.items():
        p = str(tmp_path / f"{label}.npz")
        _write_zip(p, members)
        with pytest.raises(ValueError):
            fr.load(p)


@pytest.mark.parametrize(
    "meta",
    [
        '{"format": "fastrnn", "version": 1, "type": ["LSTM"], "config": {}}',
        '{"format": "fastrnn", "version": 1, "type": {"a": 1}, "config": {}}',
        '{"format": "fastrnn", "version": 1, "type": "LSTM", "config": [1, 2]}',
        '{"format": "fastrnn", "version": [1], "type": "LSTM", "config": {}}',
        '{"format": "fastrnn", "version": 1, "type": "LSTM", "config": {"input_size": 3, '
        '"hidden_size": 6, "num_layers": 2, "bidirectional": true, "peephole": true, '
        '"x": ' + "[" * 100_000 + "]" * 100_000 + "}}",
        '{"format": "fastrnn", "version": 1, "type": "Module", "config": {}}',
        '{"format": "fastrnn", "version": 1, "type": "LSTM", "config": {"input_size": 3, '
        '"hidden_size": 6, "num_layers": 2, "bidirectional": true, "peephole": true, '
        '"dtype": "float16"}}',
        '"fastrnn"',
    ],
    ids=[
        "type_list",
        "type_dict",
        "config_list",
        "version_list",
        "deep",
        "base_class",
        "float16",
        "string",
    ],
)
def test_configurations_of_the_wrong_shape(tmp_path, meta):
    src = str(tmp_path / "m.npz")
    model().save(src)
    members = _members(src)
    members[serialization.CONFIG_KEY + ".npy"] = _npy(np.array(meta))
    p = str(tmp_path / "cfg.npz")
    _write_zip(p, members)
    with pytest.raises(ValueError):
        fr.load(p)


def test_truncation_sweep(tmp_path):
    """The file cut at 97 points spread over all its parts (zip headers, .npy
    headers, data, central directory): ValueError every time."""
    src = str(tmp_path / "m.npz")
    model().save(src)
    data = open(src, "rb").read()
    p = tmp_path / "cut.npz"
    for n in sorted(set(np.linspace(0, len(data) - 1, 97).astype(int))):
        p.write_bytes(data[:n])
        with pytest.raises(ValueError):
            fr.load(str(p))


def test_byte_flip_sweep(tmp_path):
    """One flipped byte at 300 places: ValueError, or (a flip inside weight
    data or ignored zip fields) a model of the saved configuration."""
    src = str(tmp_path / "m.npz")
    saved = model()
    saved.save(src)
    data = open(src, "rb").read()
    p = tmp_path / "flip.npz"
    rng = np.random.default_rng(0)
    for i in rng.choice(len(data), 300, replace=False):
        bad = bytearray(data)
        bad[i] ^= 1 << int(rng.integers(8))
        p.write_bytes(bytes(bad))
        try:
            m = fr.load(str(p))
        except ValueError:
            continue
        assert m.config() == saved.config()


def test_foreign_files(tmp_path):
    """Other formats under an .npz name: ValueError."""
    cases = {
        "gzip": b"\x1f\x8b\x08\x00" + bytes(100),
        "pdf": b"%PDF-1.4\n" + bytes(100),
        "torch": b"PK\x03\x04" + bytes(26) + b"archive/data.pkl",
        "json": json.dumps({"format": "fastrnn", "version": 1}).encode(),
        "npy_in_zip_name": _npy(np.zeros(3)),
    }
    for label, data in cases.items():
        p = tmp_path / f"{label}.npz"
        p.write_bytes(data)
        with pytest.raises(ValueError):
            fr.load(str(p))
    # an .npz of a torch state dict's arrays, and an empty .npz
    np.savez(tmp_path / "sd.npz", **model().state_dict())
    np.savez(tmp_path / "empty.npz")
    for name in ("sd.npz", "empty.npz"):
        with pytest.raises(ValueError):
            fr.load(str(tmp_path / name))


def test_tampered_zip_fields(tmp_path):
    """The central directory claiming another compression method (deflate,
    bzip2, lzma, unknown ones) or encryption: ValueError (before the fix:
    NotImplementedError, RuntimeError escaped)."""
    import struct

    src = str(tmp_path / "m.npz")
    model().save(src)
    data = open(src, "rb").read()
    central = [i for i in range(len(data)) if data[i : i + 4] == b"PK\x01\x02"]
    assert central
    p = tmp_path / "tampered.npz"
    for off in central:
        for method in (1, 6, 8, 9, 12, 14, 93, 99, 0xFFFF):
            bad = bytearray(data)
            bad[off + 10 : off + 12] = struct.pack("<H", method)
            p.write_bytes(bytes(bad))
            with pytest.raises(ValueError):
                fr.load(str(p))
        bad = bytearray(data)
        bad[off + 8] |= 1  # "encrypted"
        p.write_bytes(bytes(bad))
        with pytest.raises(ValueError):
            fr.load(str(p))
