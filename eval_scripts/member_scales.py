"""How large each real member's features are, as heareval's probe sees them in a concatenation.

heareval's probe standardises nothing by default (``embedding_norm`` is the
identity in its grids), so in a ``cat_block`` fusion a member whose values vary
more from clip to clip weighs more in the probe's first layer. This measures,
per member (its ensemble's state, scene embedding = mean over frames), on the
first clips of a task folder:

- ``spread``: the standard deviation across clips of each feature, averaged over features;
- ``mean_abs``: the mean absolute value of the frame features;
- ``l2``: the mean L2 norm of the clip embeddings;
- ``share_of_variance``: the member's share of the concatenation's total variance
  across clips (width x spread^2, normalised over the members).

    python eval_scripts/member_scales.py --tasks-dir tasks_full --task speaker_id-v1-full \
        --json eval_scripts/member-scales.json
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

#: Members of ``resemblyzer_crepe_basic_pitch`` as its ensemble file declares them, and their hops.
MEMBERS = (("crepe", {"model": "full"}, 4000), ("basic_pitch", {"states": "outputs"}, None),
           ("resemblyzer", {}, None))


def measure(files: Sequence[Path]) -> Dict[str, Any]:
    """Per member: spread, mean_abs, l2 and share_of_variance on these clips (16 kHz wav files)."""
    import soundfile as sf
    import torch

    from hear_gura.manifest import Manifest
    from hear_gura.members.base import MemberSpec, build_member

    clips = [torch.from_numpy(sf.read(str(f), dtype="float32")[0]) for f in files]
    if len({c.shape[0] for c in clips}) != 1:
        raise SystemExit("clips of different lengths: pick a task with fixed-length clips")
    audio = torch.stack(clips)
    out: Dict[str, Any] = {}
    for kind, params, hop in MEMBERS:
        member = build_member(MemberSpec(kind, kind, params), Manifest(), False).eval()
        with torch.no_grad():
            frames = list(member.states(audio, member.num_states - 1, hop))[-1]
        pooled = frames.mean(dim=1)
        spread = pooled.std(dim=0)
        out[kind] = {"width": int(frames.shape[-1]), "spread": float(spread.mean()),
                     "mean_abs": float(frames.abs().mean()), "l2": float(pooled.norm(dim=-1).mean()),
                     "variance": float((spread ** 2).sum())}
    total = sum(m["variance"] for m in out.values())
    for m in out.values():
        m["share_of_variance"] = m.pop("variance") / total
    return out


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks-dir", type=Path, required=True)
    parser.add_argument("--task", required=True, help="a task folder name")
    parser.add_argument("--clips", type=int, default=48, help="clips to measure (the first, sorted by path)")
    parser.add_argument("--json", type=Path, help="write the result here")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    files: List[Path] = sorted((args.tasks_dir / args.task / "16000").glob("*/*.wav"))[: args.clips]
    if len(files) < 2:
        raise SystemExit(f"{args.tasks_dir / args.task}: fewer than 2 clips under 16000/")
    result = {"task": args.task, "clips": len(files), "members": measure(files)}
    for name, m in result["members"].items():
        print(f"{name:12s} width {m['width']:5d}  spread {m['spread']:.4f}  mean |x| {m['mean_abs']:.4f}  "
              f"L2 {m['l2']:.3f}  share of variance {m['share_of_variance']:.3f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
