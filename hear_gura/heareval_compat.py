"""Compatibility of heareval 2021.1.3 and hearvalidator 2021.0.6 with today's stack.

Four known breakages, each handled here and nowhere else:

1. **TensorFlow.** Both tools ``import tensorflow`` (1.4 GB, ~12 s per import)
   only to test ``isinstance(model, tf.Module)`` and, in heareval's embedding
   runner, to abort when torch sees a GPU that TensorFlow does not. When
   TensorFlow is not installed, a small stand-in module answers those two
   questions: no model is a ``tf.Module``, and TensorFlow "sees" the GPUs
   torch sees. Anything else raises an error saying TensorFlow is absent.
   An installed TensorFlow always wins: the stand-in is only found last. The
   stand-in exists only in processes that import ``heareval`` or
   ``hearvalidator`` (it is switched on when either package is first
   imported, before they import TensorFlow); elsewhere ``import tensorflow``
   fails as usual, so libraries that probe for TensorFlow see it absent.
2. **torch >= 2.6 ``weights_only``.** heareval reloads its own Lightning
   checkpoints with ``torch.load``, which now defaults to
   ``weights_only=True`` and fails on them. In processes that import
   ``heareval.predictions.task_predictions``, Lightning's checkpoint writer
   records each file it writes (path and SHA-256), and ``torch.load`` without
   an explicit ``weights_only`` unpickles fully only such a file, unchanged
   since; every other file keeps torch's weights-only default.
   ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` is never set.
3. **Event tasks' KeyError** (hear-eval-kit#432): heareval picks the event
   post-processing of the best epoch by assigning
   ``trainer.fit_loop.current_epoch``, which pytorch-lightning >= 1.6 ignores,
   so the test looks up the wrong epoch. The patched test step sets the
   epoch where lightning reads it (``fit_loop.epoch_progress.current.completed``).
4. **Option folder names over 255 characters.** heareval's embedding runner
   names its output folder ``<module>-<key>=<slugify(value)>-...``; a learned
   mix of 25 or 49 layer weights (``hear-gura layers --export``) slugifies to
   about 500-1,000 characters, which no file system accepts. In processes that
   import ``heareval``, python-slugify's ``slugify`` returns any slug longer
   than :data:`MAX_OPTION_SLUG` characters as its first characters plus a
   SHA-256 digest of the whole slug (:func:`short_slug`); shorter slugs, and so
   every folder name heareval gave before, are unchanged. heareval's runner is
   the only user of python-slugify in those processes.

Activation: ``pip install .`` places ``hear_gura_heareval_compat.pth`` in
site-packages, which calls :func:`install_import_hook` at interpreter start.
The hook imports nothing and costs nothing until ``heareval`` or
``hearvalidator`` is imported, so the tools' own commands work unchanged::

    hear-validator hear_gura.fusion_cat -m fixtures/checkpoints.json
    python3 -m heareval.embeddings.runner hear_gura.fusion_cat --tasks-dir tasks ...
    python3 -m heareval.predictions.runner embeddings/hear_gura.fusion_cat/TASK

Without the ``.pth`` (e.g. a source checkout), run them through this module,
which installs the same hook first::

    python3 -m hear_gura.heareval_compat validator hear_gura.fusion_cat -m ...
    python3 -m hear_gura.heareval_compat embeddings hear_gura.fusion_cat ...
    python3 -m hear_gura.heareval_compat predictions embeddings/...

Only the standard library is imported at module level.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import types
from typing import Any, Callable, Dict, Optional, Sequence

STAND_IN_ATTRIBUTE = "__hear_gura_stand_in__"
#: Set on the functions this module wraps, so that each is wrapped once.
PATCHED_ATTRIBUTE = "__hear_gura_patched__"

# ------------------------------------------------------------ option slugs (4)

#: Longest option-value slug heareval's runner keeps as it is (fix 4); ``hear_gura.<module>-layers=<64>``
#: stays far below the 255 characters a folder name may have.
MAX_OPTION_SLUG = 64
_DIGEST_CHARS = 16


def short_slug(slug: str) -> str:
    """``slug`` itself when at most :data:`MAX_OPTION_SLUG` characters, else its first
    characters, ``-`` and 16 hex digits of its SHA-256 (exactly ``MAX_OPTION_SLUG`` long)."""
    if len(slug) <= MAX_OPTION_SLUG:
        return slug
    digest = hashlib.sha256(slug.encode("utf-8")).hexdigest()[:_DIGEST_CHARS]
    return f"{slug[: MAX_OPTION_SLUG - _DIGEST_CHARS - 1]}-{digest}"


def shorten_long_slugs() -> None:
    """Make ``slugify.slugify`` return :func:`short_slug` of its result (idempotent)."""
    import slugify as package

    if hasattr(package.slugify, PATCHED_ATTRIBUTE):
        return
    original = package.slugify

    @functools.wraps(original)
    def slugify(text: Any, *args: Any, **kwargs: Any) -> str:
        return short_slug(original(text, *args, **kwargs))

    setattr(slugify, PATCHED_ATTRIBUTE, True)
    package.slugify = slugify


def option_slug(value: Any) -> str:
    """The slug heareval's (patched) runner gives an option key or value: ``short_slug(slugify(str(value)))``."""
    from slugify import slugify

    return short_slug(slugify(str(value)))


# ------------------------------------------------------------------ TensorFlow


class _TensorFlowModule:
    """Stand-in for ``tf.Module``: no model built by torch code is an instance."""


def _tf_is_gpu_available(cuda_only: bool = False, min_cuda_compute_capability: Any = None) -> bool:
    """What heareval asks TensorFlow: answer with what torch sees."""
    import torch

    return torch.cuda.is_available()


def make_tensorflow_stand_in() -> types.ModuleType:
    """The stand-in ``tensorflow`` module (see the module docstring)."""
    module = types.ModuleType("tensorflow", "hear_gura's stand-in for an absent TensorFlow")
    module.Module = _TensorFlowModule
    module.test = types.SimpleNamespace(is_gpu_available=_tf_is_gpu_available)
    module.__version__ = "0+hear_gura.stand_in"
    setattr(module, STAND_IN_ATTRIBUTE, True)

    def __getattr__(name: str) -> Any:
        raise AttributeError(
            f"tensorflow.{name}: TensorFlow is not installed (hear_gura provides a stand-in that only "
            "answers heareval's and hear-validator's torch-model checks); pip install tensorflow "
            "to evaluate TensorFlow models"
        )

    module.__getattr__ = __getattr__  # type: ignore[attr-defined]
    return module


class _StandInLoader(importlib.abc.Loader):
    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return make_tensorflow_stand_in()

    def exec_module(self, module: types.ModuleType) -> None:
        return None


class _TensorFlowFallbackFinder(importlib.abc.MetaPathFinder):
    """Last on ``sys.meta_path``: reached for ``tensorflow`` only when nothing else has it."""

    def find_spec(self, fullname: str, path: Optional[Sequence[str]], target: Any = None):
        if fullname != "tensorflow":
            return None
        return importlib.machinery.ModuleSpec("tensorflow", _StandInLoader(), origin="hear_gura stand-in")


# -------------------------------------------------------------------- heareval


def _pin_best_epoch(original: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap ``task_predictions_test`` so the test step sees the best epoch."""

    def task_predictions_test(embedding_path: Any, grid_point: Any, *args: Any, **kwargs: Any) -> Any:
        grid_point.trainer.fit_loop.epoch_progress.current.completed = grid_point.epoch
        return original(embedding_path, grid_point, *args, **kwargs)

    task_predictions_test.__wrapped__ = original  # type: ignore[attr-defined]
    task_predictions_test.__doc__ = original.__doc__
    return task_predictions_test


#: Checkpoints Lightning wrote in this process: real path -> SHA-256 of the bytes written.
_OWN_CHECKPOINTS: Dict[str, str] = {}


def _sha256(path: str) -> Optional[str]:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def _file_path(f: Any) -> Optional[str]:
    """The local path ``torch.load`` reads: a path, or the ``name`` of an open file (fsspec's too)."""
    path = f if isinstance(f, (str, os.PathLike)) else getattr(f, "name", None)
    return os.path.realpath(path) if isinstance(path, (str, os.PathLike)) else None


def is_own_checkpoint(f: Any) -> bool:
    """Whether ``f`` is a checkpoint Lightning wrote in this process, unchanged since."""
    path = _file_path(f)
    return path is not None and path in _OWN_CHECKPOINTS and _OWN_CHECKPOINTS[path] == _sha256(path)


def _record_saves(original: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap ``TorchCheckpointIO.save_checkpoint`` to record what it writes."""

    @functools.wraps(original)
    def save_checkpoint(self: Any, checkpoint: Any, path: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(self, checkpoint, path, *args, **kwargs)
        local = _file_path(path)
        digest = _sha256(local) if local else None
        if local and digest:
            _OWN_CHECKPOINTS[local] = digest
        return result

    setattr(save_checkpoint, PATCHED_ATTRIBUTE, True)
    return save_checkpoint


def _full_load_of_own_checkpoints(original: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap ``torch.load``: default to ``weights_only=False`` only for :func:`is_own_checkpoint` files."""

    @functools.wraps(original)
    def load(f: Any, *args: Any, **kwargs: Any) -> Any:
        if "weights_only" not in kwargs and is_own_checkpoint(f):
            kwargs["weights_only"] = False
        return original(f, *args, **kwargs)

    setattr(load, PATCHED_ATTRIBUTE, True)
    return load


def patch_task_predictions(module: types.ModuleType) -> None:
    """Fix breakages 2 and 3 in ``heareval.predictions.task_predictions``."""
    import torch
    from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

    if not hasattr(TorchCheckpointIO.save_checkpoint, PATCHED_ATTRIBUTE):
        TorchCheckpointIO.save_checkpoint = _record_saves(TorchCheckpointIO.save_checkpoint)
    if not hasattr(torch.load, PATCHED_ATTRIBUTE):
        torch.load = _full_load_of_own_checkpoints(torch.load)
    if not hasattr(module.task_predictions_test, "__wrapped__"):
        module.task_predictions_test = _pin_best_epoch(module.task_predictions_test)


_PATCHES: Dict[str, Callable[[types.ModuleType], None]] = {
    "heareval.predictions.task_predictions": patch_task_predictions,
}


class _PatchingLoader(importlib.abc.Loader):
    """Runs the real loader, then the patch."""

    def __init__(self, loader: importlib.abc.Loader, patch: Callable[[types.ModuleType], None]) -> None:
        self._loader = loader
        self._patch = patch

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Optional[types.ModuleType]:
        return self._loader.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        self._loader.exec_module(module)
        self._patch(module)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


#: Packages whose first import switches the TensorFlow stand-in on (fix 1).
ACTIVATING_PACKAGES = ("heareval", "hearvalidator")


def activate_tensorflow_stand_in() -> None:
    """Let ``import tensorflow`` find the stand-in when TensorFlow is absent (idempotent)."""
    if not any(type(f).__name__ == _TensorFlowFallbackFinder.__name__ for f in sys.meta_path):
        sys.meta_path.append(_TensorFlowFallbackFinder())


class _PatchOnImportFinder(importlib.abc.MetaPathFinder):
    """First on ``sys.meta_path``: switches the stand-in on for heareval / hearvalidator, and
    wraps the loaders of the modules in ``_PATCHES``."""

    def find_spec(self, fullname: str, path: Optional[Sequence[str]], target: Any = None):
        if fullname in ACTIVATING_PACKAGES:
            activate_tensorflow_stand_in()
            if fullname == "heareval":
                shorten_long_slugs()
            return None
        patch = _PATCHES.get(fullname)
        if patch is None:
            return None
        for finder in sys.meta_path:
            # Skip every patching finder (also one from a second copy of this module).
            if type(finder).__name__ == type(self).__name__ or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _PatchingLoader(spec.loader, patch)
                return spec
        return None


def install_import_hook() -> None:
    """Register the patching finder once (idempotent); imports nothing.

    The TensorFlow stand-in follows when ``heareval`` or ``hearvalidator`` is
    imported (at once if one already is).
    """
    if not any(type(f).__name__ == _PatchOnImportFinder.__name__ for f in sys.meta_path):
        sys.meta_path.insert(0, _PatchOnImportFinder())
    if any(name in sys.modules for name in ACTIVATING_PACKAGES):
        activate_tensorflow_stand_in()
    if "heareval" in sys.modules:
        shorten_long_slugs()
    for name, patch in _PATCHES.items():
        module = sys.modules.get(name)
        if module is not None:
            patch(module)


def uses_tensorflow_stand_in() -> bool:
    """Whether ``import tensorflow`` gives the stand-in in this process (heareval or hearvalidator imported)."""
    import tensorflow

    return bool(getattr(tensorflow, STAND_IN_ATTRIBUTE, False))


# ------------------------------------------------------------------------ CLI

_TOOLS = {
    "validator": ("hearvalidator.validate", "main"),
    "embeddings": ("heareval.embeddings.runner", "runner"),
    "predictions": ("heareval.predictions.runner", "runner"),
}


def main(argv: Optional[Sequence[str]] = None) -> None:
    """``python -m hear_gura.heareval_compat {validator|embeddings|predictions} ARGS...``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in _TOOLS:
        sys.exit(
            "usage: python -m hear_gura.heareval_compat {validator|embeddings|predictions} ARGS...\n"
            "runs hear-validator / heareval's embedding or prediction runner with the compatibility fixes"
        )
    install_import_hook()
    module_name, function = _TOOLS[args[0]]
    sys.argv = [module_name] + args[1:]
    entry = getattr(importlib.import_module(module_name), function)
    entry()


if __name__ == "__main__":
    # Run as a script, this file is a second copy of the module (``__main__``);
    # use the canonical one so that only one set of hooks exists.
    from hear_gura.heareval_compat import main as canonical_main

    canonical_main()
