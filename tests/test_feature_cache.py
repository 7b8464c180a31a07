"""The persistent feature cache: bit-exact round trips, corruption never trusted, LRU bound, sharing, CLI."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import signal
import struct
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict

import pytest
import torch

from conftest import make_audio
from hear_gura.errors import HearGuraError
from hear_gura.feature_cache import (
    HEADER_BYTES, MARKER, FeatureCache, clip_key, format_size, parse_size, register_cache_commands,
)

KEY_A = "a" * 16 + "0123456789abcdef"
KEY_B = "b" * 40


def features(frames: int, width: int, seed: int) -> torch.Tensor:
    return torch.randn(frames, width, generator=torch.Generator().manual_seed(seed))


def clip(seed: int, seconds: float = 0.25) -> str:
    return clip_key(make_audio(seconds, seed=seed)[0])


def entry_bytes(frames: int, width: int) -> int:
    return HEADER_BYTES + 4 * frames * width


def in_child(fn: Callable[[], Dict[str, Any]]) -> Dict[str, Any]:
    """Run ``fn`` in a forked process (as another torchrun rank would be) and return its JSON-able result."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            os.close(read)
            result = fn()
        except BaseException as err:  # report, never return into pytest
            result, code = {"error": repr(err)}, 1
        with os.fdopen(write, "w") as handle:
            json.dump(result, handle)
        os._exit(code)
    os.close(write)
    with os.fdopen(read) as handle:
        text = handle.read()
    _, status = os.waitpid(pid, 0)
    result = json.loads(text)
    assert os.WEXITSTATUS(status) == 0, result
    return result


def test_clip_key_is_the_documented_digest_of_content_and_length():
    samples = make_audio(0.5, seed=3)[0]
    expected = hashlib.sha256(b"hear-gura clip float32 v1\0" + struct.pack("<Q", samples.numel())
                              + samples.numpy().astype("<f4").tobytes()).hexdigest()
    assert clip_key(samples) == expected and len(expected) == 64
    assert clip_key(samples.clone()) == expected
    assert clip_key(torch.cat([samples, torch.zeros(1)])) != expected  # padding is content
    flipped = samples.clone()
    flipped[100] = torch.nextafter(flipped[100], torch.tensor(2.0))
    assert clip_key(flipped) != expected
    for bad in (samples[None], samples.double(), samples.numpy()):
        with pytest.raises(HearGuraError, match="1-D float32 tensor"):
            clip_key(bad)


def test_round_trip_is_bit_identical_in_every_stored_dtype(tmp_path):
    cache = FeatureCache(tmp_path / "cache")
    special = features(7, 5, 0)
    special[0, :4] = torch.tensor([float("nan"), float("inf"), -0.0, 1e-45])
    cases = {"f32": special, "f16": features(9, 3, 1).half(), "bf16": features(9, 3, 2).bfloat16(),
             "empty": torch.zeros(0, 1024), "wide": features(3, 2048, 3)}
    for i, (name, tensor) in enumerate(cases.items()):
        key = clip(i)
        assert cache.get(KEY_A, key) is None
        cache.put(KEY_A, key, tensor)
        assert (tmp_path / "cache" / KEY_A / key[:2] / f"{key}.feat").is_file()
        back = cache.get(KEY_A, key)
        assert back.dtype == tensor.dtype and back.shape == tensor.shape, name
        bits = torch.int16 if tensor.element_size() == 2 else torch.int32
        assert torch.equal(back.view(bits), tensor.view(bits)), name
    assert cache.get(KEY_B, clip(0)) is None  # same clip, another member
    assert (cache.stats.hits, cache.stats.misses, cache.stats.written) == (5, 6, 5)
    assert cache.stats.written_bytes == sum(HEADER_BYTES + t.numel() * t.element_size() for t in cases.values())


def test_summary_counts_hits_misses_and_size(tmp_path):
    cache = FeatureCache(tmp_path, max_bytes=50 * 10**9)
    keys = [clip(i) for i in range(4)]
    for key in keys[:3]:
        assert cache.get(KEY_A, key) is None
        cache.put(KEY_A, key, features(500, 1024, 0))
    for key in keys:
        cache.get(KEY_A, key)
    s = cache.stats
    assert (s.hits, s.misses, s.corrupt, s.written, s.evicted, s.write_errors) == (3, 4, 0, 3, 0, 0)
    assert s.hit_rate == pytest.approx(3 / 7)
    size = format_size(3 * entry_bytes(500, 1024))
    assert cache.summary() == (f"feature cache {tmp_path}: 3 hits, 4 misses (42.9 % hit rate), {size} written, "
                               f"0 evicted; {size} in 3 entries (bound 50 GB)")


def _truncate(raw: bytes) -> bytes:
    return raw[:-1]


def _flip_payload(raw: bytes) -> bytes:
    return raw[:-10] + bytes([raw[-10] ^ 0x01]) + raw[-9:]


def _bad_magic(raw: bytes) -> bytes:
    return b"NOTACACH" + raw[8:]


def _bad_version(raw: bytes) -> bytes:
    return raw[:8] + struct.pack("<H", 99) + raw[10:]


def _swap_shape(raw: bytes) -> bytes:  # (6, 4) -> (4, 6): same length, only the header checksum sees it
    return raw[:16] + struct.pack("<QQ", 4, 6) + raw[32:]


CORRUPTIONS = {
    "truncated": _truncate, "flipped payload byte": _flip_payload, "bad magic": _bad_magic,
    "bad version": _bad_version, "swapped shape": _swap_shape, "appended bytes": lambda raw: raw + b"\0" * 4,
    "header only": lambda raw: raw[:HEADER_BYTES], "shorter than header": lambda raw: raw[:40],
    "empty": lambda raw: b"",
}


@pytest.mark.parametrize("damage", list(CORRUPTIONS))
def test_corrupt_entry_is_deleted_counted_and_recomputed(tmp_path, damage):
    cache = FeatureCache(tmp_path)
    key, value = clip(0), features(6, 4, 0)
    cache.put(KEY_A, key, value)
    path = cache.path(KEY_A, key)
    path.write_bytes(CORRUPTIONS[damage](path.read_bytes()))
    assert cache.get(KEY_A, key) is None
    assert not path.exists()
    assert (cache.stats.corrupt, cache.stats.misses, cache.stats.hits) == (1, 1, 0)
    cache.put(KEY_A, key, value)  # the recomputed value
    assert torch.equal(cache.get(KEY_A, key), value)
    assert "1 corrupt entry recomputed" in cache.summary()


def test_entry_copied_to_another_key_is_not_trusted(tmp_path):
    cache = FeatureCache(tmp_path)
    first, second = clip(0), clip(1)
    cache.put(KEY_A, first, features(6, 4, 0))
    moved = cache.path(KEY_B, second)
    moved.parent.mkdir(parents=True)
    shutil.copy(cache.path(KEY_A, first), moved)
    assert cache.get(KEY_B, second) is None and cache.stats.corrupt == 1 and not moved.exists()
    assert cache.get(KEY_A, first) is not None


def test_lru_eviction_keeps_the_recently_used(tmp_path):
    size = entry_bytes(10, 8)
    cache = FeatureCache(tmp_path, max_bytes=3 * size + size // 2)
    a, b, c, d, e = (clip(i) for i in range(5))
    for key in (a, b, c):
        cache.put(KEY_A, key, features(10, 8, 0))
    assert cache.get(KEY_A, a) is not None  # a is now more recent than b and c
    cache.put(KEY_A, d, features(10, 8, 0))  # 4 entries > 3.5: the least recently used (b) goes
    assert [cache.path(KEY_A, k).exists() for k in (a, b, c, d)] == [True, False, True, True]
    cache.put(KEY_A, e, features(10, 8, 0))  # then c
    assert [cache.path(KEY_A, k).exists() for k in (a, c, d, e)] == [True, False, True, True]
    assert cache.stats.evicted == 2
    cache.put(KEY_B, a, features(50, 8, 0))  # alone larger than the bound: evicts everything, itself included
    assert cache.info()["entries"] == 0 and cache.get(KEY_B, a) is None


def test_prune_by_size_and_by_member(tmp_path):
    size = entry_bytes(10, 8)
    cache = FeatureCache(tmp_path)
    keys = [clip(i) for i in range(4)]
    for member in (KEY_A, KEY_B):
        for key in keys:
            cache.put(member, key, features(10, 8, 0))
    cache.describe_member(KEY_A, {"kind": "hf"})
    assert cache.prune() == 0  # unbounded: nothing to do
    assert cache.prune(max_bytes=6 * size) == 2  # the oldest two: KEY_A's first two
    assert [cache.path(KEY_A, k).exists() for k in keys] == [False, False, True, True]
    assert cache.prune(member_key=KEY_B) == 4
    assert not (tmp_path / KEY_B).exists()
    info = cache.info()
    assert (info["entries"], info["bytes"], list(info["members"])) == (2, 2 * size, [KEY_A])
    assert info["members"][KEY_A]["description"] == {"kind": "hf"}
    assert cache.prune(max_bytes=0) == 2 and not (tmp_path / KEY_A).exists()
    assert (tmp_path / MARKER).exists()


def test_prune_removes_stale_temporary_files_only(tmp_path):
    cache = FeatureCache(tmp_path)
    cache.put(KEY_A, clip(0), features(2, 2, 0))
    folder = cache.path(KEY_A, clip(0)).parent
    stale, fresh = folder / ".x.feat.abc.tmp", folder / ".y.feat.def.tmp"
    stale.write_bytes(b"partial")
    fresh.write_bytes(b"in flight")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    assert cache.info()["temp_files"] == 2
    cache.prune(max_bytes=10**9)
    assert not stale.exists() and fresh.exists() and cache.info()["entries"] == 1


def test_two_caches_on_one_folder_see_each_others_entries(tmp_path):
    size = entry_bytes(10, 8)
    bound = 4 * size + size // 2
    first, second = FeatureCache(tmp_path, max_bytes=bound), FeatureCache(tmp_path, max_bytes=bound)
    keys = [clip(i) for i in range(5)]
    first.put(KEY_A, keys[0], features(10, 8, 0))
    assert torch.equal(second.get(KEY_A, keys[0]), features(10, 8, 0))
    second.put(KEY_A, keys[1], features(10, 8, 1))
    assert torch.equal(first.get(KEY_A, keys[1]), features(10, 8, 1))
    for key in keys[2:]:  # the bound counts both objects' entries: the least recently used goes
        second.put(KEY_A, key, features(10, 8, 2))
    assert [first.path(KEY_A, k).exists() for k in keys] == [False, True, True, True, True]


def test_concurrent_writers_and_readers_never_see_a_broken_entry(tmp_path):
    values = {clip(i): features(32, 16, i) for i in range(8)}
    root = tmp_path / "shared"
    FeatureCache(root)

    def writer() -> Dict[str, Any]:
        cache = FeatureCache(root, max_bytes=5 * entry_bytes(32, 16))
        for step in range(150):
            key = list(values)[step % len(values)]
            got = cache.get(KEY_A, key)
            if got is not None and not torch.equal(got, values[key]):
                return {"wrong": key}
            cache.put(KEY_A, key, values[key])
        return {"corrupt": cache.stats.corrupt, "evicted": cache.stats.evicted, "errors": cache.stats.write_errors}

    read, write = os.pipe()
    children = []
    for _ in range(2):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - a writer process
            os.close(read)
            result = {"error": "crashed"}
            try:
                result = writer()
            finally:
                os.write(write, (json.dumps(result) + "\n").encode())
                os._exit(0)
        children.append(pid)
    os.close(write)
    reader, running = FeatureCache(root), set(children)
    while running:
        for key, value in values.items():
            got = reader.get(KEY_A, key)
            assert got is None or torch.equal(got, value)
        running = {pid for pid in running if os.waitpid(pid, os.WNOHANG)[0] == 0}
    with os.fdopen(read) as handle:
        results = [json.loads(line) for line in handle]
    assert len(results) == 2 and all(r.get("corrupt") == 0 and r.get("errors") == 0 for r in results), results
    assert sum(r["evicted"] for r in results) > 0 and reader.stats.corrupt == 0
    assert not list(root.rglob("*.tmp"))


def _drop_privileges() -> None:
    if os.geteuid() == 0:  # root ignores file permissions: act as an ordinary user
        os.setgid(65534)
        os.setuid(65534)


def test_read_only_cache_serves_hits_and_put_does_not_raise():
    base = Path(tempfile.mkdtemp(prefix="hear-gura-ro-"))  # not under pytest's owner-only folders
    try:
        os.chmod(base, 0o755)
        cache = FeatureCache(base / "cache")
        kept, new = clip(0), clip(1)
        cache.put(KEY_A, kept, features(4, 4, 0))
        for path in [base / "cache", *(base / "cache").rglob("*")]:
            os.chmod(path, 0o555 if path.is_dir() else 0o444)

        def use_read_only() -> Dict[str, Any]:
            _drop_privileges()
            ro = FeatureCache(base / "cache")
            hit = ro.get(KEY_A, kept)
            ro.put(KEY_A, new, features(4, 4, 1))
            ro.put(KEY_B, new, features(4, 4, 1))
            return {"hit": hit is not None and torch.equal(hit, features(4, 4, 0)),
                    "errors": ro.stats.write_errors, "summary": ro.summary()}

        result = in_child(use_read_only)
        assert result["hit"] and result["errors"] == 2
        assert "2 write errors (not cached)" in result["summary"]
        assert not list((base / "cache").rglob("*.tmp")) and not cache.path(KEY_A, new).exists()
    finally:
        for folder in [base, *(p for p in base.rglob("*") if p.is_dir())]:
            os.chmod(folder, 0o755)
        shutil.rmtree(base)


def test_a_failing_write_leaves_the_old_entry_and_no_temporary_file(tmp_path):
    cache = FeatureCache(tmp_path)
    key, old = clip(0), features(4, 4, 0)
    cache.put(KEY_A, key, old)

    def write_past_the_file_size_limit() -> Dict[str, Any]:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes then fail with EFBIG, as on a full disk
        resource.setrlimit(resource.RLIMIT_FSIZE, (10_000, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
        limited = FeatureCache(tmp_path)
        limited.put(KEY_A, key, features(100, 100, 1))  # 40 KB
        return {"errors": limited.stats.write_errors, "written": limited.stats.written}

    assert in_child(write_past_the_file_size_limit) == {"errors": 1, "written": 0}
    assert torch.equal(cache.get(KEY_A, key), old)
    assert not list(tmp_path.rglob("*.tmp"))


def test_a_folder_that_is_not_a_cache_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(HearGuraError, match="is not empty and is not a hear-gura feature cache"):
        FeatureCache(tmp_path)
    with pytest.raises(HearGuraError, match="is not a hear-gura feature cache"):
        FeatureCache.open_existing(tmp_path)
    with pytest.raises(HearGuraError, match="does not exist"):
        FeatureCache.open_existing(tmp_path / "missing")
    cache = FeatureCache(tmp_path / "new", max_bytes=10)
    with pytest.raises(HearGuraError, match="member key must be 16-64 lowercase hex"):
        cache.get("../../etc", clip(0))
    with pytest.raises(HearGuraError, match="clip key must be lowercase hex"):
        cache.put(KEY_A, "x/y", features(2, 2, 0))
    with pytest.raises(HearGuraError, match=r"\(frames, width\) float32"):
        cache.put(KEY_A, clip(0), features(2, 2, 0).double())
    assert FeatureCache.open_existing(tmp_path / "new").max_bytes == 10  # the bound is recorded


@pytest.mark.parametrize("text, expected", [
    ("500MB", 500 * 10**6), ("10GB", 10 * 10**9), ("1.5TB", 1_500_000_000_000), ("123456", 123456),
    ("2GiB", 2 * 2**30), ("10 gb", 10 * 10**9), ("4K", 4000), ("0", 0), ("7b", 7),
])
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["ten", "", "10XB", "-5GB", "1e3", "GB", "nan"])
def test_parse_size_rejects_with_a_clear_message(text):
    with pytest.raises(HearGuraError) as err:
        parse_size(text)
    assert str(err.value) == f"--max-size must be a size such as 10GB, 500MB or 1.5TB (or plain bytes), got {text!r}"


def cache_cli(*argv: str) -> None:
    parser = argparse.ArgumentParser(prog="hear-gura")
    register_cache_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["cache", *argv])
    args.func(args)


def test_cli_info_and_prune(tmp_path, capsys):
    size = entry_bytes(10, 8)
    root = tmp_path / "cache"
    cache = FeatureCache(root, max_bytes=5 * size)
    keys = [clip(i) for i in range(3)]
    for member in (KEY_A, KEY_B):
        for key in keys:
            cache.put(member, key, features(10, 8, 0))
    cache.describe_member(KEY_A, {"kind": "hf", "hop": 320})
    assert cache.info()["entries"] == 4  # the bound (5 entries) evicted down to 95 %

    cache_cli("info", str(root))
    out = capsys.readouterr().out
    assert out.startswith(f"feature cache {root}: {format_size(4 * size)} in 4 entries (bound {format_size(5 * size)})")
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line[:1] in "ab"}
    assert rows[KEY_A][1:3] == ["1", format_size(size).split()[0]] and rows[KEY_A][-2:] == ["hop=320", "kind=hf"]
    assert rows[KEY_B][1] == "3"
    cache_cli("info", str(root), "--json")
    assert json.loads(capsys.readouterr().out)["members"][KEY_B]["entries"] == 3

    cache_cli("prune", str(root), "--max-size", str(2 * size))
    out = capsys.readouterr().out
    assert out == (f"pruned {root} (least recently used entries down to {format_size(2 * size)}): removed 2 entries "
                   f"({format_size(2 * size)}); {format_size(2 * size)} in 2 entries left\n")
    cache_cli("prune", str(root), "--member", KEY_B)
    assert f"(every entry of member {KEY_B}): removed 2 entries" in capsys.readouterr().out
    with pytest.raises(HearGuraError, match=f"no entries for member key {KEY_B}; member keys: none"):
        cache_cli("prune", str(root), "--member", KEY_B)
    cache.put(KEY_A, keys[0], features(10, 8, 0))
    cache_cli("prune", str(root), "--all")
    assert "(every entry): removed 1 entry" in capsys.readouterr().out
    assert FeatureCache.open_existing(root).info()["entries"] == 0


def test_cli_errors(tmp_path):
    (tmp_path / "plain").mkdir()
    with pytest.raises(HearGuraError, match="is not a hear-gura feature cache"):
        cache_cli("info", str(tmp_path / "plain"))
    root = tmp_path / "cache"
    FeatureCache(root)
    with pytest.raises(HearGuraError, match="--max-size must be a size such as 10GB.*got 'ten'"):
        cache_cli("prune", str(root), "--max-size", "ten")
    with pytest.raises(HearGuraError, match="do not combine it with --max-size or --member"):
        cache_cli("prune", str(root), "--all", "--member", KEY_A)
    with pytest.raises(HearGuraError, match="records no size bound: give --max-size"):
        cache_cli("prune", str(root))
    with pytest.raises(SystemExit):  # argparse: a sub-command is required
        cache_cli()
