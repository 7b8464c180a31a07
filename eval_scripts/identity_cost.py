"""What it costs to check and key a task suite before ``hear-gura evaluate`` embeds anything.

    python eval_scripts/identity_cost.py TASKS_DIR [--json eval_scripts/identity-cost.json]

Hashes every task folder of TASKS_DIR (metadata, label files and the bytes of
every 16 kHz clip) three times, with a fresh, empty digest cache:

- ``cold``: the page cache dropped first where the OS allows it (Linux, root:
  ``/proc/sys/vm/drop_caches``), so clips are read from disk;
- ``first``: every clip hashed (clips in the page cache);
- ``remembered``: a second run, answered from the digest cache (one ``stat``
  and one lookup per clip): what every later ``hear-gura evaluate`` pays.

and times :func:`hear_gura.harness.preflight.preflight` (one wav header read per
clip) once, clips in the page cache. Each run is a fresh interpreter, as each
``hear-gura evaluate`` is.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def drop_page_cache() -> bool:
    """Ask Linux to drop clean pages (root only); True when it did."""
    try:
        subprocess.run(["sync"], check=False)
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def measure(tasks_dir: Path) -> dict:
    folders = sorted(p for p in tasks_dir.iterdir() if (p / "task_metadata.json").is_file())
    clips = [c for f in folders for c in (f / "16000").rglob("*") if c.is_file()]
    total_bytes = sum(c.stat().st_size for c in clips)
    runs = {}
    with tempfile.TemporaryDirectory() as cache:
        os.environ["HEAR_GURA_CACHE_DIR"] = cache
        for name in ("cold", "first", "remembered"):
            if name != "remembered":
                for leftover in Path(cache).glob("*"):
                    leftover.unlink()
                import hear_gura.identity as identity

                identity._MEMOS.clear()
            dropped = drop_page_cache() if name == "cold" else None
            # a fresh interpreter per run, as each hear-gura evaluate is
            code = ("import sys, time; from pathlib import Path; from hear_gura.identity import task_digest; "
                    "t = time.perf_counter(); [task_digest(Path(p)) for p in sys.argv[1:]]; "
                    "print(time.perf_counter() - t)")
            out = subprocess.run([sys.executable, "-c", code, *map(str, folders)], capture_output=True, text=True,
                                 check=True, env=dict(os.environ))
            runs[name] = {"seconds": round(float(out.stdout.strip()), 2)}
            if dropped is not None:
                runs[name]["page_cache_dropped"] = dropped
        code = ("import sys, time; from pathlib import Path; from hear_gura.harness.preflight import preflight; "
                "from hear_gura.harness.scores import discover_tasks; tasks = discover_tasks(sys.argv[1]); "
                "t = time.perf_counter(); preflight(sys.argv[1], tasks, echo=lambda s: None); "
                "print(time.perf_counter() - t)")
        out = subprocess.run([sys.executable, "-c", code, str(tasks_dir)], capture_output=True, text=True,
                             check=True, env=dict(os.environ))
        preflight_seconds = round(float(out.stdout.strip()), 2)
    return {
        "what": "hear_gura.identity.task_digest over every task of the suite (metadata, labels, every clip's bytes)",
        "preflight_seconds": preflight_seconds,
        "tasks_dir": str(tasks_dir), "tasks": len(folders), "clips": len(clips),
        "audio_bytes": total_bytes, "runs": runs,
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                    "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()]},
        "command": " ".join(["python", "eval_scripts/identity_cost.py", *sys.argv[1:]]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tasks_dir", type=Path, help="a folder of HEAR task folders (e.g. hear-gura tasks build --size full)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    result = measure(args.tasks_dir)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
