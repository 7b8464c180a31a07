"""How much long-audio windowing changes an ensemble's timestamp embeddings.

    python eval_scripts/windowing_fidelity.py --manifest demo/fixtures/checkpoints.json \\
        [--ensemble fusion_cat] [--seconds 7] [--window 2] [--overlap 0.5] [--json FILE]

Embeds one random clip whole and in ``--window``-second windows overlapping by
``--overlap`` seconds, then prints the max abs diff and the cosine similarity
(min and mean over frames) between the two, and whether the timestamps are
identical. The README's windowing figures are ``eval_scripts/windowing-fidelity.json``, from
``--json`` on the fixtures ``hear-gura fixtures DIR`` writes (seed 0).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", required=True, help="checkpoint manifest (e.g. hear-gura fixtures' output)")
    parser.add_argument("--ensemble", default="fusion_cat")
    parser.add_argument("--seconds", type=float, default=7.0, help="clip length in seconds")
    parser.add_argument("--window", type=float, default=2.0, help="max_window_seconds")
    parser.add_argument("--overlap", type=float, default=0.5, help="window_overlap_seconds")
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()

    import torch

    from hear_gura.api import load_ensemble_model

    generator = torch.Generator().manual_seed(args.seed)
    audio = torch.rand(1, int(args.seconds * 16000), generator=generator) * 2 - 1
    whole_model = load_ensemble_model(args.ensemble, args.manifest)
    windowed_model = load_ensemble_model(args.ensemble, args.manifest, max_window_seconds=args.window,
                                         window_overlap_seconds=args.overlap)
    whole, ts_whole = whole_model.timestamp_embeddings(audio)
    windowed, ts_windowed = windowed_model.timestamp_embeddings(audio)
    cosine = torch.nn.functional.cosine_similarity(whole, windowed, dim=-1)
    figures = {
        "ensemble": args.ensemble, "seconds": args.seconds, "window_s": args.window, "overlap_s": args.overlap,
        "frames": whole.shape[1], "timestamps_identical": bool(torch.equal(ts_whole, ts_windowed)),
        "max_abs_diff": (whole - windowed).abs().max().item(),
        "cosine_min": cosine.min().item(), "cosine_mean": cosine.mean().item(),
        "random_weights": bool(whole_model.random_weights),
    }
    print(f"{args.ensemble}: {args.seconds:g} s clip, {args.window:g} s windows overlapping {args.overlap:g} s, "
          f"{figures['frames']} frames: max abs diff {figures['max_abs_diff']:.3g}, cosine min "
          f"{figures['cosine_min']:.6f} / mean {figures['cosine_mean']:.6f}, timestamps identical: "
          f"{figures['timestamps_identical']}" + (" (RANDOM weights)" if figures["random_weights"] else ""))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
