"""CREPE's ``batch_frames``: speed and peak memory per value, and proof the output does not change.

    python eval_scripts/crepe_batch.py [--seconds 26] [--values 512,256,128,64,32] [--json FILE]

Each value runs in its own process (so its peak RSS is its own) on the same
random clip, CREPE full with its real weights, timestamp hop 800 samples
(50 ms, GURA's). Prints ms per frame (best of two runs), the peak RSS above the loaded model, and
the max abs diff of the output against the first value's.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path


def worker(batch_frames: int, seconds: float, save: str) -> None:
    import torch

    from hear_gura.layers import parse_layer_choice
    from hear_gura.manifest import Manifest
    from hear_gura.members.base import MemberSpec, build_member

    torch.manual_seed(0)
    audio = torch.rand(1, int(seconds * 16000)) * 2 - 1
    member = build_member(MemberSpec("crepe", "crepe", {"batch_frames": batch_frames}), Manifest(), False)
    choice = parse_layer_choice("last", 1)
    with torch.no_grad():
        member(audio[:, :16000], choice, hop=800)  # warm-up
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        elapsed = float("inf")
        for _ in range(2):  # best of two
            start = time.perf_counter()
            out = member(audio, choice, hop=800)
            elapsed = min(elapsed, time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    torch.save(out, save)
    print("RESULT " + json.dumps({"ms_per_frame": 1000 * elapsed / out.shape[1], "frames": out.shape[1],
                                  "peak_above_model_mb": peak - base}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=26.0, help="clip length (default 26 s = 521 frames)")
    parser.add_argument("--values", default="512,256,128,64,32", help="batch_frames values to compare")
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--save", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.seconds, args.save)

    import torch

    figures, reference = {}, None
    out_dir = Path("bench_checkpoints") / "outputs"
    out_dir.mkdir(parents=True, exist_ok=True)
    for value in [int(v) for v in args.values.split(",")]:
        save = out_dir / f"crepe_batch_{value}.pt"
        result = subprocess.run([sys.executable, __file__, "--worker", str(value), "--seconds", str(args.seconds),
                                 "--save", str(save)], capture_output=True, text=True)
        lines = [l for l in result.stdout.splitlines() if l.startswith("RESULT ")]
        if not lines:
            sys.exit(f"batch_frames={value} failed: {result.stderr.strip()[-500:]}")
        entry = json.loads(lines[-1][7:])
        out = torch.load(save)
        reference = out if reference is None else reference
        entry["max_abs_diff"] = (out - reference).abs().max().item()
        figures[f"crepe.batch_frames{value}"] = entry
        print(f"batch_frames={value:4d}: {entry['ms_per_frame']:.1f} ms/frame, "
              f"peak RSS +{entry['peak_above_model_mb']:.0f} MB, max abs diff {entry['max_abs_diff']:.1e}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
