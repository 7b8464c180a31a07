"""``hear-gura evaluate``: every ensemble variant on every task, through heareval, resumably.

Order of work: validate everything that can be validated cheaply (ensemble
names, the option grid, the manifest, the task folders, the reference), write
``command.json``, run the cells (variants outer, tasks inner), then write the
reports. A failing cell is reported and skipped; the reports still cover the
others and the command exits with an error naming the failed cells.

``--probe heareval`` (default) writes ``results.{csv,md,png}``: HEAR scores.
``--probe fast`` writes ``results-fastprobe.{csv,md,png}``, titled as fast-probe
figures, never HEAR scores; its cells are separate results. ``--seeds N`` runs
the probe N times per cell (seeds 42, 43, ...): tables show mean ± std.
``--per-class TASK[:VARIANT]`` writes ``per-class-<task>[-<variant>].{md,csv}``.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ContextManager, Dict, List, Optional, Sequence, Tuple

from hear_gura.atomic import save_json
from hear_gura.errors import HearGuraError
from hear_gura.folder_lock import exclusive
from hear_gura.harness.finalists import finalist_cells, heareval_rank_text, pick_finalists, write_finalists
from hear_gura.harness.grid import Variant, build_variants, parse_ensembles, parse_grid
from hear_gura.harness.leaderboard import SOURCE, leaderboard_column, load_leaderboard
from hear_gura.harness.preflight import preflight
from hear_gura.harness.per_class import parse_selections, write_task_tables
from hear_gura.harness.report import (
    MEASURED, ScoreRow, ScoreTable, build_table, write_csv, write_heatmap, write_markdown,
)
from hear_gura.harness.probe_progress import duration_text
from hear_gura.harness.runner import (
    FAST_FILE_TAG, FAST_TITLE_TAG, PROBE_GRIDS, PROBES, Cell, CellOutcome, CellRunner, Settings, load_json,
    now_text, variant_identities,
)
from hear_gura.harness.scores import TaskInfo, discover_tasks
from hear_gura.identity import versions

REFERENCES = ("gura",)


@dataclass
class EvaluationResult:
    """What :func:`evaluate` did: the outcomes per cell, the files written, and the ``command.json`` it saved
    (empty with ``report_only``)."""

    out: Path
    outcomes: List[CellOutcome] = field(default_factory=list)
    files: Dict[str, Path] = field(default_factory=dict)
    command: Dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> List[CellOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    def records(self) -> Dict[Tuple[str, str], Dict[str, Any]]:
        """``{(variant label, task folder): cell record}`` of the finished cells."""
        return {(o.cell.variant.label, o.cell.task.folder): o.record for o in self.outcomes if o.record}

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)


def evaluate(
    tasks_dir: "str | Path",
    ensembles: "str | Sequence[str]",
    grid: Optional[str] = None,
    model: Optional[str] = None,
    out: "str | Path" = "results",
    grid_points: int = 8,
    probe_grid: str = "default",
    reference: Optional[str] = None,
    tasks: Optional[Sequence[str]] = None,
    verbose: bool = False,
    fail_fast: bool = False,
    report_only: bool = False,
    feature_cache: Optional[str] = None,
    argv: Optional[Sequence[str]] = None,
    arguments: Optional[Dict[str, Any]] = None,
    seeds: int = 1,
    probe: str = "heareval",
    per_class: Optional[Sequence[str]] = None,
    finalists: int = 0,
) -> EvaluationResult:
    """Evaluate ensembles on HEAR tasks with heareval's runners; write results.{csv,md,png}.

    Args:
        tasks_dir: folder of HEAR task folders (official HEAR 2021 ones work unchanged).
        ensembles: names, as a list or ``"a,b"``.
        grid: option grid (JSON object ``{option: [values]}`` or a JSON file); every
            point applies to every ensemble.
        model: checkpoint manifest (``--model`` of heareval's embedding runner).
        out: output folder; reruns into it skip finished cells.
        grid_points: heareval's ``--grid-points`` (8 in HEAR 2021).
        probe_grid: heareval's ``--grid`` (``default`` as in HEAR 2021, ``fast``, ``faster``).
        reference: ``"gura"`` adds the published leaderboard rows for official tasks.
        tasks: only these tasks (folder names or task names).
        verbose: echo the runners' output (it always goes to ``out/logs``).
        fail_fast: stop at the first failing cell.
        report_only: run nothing; write the reports from the cells finished so far
            (the others show as n/a), e.g. while another process is still running.
        feature_cache: a folder of per-clip member features (:mod:`hear_gura.feature_cache`)
            that study steps read and fill: a later study over the same members runs none.
        argv, arguments: recorded in ``command.json`` (default ``sys.argv``).
        seeds: probe runs per cell, run ``i`` with seed ``42 + i`` (42 is heareval's own
            seed); the tables show mean ± sample std over runs. N seeds is another cell
            than one, but a rerun with more seeds reuses the runs it has.
        probe: ``heareval`` (its prediction runner: HEAR scores) or ``fast``
            (:mod:`hear_gura.analysis.fast_probe`: exploring only; ``results-fastprobe.*``).
        per_class: ``TASK`` or ``TASK:VARIANT`` selections: write the per-class table of
            those finished cells (``per-class-<task>[-<variant>].{md,csv}``).
        finalists: with ``probe="fast"``, then run heareval's probe on the ``finalists`` variants the fast
            probe scores best on each task (:mod:`hear_gura.harness.finalists`): ``results.*`` holds those
            HEAR scores, ``results-finalists.{md,csv}`` both probes side by side. 0: the fast probe only.
    Returns:
        an :class:`EvaluationResult`; raises nothing for failed cells (see ``.failed``).
    Raises:
        ConfigError / CheckpointError / HearGuraError: invalid input, before any work.
    """
    # ---- validate everything first (seconds, no model loaded)
    if probe_grid not in PROBE_GRIDS:
        raise HearGuraError(f"unknown probe grid {probe_grid!r}; valid: {', '.join(PROBE_GRIDS)}")
    if isinstance(grid_points, bool) or not isinstance(grid_points, int) or grid_points < 1:
        raise HearGuraError(f"--grid-points must be a positive integer, got {grid_points!r}")
    if reference is not None and reference not in REFERENCES:
        raise HearGuraError(f"unknown --reference {reference!r}; valid: {', '.join(REFERENCES)}")
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise HearGuraError(f"--seeds must be a positive integer (probe runs per cell), got {seeds!r}")
    if probe not in PROBES:
        raise HearGuraError(f"unknown --probe {probe!r}; valid: {', '.join(PROBES)} (heareval: HEAR scores)")
    if isinstance(finalists, bool) or not isinstance(finalists, int) or finalists < 0:
        raise HearGuraError(f"--finalists must be 0 (off) or a positive integer (variants per task for heareval's "
                            f"probe), got {finalists!r}")
    if finalists and probe != "fast":
        raise HearGuraError("--finalists K runs heareval's probe on the K variants the fast probe scores best per "
                            "task: add --probe fast (without it heareval's probe scores every cell)")
    if finalists and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise HearGuraError("--finalists runs in one process (the finalists are picked between the two stages): "
                            "run it without torchrun, or run --probe fast under torchrun and heareval's probe after")
    if probe == "fast":
        _check_fast_probe()
        if per_class and not finalists:
            raise HearGuraError("--per-class needs test predictions, which only heareval's probe keeps; "
                                "drop --probe fast (or add --finalists K: the tables of the finalists' cells)")
    manifest = None
    if model:
        manifest_path = Path(model).expanduser()
        if not manifest_path.is_file():
            raise HearGuraError(f"--model {model} does not exist (a checkpoint manifest; `hear-gura fixtures DIR` "
                                "writes DIR/checkpoints.json)")
        manifest = str(manifest_path.resolve())
    names = parse_ensembles(ensembles)
    variants = build_variants(names, parse_grid(grid), manifest)
    if finalists and finalists >= len(variants):
        raise HearGuraError(f"--finalists {finalists}: the study has {len(variants)} variant(s), so heareval's probe "
                            "would score every cell: run it without --probe fast, or ask for fewer finalists")
    task_infos = discover_tasks(tasks_dir, tasks)
    selections = parse_selections(per_class or [], task_infos, variants)
    if not report_only:  # every wav and label heareval will read, before any model or embedding work
        preflight(tasks_dir, task_infos)
    identities = variant_identities(variants, manifest)
    cache_folder = None
    if feature_cache and not report_only:
        from hear_gura.feature_cache import FeatureCache

        cache_folder = str(Path(feature_cache).expanduser().absolute())
        FeatureCache(cache_folder)  # refuses a folder that is not a cache, before any work
    plan = Plan(
        out_dir=Path(out).expanduser().absolute(),
        variants=variants,
        tasks=task_infos,
        random_flags={label: bool(identity["random_weights"]) for label, identity in identities.items()},
        settings=Settings(manifest=manifest, grid_points=grid_points, probe_grid=probe_grid, identities=identities,
                          feature_cache=cache_folder, seeds=seeds, probe_kind=probe),
        reference=reference,
        reference_columns={t.folder: c for t in task_infos if (c := leaderboard_column(t.folder)) is not None}
        if reference == "gura" else {},
        command={
            "argv": list(sys.argv if argv is None else argv),
            "arguments": arguments or {
                "tasks_dir": str(tasks_dir), "ensembles": names, "grid": grid, "model": model, "out": str(out),
                "grid_points": grid_points, "probe_grid": probe_grid, "reference": reference,
                "tasks": list(tasks) if tasks else None, "seeds": seeds, "probe": probe,
                "per_class": list(per_class) if per_class else None, "finalists": finalists,
            },
            "cwd": str(Path.cwd()),
            "executable": sys.executable,
            "versions": dict(versions()),
        },
        per_class=[] if finalists else selections,
    )
    if reference and not plan.reference_columns:
        print("NOTE: --reference gura: none of the tasks is an official HEAR 2021 task folder "
              "(e.g. speech_commands-v0.0.2-5h), so no published scores are added", flush=True)
    plan.out_dir.mkdir(parents=True, exist_ok=True)
    if report_only:  # reads finished cells, writes the reports atomically: no lock needed
        if finalists:
            return run_with_finalists(plan, finalists, selections, report_only=True)
        return run_plan(plan, report_only=True)
    if int(os.environ.get("RANK", "0")) != 0:  # torchrun: rank 0 holds the lock for the whole job
        return run_plan(plan, verbose=verbose, fail_fast=fail_fast)
    with _exclusive(plan.out_dir):
        if finalists:
            return run_with_finalists(plan, finalists, selections, verbose=verbose, fail_fast=fail_fast)
        return run_plan(plan, verbose=verbose, fail_fast=fail_fast)


def run_with_finalists(plan: "Plan", count: int, selections: List[Tuple[TaskInfo, List[Variant], str]],
                       verbose: bool = False, fail_fast: bool = False, report_only: bool = False) -> EvaluationResult:
    """The fast plan, then heareval's probe on each task's ``count`` best variants by the fast probe
    (:mod:`hear_gura.harness.finalists`), then ``results-finalists.*``. Returns both stages' outcomes and files
    (the fast stage's under ``fastprobe:<kind>``). With ``fail_fast``, a failed fast cell stops before heareval."""
    fast = run_plan(plan, verbose=verbose, fail_fast=fail_fast, report_only=report_only)
    result = EvaluationResult(plan.out_dir, list(fast.outcomes),
                              {f"fastprobe:{kind}": path for kind, path in fast.files.items()})
    if fast.failed and fail_fast:
        return result
    fast_records = fast.records()
    picks = pick_finalists(fast_records, plan.variants, plan.tasks, count)
    print(f"finalists: heareval's probe on the fast probe's best {count} per task ("
          + "; ".join(f"{task}: {', '.join(v.label for v in chosen) or 'none finished'}"
                      for task, chosen in picks.items()) + ")", flush=True)
    per_class = [(task, [v for v in chosen if v in picks[task.folder]], suffix) for task, chosen, suffix in selections]
    command = dict(plan.command, stage="heareval's probe on the finalists")
    if fast.command:  # the fast stage's times and counts, kept beside the second's
        command["fast_stage"] = {k: fast.command.get(k) for k in ("started_at", "finished_at", "seconds", "status",
                                                                  "cells", "failed")}
    stage = replace(plan, settings=replace(plan.settings, probe_kind="heareval"), only=finalist_cells(picks),
                    per_class=per_class, command=command)
    final = run_plan(stage, verbose=verbose, fail_fast=fail_fast, report_only=report_only)
    result.outcomes += final.outcomes
    result.files.update(final.files)
    heareval_records = final.records()
    files, rows = write_finalists(plan.out_dir, picks, plan.tasks, plan.variants, fast_records, heareval_records,
                                  plan.settings.seeds)
    result.files.update(files)
    summary = heareval_rank_text(rows)
    print(f"finalists: wrote {result.files['finalists:md']}" + (f" (the fast probe's first pick: {summary})"
                                                              if summary else ""), flush=True)
    return result


@dataclass
class Plan:
    """A validated evaluation: what :func:`run_plan` runs.

    Attributes:
        out_dir: the output folder (absolute).
        variants: rows, in order; ``tasks``: columns, in order.
        random_flags: variant label -> would use RANDOM fixture weights if run now (for progress
            lines; tables label rows from what each finished cell recorded).
        settings: manifest, probe settings and each variant's identity, shared by all cells.
        reference, reference_columns: the ``--reference`` and its official task folder -> column map.
        command: what ``command.json`` records besides times and status.
        per_class: per-class tables to write: (task, its variants, file name suffix).
        only: run only these ``(variant label, task folder)`` cells (``--finalists``); None: every cell.
    """

    out_dir: Path
    variants: List[Variant]
    tasks: List[TaskInfo]
    random_flags: Dict[str, bool]
    settings: Settings
    reference: Optional[str]
    reference_columns: Dict[str, str]
    command: Dict[str, Any]
    per_class: List[Tuple[TaskInfo, List[Variant], str]] = field(default_factory=list)
    only: Optional[frozenset] = None

    @property
    def fast(self) -> bool:
        return self.settings.probe_kind == "fast"


def _check_fast_probe() -> None:
    """Fail early, with the fix, when the fast probe cannot be imported."""
    try:
        from hear_gura.analysis.fast_probe import score_embedding_folder  # noqa: F401
    except ImportError as err:
        raise HearGuraError(f"--probe fast needs hear_gura.analysis.fast_probe ({err}); use --probe heareval") from None


def _exclusive(out_dir: Path) -> ContextManager[None]:
    """Hold ``out_dir/.evaluate.lock`` so two runs never write one output folder (released on exit or death)."""
    return exclusive(out_dir / ".evaluate.lock",
                     f"another hear-gura evaluate is writing to {out_dir}; wait for it or use another --out")


def save_command_status(path: Path, command: Dict[str, Any]) -> None:
    """Write ``command.json`` so that it never keeps saying "running" after the run stopped.

    Atomically if possible; on a full disk (no room for the temporary file) by
    overwriting it in place (truncating first frees its blocks); and if even
    that fails, the stale file is removed.
    """
    try:
        save_json(path, command)
        return
    except OSError:
        pass
    try:
        path.write_text(json.dumps(command, indent=2, default=str) + "\n", encoding="utf-8")
        return
    except OSError:
        path.unlink(missing_ok=True)


def study_steps(cells: Sequence[Cell], tasks: Sequence[TaskInfo], runner: CellRunner) -> List[List[Cell]]:
    """Per task (in order): the cells whose embeddings one member pass of the study computes.

    A task gets a study step when two or more of its cells still need
    embeddings (or one, with a feature cache); a lone variant is left to
    heareval's own runner in its cell. The list has one entry per task (maybe
    empty), so ranks can take tasks by index.
    """
    steps = []
    for task in tasks:
        mates = [c for c in cells if c.task.folder == task.folder and runner.finished_record(c) is None
                 and not runner.embeddings_ready(c)]
        wanted = len(mates) > 1 or (len(mates) == 1 and runner.settings.feature_cache is not None)
        steps.append(mates if wanted else [])
    return steps


def run_plan(
    plan: Plan, verbose: bool = False, fail_fast: bool = False, report_only: bool = False
) -> EvaluationResult:
    """Run every cell of a plan (skipping finished ones), then write the reports and ``command.json``.

    Two phases: (1) per task, one member pass of the study computes the
    embeddings of every variant that needs them (:meth:`CellRunner.study_embeddings`);
    (2) per cell, heareval's probe (and heareval's embedding runner for a cell
    whose task had no study step). Under ``torchrun`` (``WORLD_SIZE`` > 1) rank
    ``r`` takes every ``WORLD_SIZE``-th task in phase 1 and every
    ``WORLD_SIZE``-th cell in phase 2, with a barrier between; rank 0 writes the
    reports and ``command.json``. Every cell's files are written atomically by
    the rank that ran it, so a rerun after a rank died resumes.

    With ``report_only`` nothing runs and ``command.json`` is left alone: the
    reports cover the finished cells.
    """
    from hear_gura.distributed import Shard

    shard = Shard() if report_only else Shard.from_environment(backend="gloo", timeout_hours=STUDY_TIMEOUT_HOURS)
    leader = shard.rank == 0
    if shard.world_size > 1:
        pin_gpu_for_subprocesses(shard.local_rank)
    out_dir, command = plan.out_dir, dict(plan.command, started_at=now_text(), status="running",
                                          processes=shard.world_size)
    if not report_only and leader:
        save_json(out_dir / "command.json", command)
    result = EvaluationResult(out_dir)
    runner = CellRunner(plan.settings, echo=verbose)
    cells = [Cell(v, t, out_dir, plan.settings.probe_kind) for v in plan.variants for t in plan.tasks
             if plan.only is None or (v.label, t.folder) in plan.only]
    settings, tag = plan.settings, shard.label()
    if leader:
        probe_text = (f"FAST probe ({FAST_TITLE_TAG})" if plan.fast else
                      f"probe grid {settings.probe_grid!r}, {settings.grid_points} grid point(s)")
        seeds_text = f", {settings.seeds} seeds ({', '.join(map(str, settings.seed_list()))})" if settings.seeds > 1 else ""
        shape = (f"{len(plan.variants)} variant(s) x {len(plan.tasks)} task(s) = {len(cells)} cell(s)"
                 if plan.only is None else f"{len(cells)} finalist cell(s)")
        print(f"hear-gura evaluate: {shape}; {probe_text}{seeds_text}; output in {out_dir}"
              + (f"; {shard.world_size} processes" if shard.world_size > 1 else ""), flush=True)
        if any(plan.random_flags.values()):
            print("NOTE: rows marked (random weights) use tiny RANDOM fixture checkpoints: their scores test the "
                  "pipeline, not the models", flush=True)
    start = time.perf_counter()
    mine: List[CellOutcome] = []
    try:
        if not report_only:
            steps = study_steps(cells, plan.tasks, runner)
            for index, step in shard.take(list(enumerate(steps))):
                if step:
                    print(f"[task {index + 1}/{len(plan.tasks)}]{tag} {plan.tasks[index].folder}: "
                          f"{len(step)} variant(s)", flush=True)
                    runner.study_embeddings(step)
            shard.barrier()
        for index, cell in shard.take(list(enumerate(cells, 1))):
            prefix = f"[{index}/{len(cells)}]{tag} {cell.name}"
            finished = runner.finished_record(cell)
            if finished is not None:
                spread = f" +- {finished['seed_std']:.4f} over seeds" if finished.get("seed_std") is not None else ""
                print(f"{prefix}: done earlier ({finished['metric']} = {finished['score']:.4f}{spread}), skipped",
                      flush=True)
                mine.append(CellOutcome(cell, "skipped", finished))
                continue
            stale = runner.stale_reasons(cell)
            if report_only:
                why = f"finished under another identity ({'; '.join(stale)}), not shown" if stale else "not finished"
                print(f"{prefix}: {why}, not run (--report-only)", flush=True)
                mine.append(CellOutcome(cell, "not run"))
                continue
            random_weights = plan.random_flags[cell.variant.label]
            print(prefix + (" (random weights)" if random_weights else ""), flush=True)
            if stale:
                print(f"      an earlier result was computed under another identity ({'; '.join(stale)}): redoing",
                      flush=True)
            cell_start = time.perf_counter()
            outcome = runner.run(cell)
            mine.append(outcome)
            print(f"      {outcome.status} in {duration_text(time.perf_counter() - cell_start)}", flush=True)
            if outcome.status == "failed" and fail_fast:
                break
        result.outcomes = gather_outcomes(shard, cells, mine)
        if runner.cache_totals and settings.feature_cache:
            totals = runner.cache_totals
            looked_up = totals["hits"] + totals["misses"]
            print(f"feature cache {settings.feature_cache}{tag}: {totals['hits']:,} hits, {totals['misses']:,} misses"
                  + (f" ({100 * totals['hits'] / looked_up:.1f} % hit rate)" if looked_up else "")
                  + (f", {totals['corrupt']} corrupt entries recomputed" if totals["corrupt"] else ""), flush=True)
        if leader:
            result.files = write_reports(plan, result)
    except KeyboardInterrupt:
        command.update({"status": "interrupted", "finished_at": now_text()})
        if not report_only and leader:
            save_command_status(out_dir / "command.json", command)
        print(f"\ninterrupted{tag}: {sum(1 for o in mine if o.record)} cell(s) finished; run the same command "
              "again to resume (finished cells are skipped, the interrupted one is redone)", flush=True)
        raise
    except Exception as err:
        # Whatever stops the run (a full disk, a bug), command.json must not keep saying "running".
        if not report_only and leader:
            command.update({"status": "failed", "finished_at": now_text(), "error": f"{type(err).__name__}: {err}"})
            save_command_status(out_dir / "command.json", command)
        if isinstance(err, OSError):
            raise HearGuraError(
                f"evaluation stopped: {err}; is the disk full or {out_dir} not writable? "
                f"{sum(1 for o in mine if o.record)} cell(s) finished; fix it and run the same command "
                "again to resume"
            ) from err
        raise
    finally:
        shard.close()
    if report_only:
        print(f"{len(cells)} cell(s): {result.count('skipped')} finished, {result.count('not run')} not run; "
              f"wrote {', '.join(str(p) for p in result.files.values())}", flush=True)
        return result
    if leader:
        command.update({
            "status": "failed cells" if result.failed else "finished",
            "finished_at": now_text(),
            "seconds": round(time.perf_counter() - start, 1),
            "cells": {s: result.count(s) for s in ("done", "skipped", "failed")},
            "failed": [o.cell.name for o in result.failed],
        })
        save_command_status(out_dir / "command.json", command)
        result.command = command
        print(f"{len(cells)} cell(s): {result.count('done')} run, {result.count('skipped')} skipped, "
              f"{len(result.failed)} failed, in {duration_text(time.perf_counter() - start)}; "
              f"wrote {', '.join(str(p) for p in result.files.values())}", flush=True)
    return result


#: How long a rank may wait at a barrier for the others (one probe of a big task can take hours).
STUDY_TIMEOUT_HOURS = 72.0


def pin_gpu_for_subprocesses(local_rank: int) -> None:
    """Make the runners this rank starts use GPU ``local_rank`` (heareval's runner takes "cuda", i.e. the first)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible:
        devices = [d for d in visible.split(",") if d.strip()]
        if devices:
            os.environ["CUDA_VISIBLE_DEVICES"] = devices[local_rank % len(devices)]
        return
    import torch

    count = torch.cuda.device_count()
    if count:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(local_rank % count)


def gather_outcomes(shard: Any, cells: Sequence[Cell], mine: Sequence[CellOutcome]) -> List[CellOutcome]:
    """Every rank's cell outcomes, in cell order (one rank: its own)."""
    if shard.world_size <= 1:
        order = {id(c): i for i, c in enumerate(cells)}
        return sorted(mine, key=lambda o: order[id(o.cell)])
    import torch.distributed as dist

    index = {c.name: i for i, c in enumerate(cells)}
    local = [(index[o.cell.name], o.status, o.record, o.error, o.steps) for o in mine]
    gathered: List[Any] = [None] * shard.world_size
    dist.all_gather_object(gathered, local)
    merged = sorted((item for part in gathered for item in part), key=lambda item: item[0])
    return [CellOutcome(cells[i], status, record, error, list(steps)) for i, status, record, error, steps in merged]


def write_reports(plan: Plan, result: EvaluationResult) -> Dict[str, Path]:
    """``results.{csv,md,png}`` (fast probe: ``results-fastprobe.*``) and the per-class tables asked for."""
    records = result.records()
    ordered = [o.record for o in result.outcomes if o.record]
    # Published GURA rows are HEAR scores: never beside fast-probe figures.
    columns = {} if plan.fast else plan.reference_columns
    leaderboard = load_leaderboard() if columns else None
    table = build_table(plan.tasks, plan.variants, records, leaderboard, columns)
    table.notes = _notes(plan, result)
    stem = f"results-{FAST_FILE_TAG}" if plan.fast else "results"
    files = {kind: plan.out_dir / f"{stem}.{kind}" for kind in ("csv", "md", "png")}
    write_csv(files["csv"], ordered, table, leaderboard, columns)
    if plan.fast:
        write_markdown(files["md"], table, f"hear-gura evaluate: linear probe ({FAST_TITLE_TAG})",
                       extra=_knn_tables(plan, records))
    else:
        write_markdown(files["md"], table)
    title = (f"Linear probe ({FAST_TITLE_TAG}): primary test metric per task" if plan.fast
             else "Primary test metric per task")
    title += f", mean ± std over {plan.settings.seeds} seeds" if plan.settings.seeds > 1 else ""
    try:
        write_heatmap(files["png"], table, title)
    except ImportError as err:
        print(f"NOTE: {files['png'].name} not written ({err}); pip install matplotlib", flush=True)
        files.pop("png")
    for task, variants, suffix in plan.per_class:
        by_label = {o.cell.variant.label: o.record for o in result.outcomes
                    if o.record and o.cell.task.folder == task.folder}
        files.update(write_task_tables(plan.out_dir, task, variants, suffix, by_label, plan.settings.seed_list()))
    return files


def _knn_tables(plan: Plan, records: Dict[tuple, Dict[str, Any]]) -> List[Tuple[str, ScoreTable]]:
    """The fast probe's kNN scores (scene tasks), as a second table."""
    scene = [t for t in plan.tasks if t.embedding_type == "scene"]
    if not scene:
        return []
    table = ScoreTable([t.folder for t in scene], [t.primary_metric for t in scene])
    for variant in plan.variants:
        values = []
        for task in scene:
            record = records.get((variant.label, task.folder))
            value = (record or {}).get("secondary", {}).get(f"knn_{task.primary_metric}")
            values.append(None if value is None else float(value))
        table.rows.append(ScoreRow(variant.label, MEASURED, values))
    return [(f"kNN probe, scene tasks ({FAST_TITLE_TAG})", table)]


def _notes(plan: Plan, result: EvaluationResult) -> List[str]:
    settings, reference_columns = plan.settings, plan.reference_columns
    if plan.fast:
        notes = [
            f"FAST PROBE, NOT HEAR SCORES. Cells: the primary test metric (k-fold: mean over folds) of hear_gura's "
            "fast probe (hear_gura.analysis.fast_probe: one linear layer, fixed hyper-parameters, no grid search; "
            "scene tasks: on raw embeddings divided by their root mean square, fitted by L-BFGS along L2 penalties; "
            "event tasks: on the raw embeddings, Adam with early stopping; heareval's splits, event "
            "post-processing and metric functions), "
            "for exploring. Only `--probe heareval` (results.md) gives HEAR scores.",
        ]
        if reference_columns or plan.reference:
            notes.append("--reference gura: published HEAR scores are not shown beside fast-probe figures.")
    else:
        notes = [
            "Cells: the primary test metric of each task (its first `evaluation` metric; k-fold tasks: mean over "
            "folds), from heareval's prediction runner (MLP probe on frozen embeddings, "
            f"grid `{settings.probe_grid}`, {settings.grid_points} grid point(s)).",
        ]
    if settings.seeds > 1:
        notes.append(f"mean ± std: over {settings.seeds} probe runs per cell, seeds "
                     f"{', '.join(map(str, settings.seed_list()))} (42 is heareval's own seed); std is the sample "
                     "standard deviation over runs (over folds: score_std in the CSV); every run's score is in "
                     "the CSV's seed_scores.")
    notes.append("**Bold**: the best measured score of each task (lowest for error rates such as segment_1s_er); "
                 "n/a: the cell failed or was not run.")
    if any(o.record and not math.isfinite(float(o.record["score"])) for o in result.outcomes):
        notes.append("nan: heareval's score is undefined, e.g. an event-task probe that predicted no event "
                     "(sed_eval's F-measure is 0/0); kept as heareval wrote it, not replaced by 0"
                     + (" (a cell is nan when any of its runs is)." if settings.seeds > 1 else "."))
    if any(o.record and o.record.get("random_weights") for o in result.outcomes):
        notes.append("Rows marked *(random weights)* use tiny RANDOM fixture checkpoints (`hear-gura fixtures`): "
                     "their scores test the pipeline and say nothing about the pretrained models.")
    if reference_columns and not plan.fast:
        notes.append(f"Rows marked *(published)*: {SOURCE}; shown for official HEAR 2021 tasks only "
                     f"({', '.join(f'{t} = {c}' for t, c in reference_columns.items())}).")
    elif plan.reference and not plan.fast:
        notes.append("--reference gura: none of the tasks is an official HEAR 2021 task, so no published row.")
    if result.failed:
        notes.append("Failed cells: " + "; ".join(f"{o.cell.name} ({o.error.splitlines()[0]})" for o in result.failed))
    csv_name = f"results-{FAST_FILE_TAG}.csv" if plan.fast else "results.csv"
    notes.append(f"Written {now_text()}; details per cell in {csv_name}, the exact command in command.json.")
    return notes
