"""What every fastrnn model shares: named parameters (PyTorch's names),
state_dict / load_state_dict, save to .npz, the parameters as torch tensors
and (Trainable) the gradients backward adds into."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from . import _core, serialization

if TYPE_CHECKING:
    import os

    from numpy.typing import ArrayLike


class Module:
    """What every fastrnn model (layer, cell, Embedding, Linear) has: named
    parameters, state_dict / load_state_dict, save, config.

    Parameters live in `_params` (name -> ndarray, PyTorch's names and order)
    and are also read-only attributes: `lstm.weight_ih_l0`. Assigning one
    (`lstm.weight_ih_l0 = w`) goes through load_state_dict, which checks it."""

    def _configure(self, **config):
        """Check and store the constructor arguments (no allocation)."""
        raise NotImplementedError

    def _param_shapes(self):
        """name -> shape of every parameter, in PyTorch's order."""
        raise NotImplementedError

    def _init_params(self, seed):
        """PyTorch's initialisation: every parameter U(-1/sqrt(H), 1/sqrt(H))."""
        rng = np.random.default_rng(seed)
        bound = 1.0 / np.sqrt(self.hidden_size)
        self._params = {
            name: rng.uniform(-bound, bound, size=shape).astype(self.dtype)
            for name, shape in self._param_shapes().items()
        }
        self._params_changed()

    def __getattr__(self, name):
        params = self.__dict__.get("_params")
        if params is not None and name in params:
            view = params[name].view()
            view.flags.writeable = False  # change weights through load_state_dict / setattr
            return view
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name, value):
        params = self.__dict__.get("_params")
        if params is not None and name in params:
            self.load_state_dict({name: value}, strict=False)
        else:
            object.__setattr__(self, name, value)

    def state_dict(self) -> dict[str, np.ndarray]:
        """The parameters: name -> a copy of each (PyTorch's names, shapes and
        order), ready for load_state_dict, np.savez or torch's
        load_state_dict (through to_torch_state_dict)."""
        return {name: p.copy() for name, p in self._params.items()}

    def to_torch_state_dict(self) -> dict[str, Any]:
        """The parameters as torch tensors (fresh copies) under PyTorch's
        names, for torch's load_state_dict. Imports torch; see fastrnn.interop.

        Raises ValueError for a model PyTorch cannot express: a peephole LSTM
        or a GRU with linear_before_reset=False."""
        return to_torch_state_dict(self)

    def load_state_dict(self, state_dict: Mapping[str, ArrayLike], strict: bool = True) -> None:
        """Copy parameters in from a mapping name -> array (numpy arrays, torch
        tensors, anything np.asarray takes), converted to the model's dtype.

        Every name and shape is checked before anything is copied; with
        strict, the keys must match exactly, else a subset may be given.
        The new arrays are swapped in at once, so a forward or a stream
        running in another thread sees all of the old weights or all of the
        new. Raises TypeError for a value that is not an array of real
        numbers, ValueError for an unknown or missing key or a wrong shape."""
        if not hasattr(state_dict, "keys"):
            raise TypeError(
                f"state_dict: expected a mapping of name -> array, got {type(state_dict).__name__}"
            )
        keys = list(state_dict.keys())
        unknown = [k for k in keys if k not in self._params]
        missing = [k for k in self._params if k not in state_dict]
        if unknown:
            raise ValueError(
                f"state_dict: unknown key(s) {unknown} for {self!r}; expected {list(self._params)}"
            )
        if strict and missing:
            raise ValueError(f"state_dict: missing key(s) {missing} for {self!r}")
        new = {}
        for k in keys:
            value = state_dict[k]
            if hasattr(value, "detach"):  # a torch tensor
                value = value.detach().cpu().numpy()
            try:
                arr = np.asarray(value)
            except Exception as e:
                raise TypeError(
                    f"state_dict[{k!r}]: expected an array, got {type(value).__name__} ({e})"
                ) from None
            if arr.dtype.kind not in "fiu":
                raise TypeError(f"state_dict[{k!r}]: expected real numbers, got dtype {arr.dtype}")
            want = self._params[k].shape
            if arr.shape != want:
                raise ValueError(f"state_dict[{k!r}]: expected shape {want}, got {arr.shape}")
            new[k] = arr
        # Fresh arrays swapped in at once: a forward or a stream running in
        # another thread sees all of the old weights or all of the new.
        params = dict(self._params)
        for k, arr in new.items():
            params[k] = np.array(arr, dtype=self.dtype, order="C")
        self.__dict__["_params"] = params
        self._params_changed()

    def _params_changed(self):
        """Forget what was derived from the parameters. Whatever changes
        `_params` in place (an optimizer step) must call this."""
        self.__dict__["_packed_cache"] = {}
        version = self.__dict__.get("_weights_version")  # streams watch it (stream.py)
        if version is not None:
            version += 1  # a 1-element array: in place

    def _packed(self, name):
        """Parameter `name` laid out for fastrnn's products (_core.pack), made
        once per set of weights."""
        packed = self.__dict__.setdefault("_packed_cache", {})
        if name not in packed:
            packed[name] = _core.pack(self._params[name])
        return packed[name]

    def config(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this model (JSON-able):
        `type(model)(**model.config())` is a model of the same shape."""
        raise NotImplementedError

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write config and parameters to `path` (.npz, no pickle), atomically:
        through a temporary file and a rename, so a crash mid-save leaves the
        old file intact. fastrnn.load reads it back."""
        serialization.save(path, type(self).__name__, self.config(), self._params)


class Trainable:
    """Gradients of a module's parameters, which backward adds into (and
    an optimizer's step reads)."""

    _params: dict[str, np.ndarray]  # Module's

    @property
    def grads(self) -> dict[str, np.ndarray]:
        """name -> gradient accumulated by backward (state-dict names and shapes),
        created zeroed on first use."""
        grads = self.__dict__.get("_grads")
        if grads is None:
            grads = {name: np.zeros_like(p) for name, p in self._params.items()}
            self.__dict__["_grads"] = grads
        return grads

    def zero_grad(self) -> None:
        """Set every accumulated gradient to zero (in place)."""
        for g in self.grads.values():
            g.fill(0)


# Here rather than in interop.py, which builds on the layers and cells (and so
# on this module): Module.to_torch_state_dict needs only the parameters.
def to_torch_state_dict(model: Module) -> dict[str, Any]:
    """The model's parameters as a dict of torch tensors (fresh copies) under
    PyTorch's names, for torch's load_state_dict. Imports torch."""
    import torch

    check_torch_expressible(model)
    return {k: torch.from_numpy(v) for k, v in model.state_dict().items()}


def check_torch_expressible(model: Module) -> None:
    """Refuse a model that PyTorch has no equivalent of (ValueError)."""
    if getattr(model, "peephole", False):
        raise ValueError(
            "peephole: PyTorch's LSTM has no peephole connections, so this layer "
            "has no PyTorch equivalent (weight_peep would be dropped)"
        )
    if getattr(model, "linear_before_reset", True) is False:
        raise ValueError(
            "linear_before_reset=False: PyTorch's GRU computes only the "
            "linear_before_reset=True form, so this GRU has no PyTorch equivalent"
        )
