"""How large each member's features are in a concatenation, and the ``member_scale`` option that balances them.

heareval's probe standardises nothing by default (``embedding_norm`` is the
identity in its grids), so in a concatenation a member whose values vary more
from clip to clip weighs more in the probe's first layer. For every member of an
ensemble this measures, on clips of one task folder (evenly spaced over its
sorted clips), the spread across clips of its block of the scene embedding, the
block's share of the concatenation's variance, and the factor ``1 / spread``
(:func:`hear_gura.member_scale.measure_member_scales`). ``--export`` writes the
factors as ``--model-options`` JSON (``{"member_scale": {...}}``) to paste into
an ensemble file. Measure on a task you do not score with the result.

    python eval_scripts/member_scales.py --tasks-dir tasks_full --task language_id-v1-full \
        --ensemble resemblyzer_crepe_basic_pitch --clips 96 \
        --json eval_scripts/member-scales.json --export member_scale.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import List, Optional, Sequence


def evenly_spaced(files: Sequence[Path], count: int) -> List[Path]:
    """``count`` of ``files`` spread evenly over the list (all of them when there are fewer)."""
    if len(files) <= count:
        return list(files)
    return [files[round(i * (len(files) - 1) / (count - 1))] for i in range(count)] if count > 1 else [files[0]]


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks-dir", type=Path, required=True)
    parser.add_argument("--task", required=True, help="a task folder name (its 16000/ clips are read)")
    parser.add_argument("--ensemble", required=True, help="a named ensemble or an ensemble file")
    parser.add_argument("--options", default="{}", help="--model-options JSON applied to the ensemble")
    parser.add_argument("--clips", type=int, default=96, help="clips to measure, evenly spaced over the sorted clips")
    parser.add_argument("--json", type=Path, help="write the measurement here")
    parser.add_argument("--export", type=Path, help='write {"member_scale": {...}} here (--model-options JSON)')
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from hear_gura.audio_io import read_wav
    from hear_gura.errors import HearGuraError
    from hear_gura.member_scale import measure_member_scales
    from hear_gura.registry import load_ensemble

    try:
        config = load_ensemble(args.ensemble).with_options(**json.loads(args.options))  # before any clip is read
        folder = args.tasks_dir / args.task / "16000"
        files = evenly_spaced(sorted(folder.glob("*/*.wav")), args.clips)
        if len(files) < 2:
            raise SystemExit(f"{folder}: fewer than 2 clips")
        clips = [read_wav(f) for f in files]  # mono, 16 kHz: anything else is refused, naming the file
        started = time.perf_counter()
        members = measure_member_scales(
            config, clips, progress=lambda done, total: print(f"  {done}/{total} clips", file=sys.stderr, flush=True))
    except (HearGuraError, json.JSONDecodeError) as err:
        sys.exit(f"member_scales: error: {err}")
    result = {"task": args.task, "ensemble": config.name, "clips": len(files),
              "seconds": round(time.perf_counter() - started, 1), "members": members}
    for name, m in members.items():
        print(f"{name:12s} width {m['width']:5d}  spread {m['spread']:.4f}  "
              f"share of variance {m['share_of_variance']:.4f}  factor {m['factor']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    if args.export:
        factors = {"member_scale": {name: m["factor"] for name, m in members.items()}}
        args.export.write_text(json.dumps(factors, indent=2) + "\n")
        print(f"wrote {args.export}")


if __name__ == "__main__":
    main()
