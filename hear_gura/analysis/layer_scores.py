"""``hear-gura layers``: the fast-probe score of every state of every multi-state member, per task.

For each task: ONE pass of the analysed members over every clip
(:func:`hear_gura.analysis.states.collect_states`: every state from one
forward pass), then per member (a *cell*) the fast probe
(:mod:`hear_gura.analysis.fast_probe`) on every single state, on the
equal-weight mean of the states (the ``"mean"`` layer choice), and on SUPERB's
learned weighted sum (:mod:`hear_gura.analysis.learned_weights`). ``"last"``
is the last state. The best single state is chosen on the validation split(s).

Outputs under ``OUT``::

    cells/<task>/<member>.json     one cell's scores and learned weights (identity inside), written last
    features/<task>/               the states of the task's member pass (removed after its cells, unless kept)
    layers-fastprobe.{csv,md,png}, layer-weights-fastprobe.png   the report (every title says: fast probe)
    command.json                   the command and its arguments

Resuming works as in ``hear-gura evaluate``: a cell is skipped when its result
records the identity it would have now (the resolved ensemble, its checkpoints'
content, the task's content, the versions, the probe settings and seed);
finished features are reused on the same terms; anything else is recomputed.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, TextIO

import numpy as np

from hear_gura.analysis.fast_probe import LOWER_IS_BETTER, TITLE_TAG, ProbeConfig, TaskSpec, probe_task
from hear_gura.analysis.states import StateStore, collect_states, features_complete, stores
from hear_gura.atomic import save_json
from hear_gura.errors import HearGuraError

PROBES = ("fast",)
#: Bumped when what a cell computes changes (part of every identity).
ANALYSIS_VERSION = 1


@dataclass
class LayersResult:
    """What :func:`run_layers` did: cell records by (task, member), the cells computed now, the files written."""

    out: Path
    records: Dict[tuple, Dict[str, Any]] = field(default_factory=dict)
    computed: List[tuple] = field(default_factory=list)
    files: Dict[str, Path] = field(default_factory=dict)


def _load_json(path: Path) -> Optional[Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def analysed_members(config: Any, descriptions: Mapping[str, Any], only: Optional[Sequence[str]]) -> Dict[str, int]:
    """Member name -> number of states, for the multi-state members to analyse (no weights loaded).

    Args:
        descriptions: member name -> its :class:`~hear_gura.members.registry.MemberDescription`.
    Raises:
        HearGuraError: ``only`` names a member the ensemble lacks or one with a single state,
            or no member has more than one state.
    """
    states = {spec.name: descriptions[spec.name].num_states for spec in config.members}
    if only:
        unknown = [m for m in only if m not in states]
        if unknown:
            raise HearGuraError(f"--member {', '.join(unknown)}: not a member of {config.name!r} "
                                f"(members: {', '.join(states)})")
        single = [m for m in only if states[m] < 2]
        if single:
            raise HearGuraError(f"--member {', '.join(single)} has one state: there is no layer to choose "
                                f"(multi-state members of {config.name!r}: "
                                f"{', '.join(m for m, n in states.items() if n > 1) or 'none'})")
        return {m: states[m] for m in only}
    chosen = {m: n for m, n in states.items() if n > 1}
    if not chosen:
        raise HearGuraError(f"no member of {config.name!r} has more than one state (states: "
                            f"{', '.join(f'{m} {n}' for m, n in states.items())}): there are no layers to analyse; "
                            "choose an ensemble with an SSL member (hear-gura list shows the layers column)")
    return chosen


def _brief(result: Mapping[str, Any], task: TaskSpec) -> Dict[str, Any]:
    """A probe result without its models, plus the mean validation score per metric."""
    folds = result["per_fold"]
    brief = {k: result[k] for k in ("test", "test_std", "seconds") if k in result}
    brief["valid"] = {m: float(np.mean([f["valid"][m] for f in folds.values()])) for m in task.metrics}
    brief["per_fold"] = {name: {k: v for k, v in fold.items()} for name, fold in folds.items()}
    return brief


def best_state(states: Sequence[Mapping[str, Any]], metric: str) -> int:
    """The state with the best mean validation score on ``metric`` (ties: the shallower)."""
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    values = [sign * s["linear"]["valid"][metric] for s in states]
    values = [v if np.isfinite(v) else -np.inf for v in values]
    return int(np.argmax(values))


def score_cell(task: TaskSpec, store: StateStore, seed: int, device: str, config: ProbeConfig, learned: bool,
               stream: TextIO) -> Dict[str, Any]:
    """Every state of one member on one task, the mean of the states and (optionally) the learned mix."""
    scene = task.embedding_type == "scene"
    metric = task.primary_metric
    start = time.perf_counter()

    def probes(x_of: Any) -> Dict[str, Any]:
        splits = store.splits(task, x_of)
        found = {"linear": _brief(probe_task(task, splits, "linear", seed, device, config), task)}
        if scene:
            found["knn"] = _brief(probe_task(task, splits, "knn", seed, device, config), task)
        return found

    states = []
    for index in range(store.num_states):
        states.append({"state": index, **probes(lambda split: np.array(store.state(split, index)))})
        print(f"      {store.member} state {index + 1}/{store.num_states}: {metric} = "
              f"{states[-1]['linear']['test'][metric]:.4f} ({time.perf_counter() - start:.1f} s)",
              file=stream, flush=True)
    record: Dict[str, Any] = {"states": states, "mean": probes(store.mean), "learned": None}
    widths = {w for split in task.split_names for w in store.widths(split)}
    if learned and len(widths) == 1:
        from hear_gura.analysis.learned_weights import learn_weights

        mix = learn_weights(task, store.splits(task, store.stacked), seed, device, config)
        record["learned"] = {"linear": _brief(mix, task), "weights": mix["weights"],
                             "weights_per_fold": mix["weights_per_fold"]}
        print(f"      {store.member} learned weights: {metric} = {mix['test'][metric]:.4f}", file=stream, flush=True)
    elif learned:
        record["learned_skipped"] = f"states of different widths {sorted(widths)}: no weighted sum"
    record["best_state"] = best_state(states, metric)
    record["last_state"] = store.num_states - 1
    record["seconds"] = round(time.perf_counter() - start, 2)
    return record


def _rewrite_reports(out: Path, tasks: Sequence[str], names: Mapping[str, Optional[Sequence[str]]],
                     stream: TextIO) -> LayersResult:
    """``--report-only``: the reports from the finished cells of ``names``' members on ``tasks``."""
    from hear_gura.analysis.report import write_reports

    result = LayersResult(out)
    for task in tasks:
        for member, state_names in names.items():
            record = _load_json(out / "cells" / task / f"{member}.json")
            if not isinstance(record, dict) or "states" not in record:
                continue
            if record.get("state_names") is None and state_names:  # cells written before names were recorded
                record = {**record, "state_names": list(state_names)}
            result.records[(task, member)] = record
    if not result.records:
        raise HearGuraError(f"--report-only: no finished cell in {out}/cells for these tasks and members")
    result.files = write_reports(out, list(result.records.values()))
    for path in result.files.values():
        print(f"wrote {path}", file=stream)
    return result


def run_layers(
    tasks_dir: "str | Path",
    ensemble: str,
    members: Optional[Sequence[str]] = None,
    out: "str | Path" = "layers",
    model: Optional[str] = None,
    options: Optional[Mapping[str, Any]] = None,
    tasks: Optional[Sequence[str]] = None,
    probe: str = "fast",
    learned: bool = True,
    export: Optional["str | Path"] = None,
    device: str = "cpu",
    batch_size: int = 8,
    seed: int = 0,
    keep_features: bool = False,
    config: ProbeConfig = ProbeConfig(),
    stream: Optional[TextIO] = None,
    argv: Optional[Sequence[str]] = None,
    feature_cache: Optional["str | Path"] = None,
    report_only: bool = False,
) -> LayersResult:
    """Score every state of the multi-state members of ``ensemble`` on every task; write the reports.

    Args:
        tasks_dir: folder of HEAR task folders.
        ensemble: an ensemble name (``hear-gura list --names``).
        members: analyse only these members (default: every member with more than one state).
        out: output folder; a rerun into it skips finished cells.
        model: checkpoint manifest.
        options: ensemble options (``--model-options``), e.g. ``{"normalize_waveform": true}``.
        tasks: only these tasks (folder names or task names).
        probe: ``fast`` (the only one wired: heareval's probe per state would be one
            Lightning grid search per state; run ``hear-gura evaluate`` with a ``layers`` grid for that).
        learned: also learn SUPERB's weighted sum.
        export: write the learned mixes as ``--model-options`` (:func:`learned_weights.export`).
        device: torch device for the members and the probes.
        batch_size: clips per member batch.
        seed: the probes' seed.
        keep_features: keep ``OUT/features`` after the cells (a rerun with other probe settings reuses them).
        config: the fast probe's hyper-parameters.
        feature_cache: a feature-cache folder (``hear-gura evaluate --feature-cache``): member
            features per clip are read from it and written to it (every state is one entry).
        report_only: run nothing; rewrite the reports from the cells finished in ``out``
            (those of this ensemble's analysed members on these tasks).
    Raises:
        HearGuraError / ConfigError / CheckpointError: invalid input, before any work.
    """
    import torch

    from hear_gura.harness.scores import discover_tasks
    from hear_gura.identity import describe_member, ensemble_identity, same_identity
    from hear_gura.manifest import Manifest
    from hear_gura.model import build_config_member, computation_key
    from hear_gura.registry import load_ensemble

    stream = stream or sys.stdout
    if probe not in PROBES:
        raise HearGuraError(f"--probe {probe!r} is not available for layers (valid: {', '.join(PROBES)}); "
                            "heareval's probe per state is a full grid search per state: score chosen layers with "
                            "`hear-gura evaluate --grid '{\"layers\": [0, 6, \"last\", \"mean\"]}'`")
    if batch_size < 1:
        raise HearGuraError("--batch-size must be at least 1")
    if export is not None and not learned:
        raise HearGuraError("--export writes the learned layer weights: drop --no-learned")
    manifest_path = None
    if model:
        path = Path(model).expanduser()
        if not path.is_file():
            raise HearGuraError(f"--model {model} does not exist (a checkpoint manifest; `hear-gura fixtures DIR` "
                                "writes DIR/checkpoints.json)")
        manifest_path = str(path.resolve())
    manifest = Manifest.load(manifest_path)
    cache = None
    if feature_cache is not None:
        from hear_gura.feature_cache import FeatureCache

        cache = FeatureCache(Path(feature_cache).expanduser())  # refuses a folder that is not a cache, before any work
    ensemble_config = load_ensemble(ensemble).with_options(**dict(options or {}))
    descriptions = {spec.name: describe_member(spec, manifest) for spec in ensemble_config.members}
    chosen = analysed_members(ensemble_config, descriptions, members)
    names = {name: descriptions[name].state_names for name in chosen}
    task_infos = discover_tasks(tasks_dir, tasks)
    if report_only:
        return _rewrite_reports(Path(out), [t.folder for t in task_infos], names, stream)
    specs = {t.folder: TaskSpec.load(t.path) for t in task_infos}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    base = ensemble_identity(ensemble_config, manifest)
    save_json(out / "command.json", {"argv": list(argv or sys.argv), "ensemble": ensemble, "options": options or {},
                                     "members": chosen, "probe": probe, "probe_hparams": asdict(config),
                                     "seed": seed, "device": device, "tasks": [t.folder for t in task_infos]})
    print(f"layers of {ensemble} ({', '.join(f'{m}: {n} states' for m, n in chosen.items())}) on "
          f"{len(task_infos)} task(s), {TITLE_TAG}", file=stream, flush=True)
    result = LayersResult(out)
    built: Dict[str, torch.nn.Module] = {}
    for number, info in enumerate(task_infos, 1):
        task = specs[info.folder]
        feature_identity = {**base, "task": {"folder": info.folder, "content": info.fingerprint},
                            "analysis": {"version": ANALYSIS_VERSION, "members": sorted(chosen),
                                         "batch_size": batch_size}}
        cell_identity = {**feature_identity, "probe": {"name": probe, "hparams": asdict(config), "seed": seed,
                                                       "learned": learned}}
        print(f"[{number}/{len(task_infos)}] {info.folder} ({task.embedding_type}, {task.primary_metric})",
              file=stream, flush=True)
        todo = []
        for member in chosen:
            path = out / "cells" / info.folder / f"{member}.json"
            record = _load_json(path)
            if isinstance(record, dict) and same_identity(record.get("identity"), {**cell_identity, "member": member}):
                result.records[(info.folder, member)] = record
                print(f"    {member}: done earlier, reused", file=stream, flush=True)
            else:
                path.unlink(missing_ok=True)
                todo.append(member)
        if not todo:
            continue
        folder = out / "features" / info.folder
        if features_complete(folder, feature_identity):
            print("    member pass: done earlier, features reused", file=stream, flush=True)
            found = stores(folder, chosen)
        else:
            for spec in ensemble_config.members:
                if spec.name in chosen and spec.name not in built:
                    key = computation_key(spec, ensemble_config, manifest) if cache is not None else None
                    built[spec.name] = build_config_member(spec, ensemble_config, manifest, key).to(device)
            print(f"    member pass over every clip: {', '.join(chosen)}", file=stream, flush=True)
            found = collect_states(info.path, task, ensemble_config, {m: built[m] for m in chosen}, folder,
                                   feature_identity, batch_size, device, stream, cache)
            if cache is not None:
                stats = cache.stats
                print(f"    feature cache so far: {stats.hits} hit(s), {stats.misses} miss(es), "
                      f"{stats.written} written", file=stream, flush=True)
        for member in todo:
            print(f"    {member}: fast probe on {chosen[member]} states", file=stream, flush=True)
            record = score_cell(task, found[member], seed, device, config, learned, stream)
            record = {"task": info.folder, "task_name": task.name, "member": member, "ensemble": ensemble,
                      "embedding_type": task.embedding_type, "metric": task.primary_metric,
                      "metrics": list(task.metrics), "num_states": chosen[member], "probe": probe,
                      "state_names": list(names[member]) if names[member] else None,
                      "title": TITLE_TAG, "random_weights": bool(base["random_weights"]), **record,
                      "identity": {**cell_identity, "member": member}}
            save_json(out / "cells" / info.folder / f"{member}.json", record)
            result.records[(info.folder, member)] = record
            result.computed.append((info.folder, member))
        if not keep_features:
            shutil.rmtree(folder, ignore_errors=True)
    from hear_gura.analysis.report import write_reports

    result.files = write_reports(out, list(result.records.values()))
    if export is not None:
        from hear_gura.analysis.learned_weights import export as write_export, layers_option

        per_task: Dict[str, Dict[str, Any]] = {}
        for info in task_infos:
            weights = {m: result.records[(info.folder, m)]["learned"]["weights"] for m in chosen
                       if (result.records.get((info.folder, m)) or {}).get("learned")}
            if weights:
                per_task[info.folder] = {**dict(options or {}),
                                         **layers_option(weights, list(chosen) if members else None)}
        for path in write_export(export, ensemble, per_task):
            result.files[f"export:{path.name}"] = path
    for name, path in result.files.items():
        print(f"wrote {path}", file=stream)
    return result


__all__ = ["run_layers", "score_cell", "analysed_members", "best_state", "LayersResult"]
