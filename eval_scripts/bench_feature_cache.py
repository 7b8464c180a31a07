"""Feature cache throughput: ``put`` / ``get`` MB/s for realistic entries, and ``clip_key`` hashing speed.

    python eval_scripts/bench_feature_cache.py [--dir /tmp/x] [--repeats 3] [--json eval_scripts/feature-cache-cpu.json]

Entries: 500 frames x 1024 float32 (2 MB: a 10 s clip of a large SSL member at
a 20 ms hop) and 50 x 2048 (400 KB: a 1 s clip of a CREPE-sized member). For
each, ~128 MB of entries are written to a fresh cache, then read back (reads
hit the page cache: a cold read is bounded by the disk instead), best of
``--repeats``. Also: ``put`` into a full cache bounded at half the written
size (every write evicts), ``info()``'s folder scan, and raw ``write``/``read``
of the same bytes without the header, checksum and rename, to show what the
cache adds. The machine's load average is recorded before and after: these
figures are only comparable at a similar load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from hear_gura.feature_cache import FeatureCache, clip_key

SHAPES = {"500x1024": (500, 1024), "50x2048": (50, 2048)}
TARGET_BYTES = 128 * 10**6
MEMBER = "0123456789abcdef" * 2


def best_rate(seconds: list, total_bytes: int) -> float:
    return total_bytes / min(seconds) / 1e6


def bench_shape(root: Path, frames: int, width: int, repeats: int) -> dict:
    entry = torch.randn(frames, width, generator=torch.Generator().manual_seed(0))
    count = max(8, TARGET_BYTES // entry.numel() // 4)
    clips = [f"{i:064x}" for i in range(count)]
    payload = entry.numel() * 4 * count
    puts, gets, raw_w, raw_r, bounded, scans = [], [], [], [], [], []
    for rep in range(repeats):
        folder = root / f"rep{rep}"
        cache = FeatureCache(folder)
        start = time.perf_counter()
        for clip in clips:
            cache.put(MEMBER, clip, entry)
        puts.append(time.perf_counter() - start)
        start = time.perf_counter()
        for clip in clips:
            assert cache.get(MEMBER, clip) is not None
        gets.append(time.perf_counter() - start)
        start = time.perf_counter()
        info = cache.info()
        scans.append(time.perf_counter() - start)
        assert info["entries"] == count and cache.stats.corrupt == 0
        shutil.rmtree(folder)

        full = FeatureCache(root / f"bounded{rep}", max_bytes=info["bytes"] // 2)
        for clip in clips[: count // 2]:
            full.put(MEMBER, clip, entry)
        start = time.perf_counter()
        for clip in clips[count // 2:]:
            full.put("f" * 32, clip, entry)
        bounded.append(time.perf_counter() - start)
        evicted = full.stats.evicted
        shutil.rmtree(root / f"bounded{rep}")

        raw = root / f"raw{rep}"
        raw.mkdir()
        data = entry.numpy().tobytes()
        start = time.perf_counter()
        for clip in clips:
            (raw / clip).write_bytes(data)
        raw_w.append(time.perf_counter() - start)
        start = time.perf_counter()
        for clip in clips:
            torch.from_numpy(np.frombuffer(bytearray((raw / clip).read_bytes()), dtype="<f4"))
        raw_r.append(time.perf_counter() - start)
        shutil.rmtree(raw)
    half = entry.numel() * 4 * (count - count // 2)
    return {
        "entry_bytes": entry.numel() * 4, "entries": count,
        "put_mb_s": round(best_rate(puts, payload), 1), "get_mb_s": round(best_rate(gets, payload), 1),
        "put_ms_per_entry": round(1000 * min(puts) / count, 3), "get_ms_per_entry": round(1000 * min(gets) / count, 3),
        "put_into_full_cache_mb_s": round(best_rate(bounded, half), 1), "evicted_in_full_cache_run": evicted,
        "info_scan_ms": round(1000 * min(scans), 2),
        "raw_write_mb_s": round(best_rate(raw_w, payload), 1), "raw_read_mb_s": round(best_rate(raw_r, payload), 1),
    }


def bench_clip_key(repeats: int) -> dict:
    figures = {}
    for seconds in (10, 30):
        samples = torch.rand(seconds * 16000, generator=torch.Generator().manual_seed(0)) * 2 - 1
        times = []
        for _ in range(max(3, repeats)):
            start = time.perf_counter()
            for _ in range(20):
                clip_key(samples)
            times.append((time.perf_counter() - start) / 20)
        figures[f"{seconds}s"] = {"ms": round(1000 * min(times), 3),
                                  "mb_s": round(samples.numel() * 4 / min(times) / 1e6, 1)}
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", help="scratch folder (default: a new temporary folder, removed afterwards)")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs (default 3)")
    parser.add_argument("--json", default=str(Path(__file__).with_name("feature-cache-cpu.json")),
                        help="write the figures here (default eval_scripts/feature-cache-cpu.json)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="bench-feature-cache-"))
    root.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    started = time.time()
    try:
        figures = {name: bench_shape(root, *shape, args.repeats) for name, shape in SHAPES.items()}
    finally:
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)
    figures["clip_key"] = bench_clip_key(args.repeats)
    figures["machine"] = {
        "loadavg_before": [round(x, 2) for x in load_before], "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
        "torch": torch.__version__, "folder": str(root), "wall_s": round(time.time() - started, 1),
        "note": "reads hit the page cache (entries just written); best of --repeats; shared machine: see loadavg",
    }
    for name in SHAPES:
        f = figures[name]
        print(f"{name} ({f['entry_bytes'] / 1e6:.1f} MB x {f['entries']}): put {f['put_mb_s']} MB/s "
              f"({f['put_ms_per_entry']} ms), get {f['get_mb_s']} MB/s ({f['get_ms_per_entry']} ms), "
              f"put into a full cache {f['put_into_full_cache_mb_s']} MB/s; raw write {f['raw_write_mb_s']} MB/s, "
              f"raw read {f['raw_read_mb_s']} MB/s; info scan {f['info_scan_ms']} ms")
    print("clip_key: " + ", ".join(f"{k} {v['ms']} ms ({v['mb_s']} MB/s)" for k, v in figures["clip_key"].items()))
    print(f"load average before {figures['machine']['loadavg_before']}, after {figures['machine']['loadavg_after']}")
    Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
