"""What a study costs: one member pass per task for every module, against heareval's runner once per module.

    python eval_scripts/bench_study.py [--json eval_scripts/bench-study-cpu.json] [--parts study,plain,embed,cache]
        [--work bench_study] [--update]

The study: the 11 GURA modules plus ``fusion_avg``, ``wav2vec2`` and ``crepe``
(14 modules) over three ``--size ci`` tasks: ``kws`` (scene, speech),
``nsynth_like_pitch`` (scene, pitch) and ``maestro_like_onset`` (event). The SSL
members are REAL-SIZE architectures (HuBERT-xlarge 1280 wide, HuBERT-large and
wav2vec 2.0 large 1024 wide, the real 7-layer CNN front end) with RANDOM
weights, cut to 2 transformer layers; CREPE full has its real weights.

Parts (each can run alone; ``--update`` merges into an existing ``--json``):

- ``study``: per task, ``python -m hear_gura.harness.shared_embed`` with all 14
  modules (what ``hear-gura evaluate`` runs), timed; member forward passes
  counted by the pass itself.
- ``plain``: per task and module, heareval's own embedding runner
  (``python -m hear_gura.heareval_compat embeddings hear_gura.MODULE``), timed;
  then every file it wrote is compared byte for byte with the study's
  (``profile.embeddings.json`` holds times, and ``*filename-timestamps.json``
  absolute paths, so the latter is compared with the folder names swapped).
  Member forward passes of the plain way are derived: each module's run calls
  each of its members once per batch, and the study counts the batches.
- ``embed``: ``hear-gura embed``'s model on 20 clips of 4 s for ``fusion_cat``
  in batches of 8: timestamp and scene outputs from one member pass
  (``EnsembleModel.embed_clips``) against two passes (``frames`` twice, as
  before); outputs compared bit for bit. ``--embed-depth full`` measures it
  at the checkpoints' real depth (48 HuBERT-xlarge and 24 wav2vec 2.0 large
  layers, random weights) and stores it as ``embed_full_depth``.
- ``cache``: the study with ``--feature-cache`` over 13 modules (all but ``avg``),
  then again with all 14: the second run's hit rate, member passes and the
  cache's size on disk.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import write_checkpoints  # noqa: E402  (eval_scripts/bench.py)

MODULES = ("avg", "avg_hubert_crepe", "avg_hubert_wav2vec2", "cat", "cat_hubert_wav2vec2", "cat_wav2vec2_crepe",
           "fusion_cat", "fusion_cat_time", "fusion_hubert", "fusion_wav2vec2", "hubert", "fusion_avg", "wav2vec2",
           "crepe")
TASKS = ("kws", "nsynth_like_pitch", "maestro_like_onset")
DEPTH = 2


def run(command: list, log: Path) -> float:
    """Run a command with its output in ``log``; its wall seconds. Raises on failure (no figure from a failed side)."""
    start = time.perf_counter()
    with open(log, "w") as handle:
        status = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, env=dict(os.environ)).returncode
    seconds = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"FAILED ({status}): {' '.join(command)}; see {log}")
    return seconds


def task_folders(work: Path) -> dict:
    tasks = work / "tasks"
    if not tasks.is_dir():
        run([sys.executable, "-m", "hear_gura", "tasks", "build", str(tasks), "--size", "ci", "--only", ",".join(TASKS),
             "--quiet"], work / "tasks-build.log")
    found = {p.name.split("-")[0]: p for p in tasks.iterdir() if (p / "task_metadata.json").is_file()}
    return {name: found[name] for name in TASKS}


def study(work: Path, manifest: Path, tasks: dict, modules=MODULES, cache: Path | None = None,
          label: str = "study") -> dict:
    figures = {"tasks": {}, "seconds": 0.0, "member_passes": 0}
    for name, task in tasks.items():
        variants = [{"ensemble": m, "options": {}, "embeddings_dir": str(work / label / m)} for m in modules]
        report = work / f"{label}-{name}.json"
        command = [sys.executable, "-m", "hear_gura.harness.shared_embed", "--tasks-dir", str(task.parent),
                   "--task", task.name, "--variants", json.dumps(variants), "--model", str(manifest),
                   "--report", str(report)]
        if cache is not None:
            command += ["--feature-cache", str(cache)]
        seconds = run(command, work / f"{label}-{name}.log")
        summary = json.loads(report.read_text())
        batches = max(summary["member_passes"].values()) if summary["member_passes"] else None
        figures["tasks"][name] = {"seconds": round(seconds, 2), "member_passes": summary["member_passes_total"],
                                  "distinct_members": summary["members"], "batches": batches,
                                  **({"feature_cache": summary["feature_cache"]} if "feature_cache" in summary else {})}
        figures["seconds"] += seconds
        figures["member_passes"] += summary["member_passes_total"]
        print(f"{label} {name}: {seconds:.1f} s, {summary['member_passes_total']} member passes", flush=True)
    figures["seconds"] = round(figures["seconds"], 2)
    return figures


def members_of(module: str) -> int:
    from hear_gura.registry import load_ensemble

    return len(load_ensemble(module).members)


def plain(work: Path, manifest: Path, tasks: dict, study_figures: dict, only=MODULES, earlier=None) -> dict:
    """heareval's runner per module and task; ``only`` re-measures those modules and keeps ``earlier``'s others."""
    figures = {"modules": {}, "seconds": 0.0, "member_passes": 0, "identical_files": 0, "differing_files": []}
    for module in MODULES:
        if module not in only and earlier and module in earlier["modules"]:
            kept = earlier["modules"][module]
            figures["modules"][module] = dict(kept, remeasured=False)
            figures["seconds"] += kept["seconds"]
            figures["member_passes"] += members_of(module) * sum(t["batches"] for t in study_figures["tasks"].values())
            for name, task in tasks.items():
                same, different = compare(work / "plain" / module, work / "study" / module, task.name)
                figures["identical_files"] += same
                figures["differing_files"] += different
            continue
        entry = {"seconds": 0.0}
        import shutil

        shutil.rmtree(work / "plain" / module, ignore_errors=True)  # heareval's runner skips finished tasks
        for name, task in tasks.items():
            root = work / "plain" / module
            seconds = run([sys.executable, "-m", "hear_gura.heareval_compat", "embeddings", f"hear_gura.{module}",
                           "--model", str(manifest), "--tasks-dir", str(task.parent), "--task", task.name,
                           "--embeddings-dir", str(root)], work / f"plain-{module}-{name}.log")
            entry["seconds"] += seconds
            entry[name] = round(seconds, 2)
            batches = study_figures["tasks"][name]["batches"]
            figures["member_passes"] += members_of(module) * batches
            same, different = compare(root, work / "study" / module, task.name)
            figures["identical_files"] += same
            figures["differing_files"] += different
        entry["seconds"] = round(entry["seconds"], 2)
        entry["load_average_1min_after"] = round(os.getloadavg()[0], 2)
        figures["modules"][module] = entry
        figures["seconds"] += entry["seconds"]
        print(f"plain {module}: {entry['seconds']:.1f} s", flush=True)
    figures["seconds"] = round(figures["seconds"], 2)
    return figures


def compare(plain_root: Path, study_root: Path, task: str) -> tuple:
    [plain_dir] = plain_root.glob(f"*/{task}")
    [study_dir] = study_root.glob(f"*/{task}")
    names = sorted(p.relative_to(plain_dir) for p in plain_dir.rglob("*") if p.is_file())
    other = sorted(p.relative_to(study_dir) for p in study_dir.rglob("*") if p.is_file())
    if names != other:
        return 0, [f"{plain_dir}: file lists differ"]
    same, different = 0, []
    for name in names:
        if name.name == "profile.embeddings.json":
            continue
        expected = (plain_dir / name).read_bytes()
        if name.name.endswith("filename-timestamps.json"):
            expected = expected.replace(str(plain_dir).encode(), str(study_dir).encode())
        if expected == (study_dir / name).read_bytes():
            same += 1
        else:
            different.append(str(study_dir / name))
    return same, different


def embed(manifest: Path, repeats: int = 2) -> dict:
    """One pass against two on the same clips; the best of ``repeats`` runs each, after a one-batch warm-up."""
    import torch

    from hear_gura.api import load_ensemble_model
    from hear_gura.model import pad_clips, pool

    generator = torch.Generator().manual_seed(0)
    clips = [torch.rand(64000, generator=generator) * 2 - 1 for _ in range(20)]
    model = load_ensemble_model("fusion_cat", str(manifest))
    batches = [clips[i : i + 8] for i in range(0, len(clips), 8)]

    def one_pass():
        return [out for batch in batches for out in model.embed_clips(batch)]

    def two_passes():
        outputs = []
        for batch in batches:
            audio, lengths = pad_clips(batch, model.min_samples, None)
            with torch.no_grad():
                stamps = model.frames(audio, scene=False, lengths=lengths)
                scenes = model.frames(audio, scene=True, lengths=lengths)
            outputs += [(e, g.centres_ms(), pool(s[None], model.head.scene_groups)[0])
                        for (e, g), (s, _) in zip(stamps, scenes)]
        return outputs

    model.embed_clips(batches[0])  # warm-up
    times = {}
    results = {}
    for label, function in (("one_pass", one_pass), ("two_passes", two_passes)):
        best = None
        for _ in range(repeats):
            start = time.perf_counter()
            results[label] = function()
            seconds = time.perf_counter() - start
            best = seconds if best is None else min(best, seconds)
        times[label] = round(best, 2)
    identical = all(all(torch.equal(a, b) for a, b in zip(x, y)) for x, y in zip(results["one_pass"],
                                                                                 results["two_passes"]))
    return {"clips": 20, "seconds_each": 4, "batch_size": 8, "one_pass_s": times["one_pass"],
            "two_passes_s": times["two_passes"], "ratio": round(times["one_pass"] / times["two_passes"], 3),
            "bit_identical": identical, "repeats": repeats}


def cache_figures(work: Path, manifest: Path, tasks: dict) -> dict:
    import shutil

    folder = work / "feature-cache"
    shutil.rmtree(folder, ignore_errors=True)
    first = study(work, manifest, tasks, tuple(m for m in MODULES if m != "avg"), folder, "cache-first")
    second = study(work, manifest, tasks, MODULES, folder, "cache-second")
    hits = sum(t["feature_cache"]["hits"] for t in second["tasks"].values())
    misses = sum(t["feature_cache"]["misses"] for t in second["tasks"].values())
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    return {"first_run": {"modules": len(MODULES) - 1, "seconds": first["seconds"],
                          "member_passes": first["member_passes"]},
            "second_run": {"modules": len(MODULES), "added": "avg", "seconds": second["seconds"],
                           "member_passes": second["member_passes"], "hits": hits, "misses": misses,
                           "hit_rate": round(hits / (hits + misses), 4) if hits + misses else None},
            "cache_bytes": size}


def code_version() -> dict:
    """The hear_gura that ran (the installed package the subprocesses import) and the checkout's commit."""
    from hear_gura.identity import versions

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "hear_gura"], capture_output=True,
                                    text=True).stdout.strip())
    except OSError:
        commit, dirty = None, None
    return {"hear_gura": versions()["hear_gura"], "commit": commit, "uncommitted_changes_in_hear_gura": dirty}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--parts", default="study,plain,embed,cache")
    parser.add_argument("--work", type=Path, default=Path("bench_study"))
    parser.add_argument("--update", action="store_true", help="merge into the --json file")
    parser.add_argument("--plain-modules", help="with --update: re-measure only these modules' plain runs")
    parser.add_argument("--embed-depth", choices=("2", "full"), default="2",
                        help="transformer depth of the embed part's SSL checkpoints (full: the real depth)")
    args = parser.parse_args()
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    args.work.mkdir(parents=True, exist_ok=True)
    from hear_gura.fixtures import checkpoint_ids_in_use

    manifest = write_checkpoints(args.work / f"checkpoints-depth{DEPTH}", DEPTH, tuple(checkpoint_ids_in_use()))
    tasks = task_folders(args.work)
    figures = json.loads(args.json.read_text()) if args.update and args.json and args.json.exists() else {}
    figures.update({
        "what": "14 modules x 3 ci tasks: study (one member pass per task) against heareval's runner per module",
        "weights": f"SSL members: real-size architectures, RANDOM weights, {DEPTH} transformer layers; "
                   "CREPE full: real weights",
        "modules": list(MODULES), "tasks": list(TASKS),
        "machine": {"cpus": os.cpu_count(), "load_average_1_5_15_at_start": [round(x, 2) for x in os.getloadavg()]},
        "command": " ".join(["python", "eval_scripts/bench_study.py", *sys.argv[1:]]),
    })
    code = figures.pop("code", None)  # older files: one version for every part
    if "study" in parts:
        figures["study"] = study(args.work, manifest, tasks)
        figures["study"]["code"] = code_version()
    if "plain" in parts:
        only = tuple(m.strip() for m in args.plain_modules.split(",")) if args.plain_modules else MODULES
        figures["plain"] = plain(args.work, manifest, tasks, figures["study"], only, figures.get("plain"))
        figures["plain"]["code"] = code_version()
        costliest = max(figures["plain"]["modules"].items(), key=lambda item: item[1]["seconds"])
        figures["summary"] = {
            "study_s": figures["study"]["seconds"], "plain_s": figures["plain"]["seconds"],
            "costliest_module": costliest[0], "costliest_module_s": costliest[1]["seconds"],
            "study_over_costliest_module": round(figures["study"]["seconds"] / costliest[1]["seconds"], 3),
            "plain_over_study": round(figures["plain"]["seconds"] / figures["study"]["seconds"], 2),
            "member_passes_study": figures["study"]["member_passes"],
            "member_passes_plain": figures["plain"]["member_passes"],
            "all_files_identical": not figures["plain"]["differing_files"],
        }
    if "embed" in parts and args.embed_depth == "full":
        full = write_checkpoints(args.work / "checkpoints-full-depth", None)  # H-xl and W: fusion_cat's SSL members
        load = [round(x, 2) for x in os.getloadavg()]
        figures["embed_full_depth"] = embed(full, repeats=1)
        figures["embed_full_depth"]["load_average_1_5_15_at_start"] = load
        figures["embed_full_depth"]["load_average_1_5_15_at_end"] = [round(x, 2) for x in os.getloadavg()]
        figures["embed_full_depth"]["weights"] = ("SSL members: real-size architectures at their real depth "
                                                  "(48 and 24 layers), RANDOM weights; CREPE full: real weights")
        figures["embed_full_depth"]["code"] = code_version()
    elif "embed" in parts:
        figures["embed"] = embed(manifest)
        figures["embed"]["code"] = code_version()
    if "cache" in parts:
        figures["cache"] = cache_figures(args.work, manifest, tasks)
        figures["cache"]["code"] = code_version()
    for part in ("study", "plain", "embed", "cache"):  # parts measured before per-part versions were kept
        if code is not None and part in figures and "code" not in figures[part]:
            figures[part]["code"] = code
    figures["machine"]["load_average_1_5_15_at_end"] = [round(x, 2) for x in os.getloadavg()]
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    if "plain" in parts and figures["plain"]["differing_files"]:
        raise SystemExit(f"{len(figures['plain']['differing_files'])} file(s) differ between the study and "
                         "heareval's runner")


if __name__ == "__main__":
    main()
