"""The identity of a result: everything that produced it, as data that can be compared.

A score or an embedding is trusted again only when the identity it was
recorded with equals the identity the same command would have now. The
identity of an ensemble's output (:func:`ensemble_identity`) holds

- the resolved ensemble configuration, every default filled in
  (:meth:`~hear_gura.ensemble.EnsembleConfig.to_dict`);
- per member, the content of the checkpoint it loads (a SHA-256 over the
  checkpoint's files, :func:`path_digest`), whether those are RANDOM
  fixture weights, and where they were found (recorded, not compared:
  the same bytes under another path are the same checkpoint);
- the manifest in effect and how it was chosen (an argument or
  ``$HEAR_GURA_MANIFEST``), recorded with its content hash;
- the versions of hear_gura (with a hash of its own source files, so an
  edited checkout is a different producer), torch, transformers, heareval
  and the other packages the numbers depend on.

A task's identity (:func:`task_digest`) covers its metadata, label files and
the bytes of every 16 kHz clip.

Hashing is done once per file: digests are remembered by path, size,
modification and change time (nanoseconds) in a small SQLite table under
``$HEAR_GURA_CACHE_DIR`` (default ``~/.cache/hear_gura``), so a rerun costs
one ``stat`` per file. The cost on the 20,124-clip ``--size full`` suite is
in ``eval_scripts/identity-cost.json``.

Only the standard library is imported at module level.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Mapping, Optional, Tuple

if TYPE_CHECKING:  # pragma: no cover
    from hear_gura.ensemble import EnsembleConfig
    from hear_gura.manifest import Manifest
    from hear_gura.members.registry import MemberDescription
    from hear_gura.members.base import MemberSpec

CACHE_DIR_ENV = "HEAR_GURA_CACHE_DIR"
#: Packages whose versions are part of every identity.
VERSIONED = ("torch", "torchaudio", "transformers", "heareval", "pytorch-lightning", "torchcrepe", "espnet-s3prl",
             "numpy")
_CHUNK = 1 << 20


def canonical(value: Any) -> str:
    """Compact JSON with sorted keys: the text two identities are compared by."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def digest_of(value: Any) -> str:
    """SHA-256 (hex) of a JSON-able value's canonical text."""
    return hashlib.sha256(canonical(value).encode("utf-8")).hexdigest()


# ------------------------------------------------------------ file digests
def cache_dir() -> Path:
    """Where hear_gura keeps its caches (``$HEAR_GURA_CACHE_DIR`` or ``~/.cache/hear_gura``)."""
    override = os.environ.get(CACHE_DIR_ENV)
    if override:
        return Path(override).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hear_gura"


class DigestMemo:
    """File digests remembered by (path, size, mtime_ns, ctime_ns), in memory and in SQLite.

    A file whose size or times changed is hashed again. When the cache folder
    cannot be written, digests are remembered for this process only.
    """

    def __init__(self, path: Optional[Path]) -> None:
        self._memory: Dict[Tuple[str, int, int, int], str] = {}
        self._lock = threading.Lock()
        self._db: Optional[sqlite3.Connection] = None
        self._loaded = False
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(str(path), timeout=30, check_same_thread=False, isolation_level=None)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("CREATE TABLE IF NOT EXISTS digests (path TEXT PRIMARY KEY, size INTEGER, "
                           "mtime_ns INTEGER, ctime_ns INTEGER, sha256 TEXT)")
                self._db = db
            except (OSError, sqlite3.Error):
                self._db = None

    @staticmethod
    def _key(path: Path, stat: os.stat_result) -> Tuple[str, int, int, int]:
        return str(path), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns

    def _load(self) -> None:
        """Read every remembered digest into memory at once (one query, not one per file)."""
        if self._loaded or self._db is None:
            return
        try:
            with self._lock:
                rows = self._db.execute("SELECT path, size, mtime_ns, ctime_ns, sha256 FROM digests").fetchall()
        except sqlite3.Error:
            rows = []
        for path, size, mtime_ns, ctime_ns, digest in rows:
            self._memory.setdefault((path, size, mtime_ns, ctime_ns), digest)
        self._loaded = True

    def lookup(self, key: Tuple[str, int, int, int]) -> Optional[str]:
        """The remembered digest of a file with exactly this path, size and times, or None."""
        self._load()
        return self._memory.get(key)

    def store(self, items: Iterable[Tuple[Tuple[str, int, int, int], str]]) -> None:
        items = list(items)
        for key, value in items:
            self._memory[key] = value
        if self._db is None or not items:
            return
        try:
            with self._lock:
                self._db.execute("BEGIN")
                self._db.executemany("INSERT OR REPLACE INTO digests VALUES (?, ?, ?, ?, ?)",
                                     [(*key, value) for key, value in items])
                self._db.execute("COMMIT")
        except sqlite3.Error:
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error:
                pass


_MEMOS: Dict[str, DigestMemo] = {}


def _memo() -> DigestMemo:
    location = cache_dir() / "file-digests.sqlite"
    memo = _MEMOS.get(str(location))
    if memo is None:
        memo = _MEMOS[str(location)] = DigestMemo(location)
    return memo


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while True:
            block = handle.read(_CHUNK)
            if not block:
                break
            digest.update(block)
    return digest.hexdigest()


def file_digests(paths: Iterable[Path]) -> List[str]:
    """SHA-256 of each file's bytes (hex), hashing only files not seen with the same size and times.

    Raises:
        OSError: a file cannot be read.
    """
    memo = _memo()
    results: List[str] = []
    fresh: List[Tuple[Tuple[str, int, int, int], str]] = []
    for path in paths:
        absolute = Path(os.path.abspath(path))
        stat = absolute.stat()
        key = DigestMemo._key(absolute, stat)
        found = memo.lookup(key)
        if found is None:
            found = _hash_file(absolute)
            after = absolute.stat()
            if DigestMemo._key(absolute, after) == key:  # unchanged while it was read: remember it
                fresh.append((key, found))
        results.append(found)
    memo.store(fresh)
    return results


def file_digest(path: "str | os.PathLike[str]") -> str:
    """SHA-256 of one file's bytes (see :func:`file_digests`)."""
    return file_digests([Path(path)])[0]


def _tree_files(root: Path) -> List[Path]:
    """Regular files under ``root``, sorted, skipping hidden files and folders (``.git``, ``.cache``)."""
    found = []
    for folder, dirs, files in os.walk(root, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(Path(folder) / f for f in sorted(files) if not f.startswith("."))
    return found


def path_digest(path: "str | os.PathLike[str]") -> str:
    """SHA-256 over a file's bytes, or over a folder's files (relative names and contents).

    Raises:
        OSError: the path does not exist or cannot be read.
    """
    path = Path(path)
    if path.is_file():
        return file_digest(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such file or folder")
    files = _tree_files(path)
    digest = hashlib.sha256()
    for file, content in zip(files, file_digests(files)):
        digest.update(f"{file.relative_to(path).as_posix()}\0{content}\0".encode())
    return digest.hexdigest()


# ------------------------------------------------------------------- tasks
def task_digest(path: "str | os.PathLike[str]", sample_rate_folder: str = "16000") -> str:
    """SHA-256 of a HEAR task's content: top-level ``.json`` / ``.csv`` files and every clip's bytes.

    A task rebuilt in place with other clips, labels or splits (even clips of
    the same size) gets another digest; a byte-identical rebuild or a copied
    folder keeps it.
    """
    path = Path(path)
    digest = hashlib.sha256()
    tops = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in (".json", ".csv"))
    for item, content in zip(tops, file_digests(tops)):
        digest.update(f"{item.name}\0{content}\0".encode())
    audio = path / sample_rate_folder
    clips = sorted(p for p in audio.rglob("*") if p.is_file()) if audio.is_dir() else []
    for item, content in zip(clips, file_digests(clips)):
        digest.update(f"{item.relative_to(audio).as_posix()}\0{content}\0".encode())
    return digest.hexdigest()


# ---------------------------------------------------------------- versions
@lru_cache(maxsize=1)
def code_digest() -> str:
    """SHA-256 (first 16 hex digits) of hear_gura's own Python source files.

    Part of every identity: results from other code are not reused, whatever
    its version number says. Ensemble files are not included: an ensemble's
    resolved configuration is its own part of the identity.
    """
    package = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for file in sorted(package.rglob("*.py")):
        digest.update(file.relative_to(package).as_posix().encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


@lru_cache(maxsize=1)
def versions() -> Dict[str, str]:
    """Versions of Python, hear_gura (``VERSION+src.CODE_DIGEST``) and the packages in :data:`VERSIONED`."""
    import platform

    found = {"python": platform.python_version()}
    try:
        own = metadata.version("hear_gura")
    except metadata.PackageNotFoundError:
        own = "source"
    found["hear_gura"] = f"{own}+src.{code_digest()}"
    for name in VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


# ----------------------------------------------------------- checkpoints
@dataclass(frozen=True)
class CheckpointLocation:
    """Where a member's weights come from.

    Attributes:
        member: the member's name.
        checkpoint: the id or path the ensemble names (None: the kind's own weights).
        path: the local file or folder, or None when it cannot be found locally.
        via: ``manifest``, ``local path``, ``library cache``, ``package`` or ``weight-free``.
        random_weights: True for ``hear-gura fixtures`` checkpoints.
    """

    member: str
    checkpoint: Optional[str]
    path: Optional[Path]
    via: str
    random_weights: bool = False


def _hub_cache_folder(checkpoint: str) -> Optional[Path]:
    """The Hugging Face cache's snapshot folder of a hub id, or None (never downloads)."""
    if "/" not in checkpoint or checkpoint.startswith((".", "/", "~")):
        return None
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(checkpoint, local_files_only=True))
    except Exception:  # noqa: BLE001 - not cached (or no huggingface_hub): not locally available
        return None


def locate_checkpoint(spec: "MemberSpec", manifest: "Manifest") -> CheckpointLocation:
    """Where a member's weights are, without loading them: THE one checkpoint locator.

    In order: weights shipped inside an installed package (CREPE, PESTO, Basic
    Pitch, Resemblyzer: the kind's ``packaged_weights``); none at all
    (``weight_free``: fbank); the manifest entry of the checkpoint the member
    names; a local file or folder of that name; the Hugging Face cache (hub ids;
    never downloads). A folder whose ``config.json`` carries the fixture marker,
    or a manifest marked ``"_random_weights"``, holds random weights.

    Raises:
        CheckpointError: the manifest maps the checkpoint to a path that does not exist.
    """
    from hear_gura.members.hf import FIXTURE_MARKER

    kind = spec.kind
    params = spec.resolved_params()
    if kind.weight_free(params):
        return CheckpointLocation(spec.name, None, None, "weight-free")
    checkpoint = spec.checkpoint()
    if checkpoint is None:
        path = kind.packaged_weights(params)
        return CheckpointLocation(spec.name, None, path if path and path.exists() else None,
                                  "package" if kind.checkpoint_param is None else "library cache")
    path = manifest.resolve(checkpoint)
    via = "manifest"
    if path is None:
        local = Path(checkpoint).expanduser()
        path, via = (local.resolve(), "local path") if local.exists() else (None, "library cache")
    if path is None:
        path = _hub_cache_folder(checkpoint)
    random = False
    if path is not None and path.is_dir():
        try:
            config = json.loads((path / "config.json").read_text(encoding="utf-8"))
            random = bool(isinstance(config, dict) and config.get(FIXTURE_MARKER))
        except (OSError, ValueError):
            random = False
    if not random and via == "manifest" and manifest.random_weights:
        random = True
    return CheckpointLocation(spec.name, checkpoint, path, via, random)


def describe_member(spec: "MemberSpec", manifest: "Manifest") -> "MemberDescription":
    """What a member is (width, states, hop...), from its kind's ``describe``, without loading weights.

    Raises:
        CheckpointError: the kind needs its checkpoint's config and cannot read it.
    """
    return spec.kind.describe(spec.name, spec.resolved_params(), locate_checkpoint(spec, manifest))


def member_identity(location: CheckpointLocation) -> Dict[str, Any]:
    """``{"content": sha256 | "weight-free" | None, "random_weights": bool, "path": str | None, "via": str}``.

    ``content`` is None when the weights cannot be found locally: such an
    identity cannot be proven, and results keyed by it are never reused.
    """
    if location.via == "weight-free":
        content: Optional[str] = "weight-free"
    elif location.path is None:
        content = None
    else:
        try:
            content = path_digest(location.path)
        except OSError:
            content = None
    return {"content": content, "random_weights": location.random_weights,
            "path": str(location.path) if location.path else None, "via": location.via,
            "checkpoint": location.checkpoint}


#: Parts of a member's identity that are recorded but not compared.
_RECORDED_ONLY = ("path", "via", "checkpoint")


def manifest_identity(manifest: "Manifest") -> Dict[str, Any]:
    """The manifest in effect: its file, how it was chosen, and its content hash (recorded, not compared)."""
    content = None
    if manifest.source is not None:
        try:
            content = file_digest(manifest.source)
        except OSError:
            content = None
    return {"source": str(manifest.source) if manifest.source else None, "chosen_by": manifest.chosen_by,
            "content": content}


def ensemble_identity(config: "EnsembleConfig", manifest: "Manifest") -> Dict[str, Any]:
    """The identity of an ensemble's outputs (see the module docstring); hashes checkpoints once per file.

    Returns:
        ``{"config", "members", "manifest", "versions", "random_weights", "provable"}``.
    Raises:
        CheckpointError: the manifest maps a checkpoint to a missing path.
    """
    members = {spec.name: member_identity(locate_checkpoint(spec, manifest)) for spec in config.members}
    return {
        "config": config.to_dict(),
        "members": members,
        "manifest": manifest_identity(manifest),
        "versions": versions(),
        "random_weights": any(m["random_weights"] for m in members.values()),
        "provable": all(m["content"] is not None for m in members.values()),
    }


def comparable(identity: Mapping[str, Any]) -> Dict[str, Any]:
    """The parts of an identity that decide whether a result can be reused (paths and manifest file excluded)."""
    compared = {k: v for k, v in identity.items() if k not in ("manifest",)}
    if isinstance(compared.get("members"), Mapping):
        compared["members"] = {name: {k: v for k, v in member.items() if k not in _RECORDED_ONLY}
                               for name, member in compared["members"].items()}
    config = compared.get("config")
    if isinstance(config, Mapping):  # metadata does not change a number
        compared["config"] = {k: v for k, v in config.items() if k not in ("description", "gura_name")}
    return compared


def same_identity(recorded: Any, current: Mapping[str, Any]) -> bool:
    """Whether a recorded identity proves a result equal to what ``current`` would produce."""
    return (isinstance(recorded, Mapping) and bool(current.get("provable", True))
            and canonical(comparable(recorded)) == canonical(comparable(current)))


def differences(recorded: Any, current: Mapping[str, Any]) -> List[str]:
    """Readable reasons why two identities differ (empty when they are the same)."""
    if not isinstance(recorded, Mapping):
        return ["no identity recorded (written by an older hear_gura)"]
    reasons: List[str] = []
    if not current.get("provable", True):
        unknown = [n for n, m in current.get("members", {}).items() if m.get("content") is None]
        reasons.append(f"the weights of {', '.join(unknown)} are not on this machine, so no result can be proven theirs")
    old, new = comparable(recorded), comparable(current)
    for key in sorted(set(old) | set(new)):
        if canonical(old.get(key)) == canonical(new.get(key)):
            continue
        if key == "members" and isinstance(old.get(key), Mapping) and isinstance(new.get(key), Mapping):
            changed = sorted(n for n in set(old[key]) | set(new[key])
                             if canonical(old[key].get(n)) != canonical(new[key].get(n)))
            reasons.append(f"checkpoint content of {', '.join(changed)}")
        elif key == "versions" and isinstance(old.get(key), Mapping) and isinstance(new.get(key), Mapping):
            changed = sorted(n for n in set(old[key]) | set(new[key]) if old[key].get(n) != new[key].get(n))
            reasons.append("versions of " + ", ".join(f"{n} ({old[key].get(n)} -> {new[key].get(n)})"
                                                      for n in changed))
        else:
            reasons.append({"config": "ensemble configuration", "task": "task content"}.get(key, key))
    return reasons
