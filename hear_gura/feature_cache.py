"""A persistent, opt-in cache of member outputs (``--feature-cache DIR``).

A member's output for one clip, a ``(frames, width)`` tensor, is stored under
the identity of the member computation (``member_key``: kind, checkpoint
content, member options, hop, layer selection; computed by the caller, an
opaque lowercase hex string) and the clip's content hash (:func:`clip_key`).
A later run of another ensemble or variant over the same members then reads
the features instead of running the member again.

Layout (one file per entry; dropping a member is a folder removal)::

    DIR/hear-gura-feature-cache.json          marker: format version, last bound given
    DIR/<member_key>/member.json              optional readable identity (describe_member)
    DIR/<member_key>/<clip[:2]>/<clip>.feat   one entry

Entry file: a 96-byte header, then the raw little-endian payload::

    magic b"HGFCACHE" | format u16 | dtype u8 | ndim u8 (=2) | reserved u32 (=0)
    | frames u64 | width u64 | SHA-256 of (member_key, clip) | SHA-256 of (header before it + payload)

Guarantees:

* **Never trusts a bad entry.** :meth:`FeatureCache.get` checks the magic, the
  format version, the dtype, that the file length equals the header's shape,
  that the entry belongs to the requested key (a copied or moved file is
  caught) and the SHA-256 of header and payload. Anything off, or an
  unreadable file, is a miss: the entry is deleted and counted in
  ``stats.corrupt``; the caller recomputes it.
* **Atomic writes.** An entry is written to a uniquely named temporary file in
  its own folder and renamed over the target (``os.replace``), so readers (other
  processes included) see the old entry or the new one, never a mix. There is
  no ``fsync``: a file torn by a power loss fails its checksum and is recomputed.
  Temporary files a killed process left behind are removed by :meth:`prune`
  once they are an hour old.
* **Never breaks a run.** Any ``OSError`` while writing (disk full, read-only
  folder, quota) is swallowed after the temporary file is removed, and counted
  in ``stats.write_errors``; a read-only cache still serves hits.
* **Size bound, least recently used first.** Each entry's modification time is
  its last use: set when it is written and on every hit (``os.utime``, one
  system call; ``atime`` is not used as ``noatime``/``relatime`` mounts do not
  keep it). Sizes are file sizes (header included), not disk blocks. The
  running total is kept in memory: one scan of the folder the first time a
  bounded cache writes, then updated by this process's own writes. When it
  exceeds the bound, the folder is scanned again (so other processes' entries
  count) and the least recently used entries are removed until the total is at
  most 95 % of the bound; the 5 % slack means a full cache is rescanned once
  per 5 % of the bound written, not on every write.

Concurrency: several processes (``torchrun`` ranks) may share one folder. Writes
never touch another process's temporary file, entries vanishing between a
listing and a read are tolerated (a miss), and a corrupt entry or an eviction
victim is only deleted if the path still holds the file that was judged (same
inode), so a fresh entry another process just renamed into place is kept.
Eviction is approximate under concurrency: each process learns of the others'
writes only when it rescans, so the folder can exceed the bound by what the
others wrote since, and a hit another process has just recorded may not yet
be seen when choosing what to evict. A :class:`FeatureCache` object is meant for
one thread (its counters are not locked).

Speed: ``eval_scripts/bench_feature_cache.py`` measures ``put``/``get`` MB/s
(``eval_scripts/feature-cache-cpu.json``); reading costs one file read and one
SHA-256 pass, writing one SHA-256 pass and one file write.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import struct
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Tuple

from hear_gura.errors import HearGuraError

if TYPE_CHECKING:  # torch is imported where it is used: ``hear-gura --help`` stays fast
    import torch

FORMAT_VERSION = 1
MAGIC = b"HGFCACHE"
MARKER = "hear-gura-feature-cache.json"
MEMBER_INFO = "member.json"
SUFFIX = ".feat"
DEFAULT_MAX_BYTES = 50 * 10**9
"""A suggested bound for ``--feature-cache`` (50 GB); :class:`FeatureCache` itself is unbounded unless given one."""
LOW_WATER = 0.95
"""Eviction after a write goes down to this fraction of the bound (see the module docstring)."""
STALE_TEMP_SECONDS = 3600
"""Temporary files older than this (seconds) are a dead writer's leftovers; :meth:`FeatureCache.prune` removes them."""

# magic, format, dtype code, ndim, reserved, frames, width, identity digest, checksum
_HEADER = struct.Struct("<8sHBBIQQ32s32s")
HEADER_BYTES = _HEADER.size  # 96: a multiple of 8, so the payload is aligned for every dtype
_CHECKED = HEADER_BYTES - 32  # the checksum covers the header up to itself, then the payload
# dtype code -> (torch dtype name, little-endian numpy dtype of the stored bits)
_DTYPES = {1: ("float32", "<f4"), 2: ("float16", "<f2"), 3: ("bfloat16", "<i2")}
_KEY = re.compile(r"[0-9a-f]{16,64}")
_CLIP = re.compile(r"[0-9a-f]{16,128}")
_SHARD = re.compile(r"[0-9a-f]{2}")


def clip_key(samples: "torch.Tensor") -> str:
    """SHA-256 hex (64 characters) of one clip's content.

    ``samples``: a 1-D float32 tensor ``(samples,)`` of the clip's valid
    samples only (no batch padding), on any device (a GPU tensor is copied to
    the CPU, about 2 MB for 30 s at 16 kHz). The digest covers a domain prefix,
    the sample count (uint64) and the samples' contiguous little-endian float32
    bytes, so equal keys mean bit-identical audio. The sample rate is not part
    of it: every hear_gura member reads 16 kHz audio.
    """
    import numpy as np
    import torch

    if not isinstance(samples, torch.Tensor) or samples.dim() != 1 or samples.dtype != torch.float32:
        got = (f"a {samples.dim()}-D {samples.dtype} tensor" if isinstance(samples, torch.Tensor)
               else type(samples).__name__)
        raise HearGuraError(f"clip_key expects one clip's valid samples as a 1-D float32 tensor, got {got}; "
                            "take clips[i, :lengths[i]] and .float() first")
    array = np.ascontiguousarray(samples.detach().cpu().numpy(), dtype="<f4")
    digest = hashlib.sha256(b"hear-gura clip float32 v1\0")
    digest.update(struct.pack("<Q", array.size))
    digest.update(array.view(np.uint8).data)
    return digest.hexdigest()


@dataclass
class CacheStats:
    """What one :class:`FeatureCache` object did (this process only).

    ``misses`` includes the ``corrupt`` entries (each was a miss and was
    recomputed); ``written_bytes`` counts file bytes, headers included.
    """

    hits: int = 0
    misses: int = 0
    corrupt: int = 0
    written: int = 0
    written_bytes: int = 0
    evicted: int = 0
    write_errors: int = 0

    @property
    def hit_rate(self) -> Optional[float]:
        """Hits / lookups, or None before the first lookup."""
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else None


@dataclass(frozen=True)
class _Entry:
    path: str
    member_key: str
    bytes: int
    used_ns: int
    inode: Tuple[int, int]


class _Corrupt(Exception):
    """An entry failed a check; the message says which."""


def _count(n: int, singular: str, plural: str) -> str:
    return f"{n:,} {singular if n == 1 else plural}"


def format_size(n: float) -> str:
    """``n`` bytes in decimal units: ``"812 B"``, ``"12.3 MB"``, ``"50 GB"``."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            break
        n /= 1000
    text = f"{n:.0f}" if unit == "B" else f"{n:.1f}".rstrip("0").rstrip(".")
    return f"{text} {unit}"


_UNITS = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12,
          "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}
_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(?:([kmgt]i?)b?|(b))?\s*", re.IGNORECASE)


def parse_size(text: str, option: str = "--max-size") -> int:
    """Bytes from ``"500MB"``, ``"10GB"``, ``"1.5TB"``, ``"2GiB"`` or plain ``"123456"``.

    KB/MB/GB/TB (and K/M/G/T) are decimal (10**3 ...), KiB/MiB/GiB/TiB binary;
    case does not matter. Raises :class:`HearGuraError` naming ``option``.
    """
    match = _SIZE.fullmatch(str(text))
    if not match:
        raise HearGuraError(f"{option} must be a size such as 10GB, 500MB or 1.5TB (or plain bytes), got {text!r}")
    unit = (match.group(2) or match.group(3) or "").lower()
    return int(round(float(match.group(1)) * _UNITS[unit]))


def _check_key(member_key: str) -> str:
    if not isinstance(member_key, str) or not _KEY.fullmatch(member_key):
        raise HearGuraError(f"a feature-cache member key must be 16-64 lowercase hex characters, got {member_key!r}")
    return member_key


def _identity(member_key: str, clip: str) -> bytes:
    return hashlib.sha256(f"hear-gura feature entry v1\0{member_key}\0{clip}".encode()).digest()


def _default_file_mode() -> int:
    """What ``open(path, "w")`` gives a new file: 0o666 less the umask (read once: setting umask is process-wide)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _same_file(path: str, inode: Tuple[int, int]) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == inode


def _unlink(path: str, inode: Optional[Tuple[int, int]] = None) -> bool:
    """Remove ``path`` (only if it is still the file ``inode`` names, when given); False if it was gone already."""
    if inode is not None and not _same_file(path, inode):
        return False
    try:
        os.unlink(path)
        return True
    except OSError:
        return False


def _scandir(path: str) -> List[os.DirEntry]:
    """The folder's entries, or none when it vanished or cannot be read (another process pruned it)."""
    try:
        with os.scandir(path) as it:
            return list(it)
    except OSError:
        return []


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


def _scan(root: Path, member_key: Optional[str] = None) -> Tuple[List[_Entry], List[Tuple[str, float]]]:
    """Every entry (optionally of one member) and every temporary file ``(path, mtime s)`` under ``root``.

    Cost: one ``stat`` per file. Files vanishing during the scan are skipped.
    """
    entries: List[_Entry] = []
    temps: List[Tuple[str, float]] = []
    for member in _scandir(str(root)):
        if not (_is_dir(member) and _KEY.fullmatch(member.name)) or member_key not in (None, member.name):
            continue
        for shard in _scandir(member.path):
            if not (_is_dir(shard) and _SHARD.fullmatch(shard.name)):
                continue
            for item in _scandir(shard.path):
                try:
                    st = item.stat(follow_symlinks=False)
                except OSError:
                    continue
                if item.name.startswith(".") and item.name.endswith(".tmp"):
                    temps.append((item.path, st.st_mtime))
                elif item.name.endswith(SUFFIX) and item.is_file(follow_symlinks=False):
                    entries.append(_Entry(item.path, member.name, st.st_size, st.st_mtime_ns, (st.st_dev, st.st_ino)))
    return entries, temps


class FeatureCache:
    """Member outputs on disk, keyed by ``(member_key, clip)``; see the module docstring.

    ``root``: the cache folder, created if missing. A folder that exists, is not
    empty and has no ``hear-gura-feature-cache.json`` marker is refused (so a
    typo cannot turn a home folder into a cache). ``max_bytes``: the size bound
    in bytes (file sizes), None for unbounded (:data:`DEFAULT_MAX_BYTES` is a
    suggested value for command-line defaults); the last bound given is
    recorded in the marker for ``hear-gura cache info|prune``.
    """

    def __init__(self, root: "str | os.PathLike[str]", max_bytes: Optional[int] = None, *, create: bool = True) -> None:
        if max_bytes is not None and (not isinstance(max_bytes, int) or max_bytes < 0):
            raise HearGuraError(f"the feature-cache bound must be a number of bytes >= 0 or None, got {max_bytes!r}")
        self.root = Path(root).expanduser()
        self.max_bytes = max_bytes
        self._stats = CacheStats()
        self._total: Optional[int] = None  # bytes; None until the first scan
        self._last_ns = 0
        self._file_mode = _default_file_mode()
        self._described: Dict[str, str] = {}  # member key -> the member.json text this object saw or wrote
        marker = self._read_marker()
        if marker is None:
            if not create:
                raise HearGuraError(self._not_a_cache())
            try:
                self.root.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise HearGuraError(f"cannot create the feature cache folder {self.root}: {err}; "
                                    "give a writable path to --feature-cache") from err
            if not self.root.is_dir():
                raise HearGuraError(f"the feature cache {self.root} is not a folder; give a folder path")
            others = [e.name for e in _scandir(str(self.root)) if not e.name.startswith(f".{MARKER}.")]
            marker = self._read_marker()  # another process may have made it meanwhile
            if marker is None and others:
                raise HearGuraError(
                    f"{self.root} is not empty and is not a hear-gura feature cache (no {MARKER} in it; found "
                    f"{', '.join(sorted(others)[:3])}{', ...' if len(others) > 3 else ''}); give a new or empty "
                    "folder to --feature-cache")
        if marker is not None and marker.get("format") != FORMAT_VERSION:
            raise HearGuraError(f"{self.root} is a feature cache of format {marker.get('format')!r}, this hear-gura "
                                f"reads format {FORMAT_VERSION}; use another folder or delete this one")
        if create and (marker is None or (max_bytes is not None and marker.get("max_bytes") != max_bytes)):
            self._write_marker(max_bytes if max_bytes is not None else (marker or {}).get("max_bytes"))

    @classmethod
    def open_existing(cls, root: "str | os.PathLike[str]") -> "FeatureCache":
        """An existing cache (for ``hear-gura cache``), bounded by the bound recorded in its marker; creates nothing."""
        path = Path(root).expanduser()
        if not path.is_dir():
            raise HearGuraError(f"no feature cache at {path}: the folder does not exist")
        marker = cls._marker_at(path)
        if marker is None:
            raise HearGuraError(cls._not_a_cache_at(path))
        bound = marker.get("max_bytes")
        return cls(path, bound if isinstance(bound, int) and bound >= 0 else None, create=False)

    # -- marker -----------------------------------------------------------------------------------------------

    @staticmethod
    def _marker_at(root: Path) -> Optional[Dict[str, Any]]:
        try:
            data = json.loads((root / MARKER).read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def _read_marker(self) -> Optional[Dict[str, Any]]:
        return self._marker_at(self.root)

    @staticmethod
    def _not_a_cache_at(root: Path) -> str:
        return (f"{root} is not a hear-gura feature cache (no {MARKER} in it); give the folder that was passed "
                "to --feature-cache")

    def _not_a_cache(self) -> str:
        return self._not_a_cache_at(self.root)

    def _write_marker(self, max_bytes: Optional[int]) -> None:
        text = json.dumps({"format": FORMAT_VERSION, "what": "hear-gura feature cache: member outputs keyed by "
                           "member identity and clip content hash", "max_bytes": max_bytes}, indent=2) + "\n"
        try:
            self._write_atomically(self.root / MARKER, [text.encode()], None)
        except OSError:
            pass  # a read-only cache still serves hits

    # -- paths and encoding -----------------------------------------------------------------------------------

    def path(self, member_key: str, clip: str) -> Path:
        """Where the entry of ``(member_key, clip)`` lives (whether or not it exists)."""
        _check_key(member_key)
        if not isinstance(clip, str) or not _CLIP.fullmatch(clip):
            raise HearGuraError(f"a feature-cache clip key must be lowercase hex (clip_key's output), got {clip!r}")
        return self.root / member_key / clip[:2] / f"{clip}{SUFFIX}"

    def _tick(self) -> int:
        """Now in ns, strictly increasing within this process (LRU order of quick successive uses)."""
        self._last_ns = max(time.time_ns(), self._last_ns + 1)
        return self._last_ns

    def _write_atomically(self, target: Path, chunks: Sequence[Any], used_ns: Optional[int]) -> None:
        """Write ``chunks`` to a unique temporary file beside ``target``, then rename it over ``target``.

        Raises OSError; the temporary file never outlives a failure. A folder
        removed meanwhile by a concurrent ``prune`` is re-created once.
        """
        for attempt in (0, 1):
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
            except FileNotFoundError:
                if attempt:
                    raise
                continue
            try:
                with os.fdopen(fd, "wb") as handle:
                    for chunk in chunks:
                        handle.write(chunk)
                os.chmod(tmp, self._file_mode)
                if used_ns is not None:
                    os.utime(tmp, ns=(used_ns, used_ns))
                os.replace(tmp, target)
                return
            except BaseException:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                raise

    @staticmethod
    def _encode(member_key: str, clip: str, features: "torch.Tensor") -> Tuple[bytes, memoryview, int]:
        """Header, payload bytes and payload size of ``features``."""
        import numpy as np
        import torch

        codes = {getattr(torch, name): code for code, (name, _) in _DTYPES.items()}
        if not isinstance(features, torch.Tensor) or features.dim() != 2 or features.dtype not in codes:
            got = (f"a {features.dim()}-D {features.dtype} tensor" if isinstance(features, torch.Tensor)
                   else type(features).__name__)
            raise HearGuraError(f"the feature cache stores (frames, width) float32, float16 or bfloat16 tensors, "
                                f"got {got}")
        code = codes[features.dtype]
        tensor = features.detach().cpu().contiguous()
        if tensor.dtype == torch.bfloat16:
            tensor = tensor.view(torch.int16)
        array = np.ascontiguousarray(tensor.numpy(), dtype=_DTYPES[code][1])
        payload = array.view(np.uint8).reshape(-1).data
        frames, width = features.shape
        head = _HEADER.pack(MAGIC, FORMAT_VERSION, code, 2, 0, frames, width, _identity(member_key, clip), b"\0" * 32)
        digest = hashlib.sha256(head[:_CHECKED])
        digest.update(payload)
        return head[:_CHECKED] + digest.digest(), payload, payload.nbytes

    @staticmethod
    def _decode(data: bytearray, member_key: str, clip: str) -> "torch.Tensor":
        """The tensor in an entry file's bytes; raises :class:`_Corrupt` if any check fails."""
        import numpy as np
        import torch

        if len(data) < HEADER_BYTES:
            raise _Corrupt(f"{len(data)} bytes, shorter than the {HEADER_BYTES}-byte header")
        magic, version, code, ndim, reserved, frames, width, ident, checksum = _HEADER.unpack_from(data)
        if magic != MAGIC:
            raise _Corrupt("bad magic bytes")
        if version != FORMAT_VERSION:
            raise _Corrupt(f"format {version}, expected {FORMAT_VERSION}")
        if code not in _DTYPES or ndim != 2 or reserved != 0:
            raise _Corrupt("bad dtype, rank or reserved field")
        name, stored = _DTYPES[code]
        itemsize = np.dtype(stored).itemsize
        if len(data) != HEADER_BYTES + frames * width * itemsize:
            raise _Corrupt(f"{len(data)} bytes for a ({frames}, {width}) {name} entry")
        if ident != _identity(member_key, clip):
            raise _Corrupt("the entry belongs to another key (moved or copied file)")
        view = memoryview(data)
        digest = hashlib.sha256(view[:_CHECKED])
        digest.update(view[HEADER_BYTES:])
        if digest.digest() != checksum:
            raise _Corrupt("checksum mismatch")
        array = np.frombuffer(data, dtype=stored, count=frames * width, offset=HEADER_BYTES).reshape(frames, width)
        if not array.dtype.isnative:
            array = array.astype(array.dtype.newbyteorder("="))
        tensor = torch.from_numpy(array)
        return tensor.view(torch.bfloat16) if name == "bfloat16" else tensor

    # -- the cache --------------------------------------------------------------------------------------------

    def get(self, member_key: str, clip: str) -> "Optional[torch.Tensor]":
        """The cached ``(frames, width)`` tensor (float32 unless another dtype was stored), on the CPU, or None.

        None is a miss: no entry, or a corrupt, truncated or unreadable one,
        which is deleted and counted in ``stats.corrupt`` (never returned). A hit
        marks the entry as just used (LRU).
        """
        path = str(self.path(member_key, clip))
        inode: Optional[Tuple[int, int]] = None
        try:
            with open(path, "rb") as handle:
                st = os.fstat(handle.fileno())
                inode = (st.st_dev, st.st_ino)
                data = bytearray(st.st_size)
                read = handle.readinto(data)
            if read != len(data):
                raise _Corrupt(f"short read: {read} of {len(data)} bytes")
            tensor = self._decode(data, member_key, clip)
        except FileNotFoundError:
            self._stats.misses += 1
            return None
        except (OSError, _Corrupt):
            self._discard(path, inode)
            return None
        self._stats.hits += 1
        try:
            now = self._tick()
            os.utime(path, ns=(now, now))
        except OSError:
            pass  # read-only cache or replaced meanwhile: LRU order is best effort
        return tensor

    def _discard(self, path: str, inode: Optional[Tuple[int, int]]) -> None:
        """Count a corrupt entry as a miss and delete it, unless another process replaced it meanwhile."""
        self._stats.misses += 1
        self._stats.corrupt += 1
        try:
            st = os.stat(path)
        except OSError:
            return
        if inode is None:  # could not even be opened: remove whatever is there
            inode = (st.st_dev, st.st_ino)
        if _unlink(path, inode) and self._total is not None:
            self._total -= st.st_size

    def put(self, member_key: str, clip: str, features: "torch.Tensor") -> None:
        """Store ``features``, a ``(frames, width)`` float32 (or float16/bfloat16) tensor on any device.

        Atomic (temporary file in the entry's folder, then ``os.replace``); a
        present entry is replaced. Then, if the cache is bounded and over its
        bound, least recently used entries are evicted down to 95 % of it (the
        entry just written included, if it alone exceeds the bound). An
        ``OSError`` (disk full, read-only folder...) is swallowed and counted in
        ``stats.write_errors``: the cache never breaks a run. A tensor of
        another rank or dtype raises :class:`HearGuraError` (a caller bug).
        """
        target = self.path(member_key, clip)
        head, payload, payload_bytes = self._encode(member_key, clip, features)
        size = len(head) + payload_bytes
        try:
            try:
                old = os.stat(target).st_size
            except FileNotFoundError:
                old = 0
            self._write_atomically(target, [head, payload], self._tick())
        except OSError:
            self._stats.write_errors += 1
            return
        self._stats.written += 1
        self._stats.written_bytes += size
        if self.max_bytes is None:
            if self._total is not None:
                self._total += size - old
            return
        if self._total is None:
            self._total = sum(e.bytes for e in _scan(self.root)[0])
        else:
            self._total += size - old
        if self._total > self.max_bytes:
            self._stats.evicted += self._evict(int(self.max_bytes * LOW_WATER))

    def _evict(self, target_bytes: int) -> int:
        """Rescan, then remove least recently used entries until the total is at most ``target_bytes``."""
        entries = _scan(self.root)[0]
        entries.sort(key=lambda e: (e.used_ns, e.path))
        total = sum(e.bytes for e in entries)
        removed = 0
        for entry in entries:
            if total <= target_bytes:
                break
            if _unlink(entry.path, entry.inode):
                removed += 1
            total -= entry.bytes  # gone either way (or replaced by a fresher entry, which we keep)
        self._total = total
        return removed

    @property
    def stats(self) -> CacheStats:
        """This object's counters (hits, misses, corrupt, written, written_bytes, evicted, write_errors)."""
        return self._stats

    def describe_member(self, member_key: str, description: Mapping[str, Any]) -> None:
        """Record a readable identity for ``member_key`` (kind, checkpoint, options, hop, layers), shown by ``info``.

        Written once (atomically) to ``DIR/<member_key>/member.json``, rewritten
        only if it changed; errors are swallowed like ``put``'s. The member pass
        calls this per batch: a description this object already saw or wrote is
        not read again.
        """
        path = self.root / _check_key(member_key) / MEMBER_INFO
        text = json.dumps(dict(description), indent=2, sort_keys=True, default=str) + "\n"
        if self._described.get(member_key) == text:
            return
        try:
            if path.read_text() == text:
                self._described[member_key] = text
                return
        except (OSError, ValueError):
            pass
        try:
            self._write_atomically(path, [text.encode()], None)
        except OSError:
            self._stats.write_errors += 1
        else:
            self._described[member_key] = text

    def info(self) -> Dict[str, Any]:
        """What is in the cache now (one scan of the folder).

        Keys: ``root``, ``format``, ``max_bytes`` (None: unbounded), ``entries``,
        ``bytes``, ``oldest_use`` / ``newest_use`` (seconds since the epoch, None
        when empty), ``temp_files`` (leftover or in-flight temporary files), and
        ``members``: member key -> ``entries``, ``bytes``, ``oldest_use``,
        ``newest_use``, ``description`` (its ``describe_member`` record or None).
        """
        entries, temps = _scan(self.root)
        members: Dict[str, Dict[str, Any]] = {}
        for entry in entries:
            used = entry.used_ns / 1e9
            m = members.setdefault(entry.member_key, {"entries": 0, "bytes": 0, "oldest_use": used,
                                                      "newest_use": used, "description": None})
            m["entries"] += 1
            m["bytes"] += entry.bytes
            m["oldest_use"] = min(m["oldest_use"], used)
            m["newest_use"] = max(m["newest_use"], used)
        for key, m in members.items():
            try:
                m["description"] = json.loads((self.root / key / MEMBER_INFO).read_text())
            except (OSError, ValueError):
                pass
        self._total = sum(e.bytes for e in entries)
        return {
            "root": str(self.root), "format": FORMAT_VERSION, "max_bytes": self.max_bytes,
            "entries": len(entries), "bytes": self._total,
            "oldest_use": min((m["oldest_use"] for m in members.values()), default=None),
            "newest_use": max((m["newest_use"] for m in members.values()), default=None),
            "temp_files": len(temps), "members": dict(sorted(members.items())),
        }

    def summary(self) -> str:
        """One line for the end of a run: this run's hits, misses, writes, evictions, and the cache's size now."""
        s, now = self._stats, self.info()
        rate = f" ({100 * s.hit_rate:.1f} % hit rate)" if s.hit_rate is not None else ""
        parts = [f"{_count(s.hits, 'hit', 'hits')}, {_count(s.misses, 'miss', 'misses')}{rate}"]
        if s.corrupt:
            parts.append(f"{_count(s.corrupt, 'corrupt entry', 'corrupt entries')} recomputed")
        parts.append(f"{format_size(s.written_bytes)} written")
        if s.write_errors:
            parts.append(f"{_count(s.write_errors, 'write error', 'write errors')} (not cached)")
        parts.append(f"{s.evicted:,} evicted")
        bound = "unbounded" if self.max_bytes is None else f"bound {format_size(self.max_bytes)}"
        return (f"feature cache {self.root}: {', '.join(parts)}; "
                f"{format_size(now['bytes'])} in {_count(now['entries'], 'entry', 'entries')} ({bound})")

    def prune(self, max_bytes: Optional[int] = None, member_key: Optional[str] = None) -> int:
        """Remove entries; returns how many.

        With ``member_key``: every entry of that member (and its folder). With
        ``max_bytes`` (or, when neither is given, the cache's bound): least
        recently used entries until the total is at most ``max_bytes`` (0
        empties the cache). Both may be given. Also removes temporary files
        older than :data:`STALE_TEMP_SECONDS` and empty folders.
        """
        if max_bytes is not None and (not isinstance(max_bytes, int) or max_bytes < 0):
            raise HearGuraError(f"prune's max_bytes must be a number of bytes >= 0, got {max_bytes!r}")
        removed = 0
        if member_key is not None:
            for entry in _scan(self.root, _check_key(member_key))[0]:
                removed += _unlink(entry.path, entry.inode)
            try:
                (self.root / member_key / MEMBER_INFO).unlink()
            except OSError:
                pass
        bound = max_bytes if max_bytes is not None or member_key is not None else self.max_bytes
        if bound is not None:
            removed += self._evict(bound)
        stale = time.time() - STALE_TEMP_SECONDS
        for path, mtime in _scan(self.root)[1]:
            if mtime < stale:
                _unlink(path)
        self._remove_empty_folders()
        self._stats.evicted += removed
        self._total = None
        return removed

    def _remove_empty_folders(self) -> None:
        for member in _scandir(str(self.root)):
            if not (_is_dir(member) and _KEY.fullmatch(member.name)):
                continue
            for shard in _scandir(member.path):
                if _is_dir(shard) and _SHARD.fullmatch(shard.name):
                    try:
                        os.rmdir(shard.path)  # fails (kept) unless empty
                    except OSError:
                        pass
            if {e.name for e in _scandir(member.path)} <= {MEMBER_INFO}:  # no entries left: drop its record too
                _unlink(os.path.join(member.path, MEMBER_INFO))
                try:
                    os.rmdir(member.path)
                except OSError:
                    pass


# -- hear-gura cache info | prune ----------------------------------------------------------------------------------


def _when(seconds: Optional[float]) -> str:
    return "-" if seconds is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


def _describe(description: Any) -> str:
    if isinstance(description, dict):
        return " ".join(f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in description.items())
    return "" if description is None else str(description)


def info_text(info: Mapping[str, Any]) -> str:
    """``hear-gura cache info``'s readable report of :meth:`FeatureCache.info`."""
    bound = "unbounded" if info["max_bytes"] is None else f"bound {format_size(info['max_bytes'])}"
    lines = [f"feature cache {info['root']}: {format_size(info['bytes'])} in "
             f"{_count(info['entries'], 'entry', 'entries')} ({bound})"]
    if info["entries"]:
        lines.append(f"least recently used {_when(info['oldest_use'])}, most recently {_when(info['newest_use'])}")
    if info["temp_files"]:
        lines.append(f"{info['temp_files']:,} temporary file(s): writes in progress, or leftovers of killed runs "
                     f"(prune removes those older than {STALE_TEMP_SECONDS // 3600} h)")
    if info["members"]:
        rows = [["member key", "entries", "size", "last used", "identity"]]
        for key, m in info["members"].items():
            rows.append([key, f"{m['entries']:,}", format_size(m["bytes"]), _when(m["newest_use"]),
                         _describe(m["description"])])
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        for r in rows:
            cells = [r[0].ljust(widths[0]), r[1].rjust(widths[1]), r[2].rjust(widths[2]), r[3].ljust(widths[3]), r[4]]
            lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def cmd_cache_info(args: argparse.Namespace) -> None:
    """``hear-gura cache info DIR [--json]``."""
    info = FeatureCache.open_existing(args.dir).info()
    print(json.dumps(info, indent=2) if args.json else info_text(info))


def cmd_cache_prune(args: argparse.Namespace) -> None:
    """``hear-gura cache prune DIR [--max-size SIZE] [--member KEY] [--all]``."""
    if args.all and (args.max_size is not None or args.member is not None):
        raise HearGuraError("--all removes every entry: do not combine it with --max-size or --member")
    max_bytes = 0 if args.all else (parse_size(args.max_size, "--max-size") if args.max_size is not None else None)
    if args.member is not None:
        _check_key(args.member)
    cache = FeatureCache.open_existing(args.dir)
    before = cache.info()
    if args.member is not None and args.member not in before["members"]:
        known = ", ".join(before["members"]) or "none"
        raise HearGuraError(f"{cache.root} has no entries for member key {args.member}; member keys: {known} "
                            "(hear-gura cache info lists them)")
    if max_bytes is None and args.member is None and cache.max_bytes is None:
        raise HearGuraError(f"{cache.root} records no size bound: give --max-size SIZE (e.g. 10GB), --member KEY "
                            "or --all")
    removed = cache.prune(max_bytes, args.member)
    after = cache.info()
    if args.all:
        what = "every entry"
    else:
        parts = [f"every entry of member {args.member}"] if args.member is not None else []
        if max_bytes is not None or args.member is None:
            bound = max_bytes if max_bytes is not None else cache.max_bytes
            parts.append(f"least recently used entries down to {format_size(bound)}")
        what = " and ".join(parts)
    print(f"pruned {cache.root} ({what}): removed {_count(removed, 'entry', 'entries')} "
          f"({format_size(before['bytes'] - after['bytes'])}); {format_size(after['bytes'])} in "
          f"{_count(after['entries'], 'entry', 'entries')} left")


def register_cache_commands(subparsers: "argparse._SubParsersAction") -> None:
    """Add ``cache info`` and ``cache prune`` to ``hear-gura``'s subparsers (``build_parser`` calls this)."""
    p = subparsers.add_parser("cache", help="inspect or prune a --feature-cache folder",
                              description="Inspect or prune a feature cache (the folder given to --feature-cache).")
    sub = p.add_subparsers(dest="cache_command", required=True)
    q = sub.add_parser("info", help="size, entries and last use, per member key")
    q.add_argument("dir", help="the feature cache folder")
    q.add_argument("--json", action="store_true", help="print the figures as JSON")
    q.set_defaults(func=cmd_cache_info)
    q = sub.add_parser("prune", help="remove least recently used entries, or one member's, or all",
                       description="Remove least recently used entries down to --max-size (default: the bound the "
                                   "cache was last used with), every entry of one member key, or everything.")
    q.add_argument("dir", help="the feature cache folder")
    q.add_argument("--max-size", help="keep at most this much, least recently used first out: 500MB, 10GB, 1.5TB, "
                                      "2GiB or bytes")
    q.add_argument("--member", help="remove every entry of this member key (hear-gura cache info lists them)")
    q.add_argument("--all", action="store_true", help="remove every entry")
    q.set_defaults(func=cmd_cache_prune)


__all__ = ["CacheStats", "DEFAULT_MAX_BYTES", "FeatureCache", "clip_key", "format_size", "info_text", "parse_size",
           "register_cache_commands"]
