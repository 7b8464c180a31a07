"""``hear-gura evaluate``: every ensemble variant on every task, through heareval, resumably.

Order of work: validate everything that can be validated cheaply (ensemble
names, the option grid, the manifest, the task folders, the reference), write
``command.json``, run the cells (variants outer, tasks inner), then write the
reports. A failing cell is reported and skipped; the reports still cover the
others and the command exits with an error naming the failed cells.
"""

from __future__ import annotations

import contextlib
import math
import platform
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from hear_gura.atomic import save_json
from hear_gura.errors import HearGuraError
from hear_gura.harness.grid import Variant, build_variants, canonical_json, parse_ensembles, parse_grid
from hear_gura.harness.leaderboard import SOURCE, leaderboard_column, load_leaderboard
from hear_gura.harness.report import build_table, write_csv, write_heatmap, write_markdown
from hear_gura.harness.runner import (
    PROBE_GRIDS, Cell, CellOutcome, CellRunner, Settings, load_json, now_text, uses_random_weights,
)
from hear_gura.harness.scores import TaskInfo, discover_tasks

REFERENCES = ("gura",)
VERSIONED = ("hear_gura", "torch", "transformers", "heareval", "pytorch-lightning", "torchcrepe", "espnet-s3prl")


def versions() -> Dict[str, str]:
    """Versions of python and of the packages the numbers depend on."""
    found = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


@dataclass
class EvaluationResult:
    """What :func:`evaluate` did: the outcomes per cell and the files written."""

    out: Path
    outcomes: List[CellOutcome] = field(default_factory=list)
    files: Dict[str, Path] = field(default_factory=dict)

    @property
    def failed(self) -> List[CellOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


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
    argv: Optional[Sequence[str]] = None,
    arguments: Optional[Dict[str, Any]] = None,
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
        argv, arguments: recorded in ``command.json`` (default ``sys.argv``).
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
    manifest = None
    if model:
        manifest_path = Path(model).expanduser()
        if not manifest_path.is_file():
            raise HearGuraError(f"--model {model} does not exist (a checkpoint manifest; `hear-gura fixtures DIR` "
                                "writes DIR/checkpoints.json)")
        manifest = str(manifest_path.resolve())
    names = parse_ensembles(ensembles)
    variants = build_variants(names, parse_grid(grid), manifest)
    task_infos = discover_tasks(tasks_dir, tasks)
    plan = Plan(
        out_dir=Path(out).expanduser().absolute(),
        variants=variants,
        tasks=task_infos,
        random_flags={v.label: uses_random_weights(v, manifest) for v in variants},
        settings=Settings(manifest=manifest, grid_points=grid_points, probe_grid=probe_grid),
        reference=reference,
        reference_columns={t.folder: c for t in task_infos if (c := leaderboard_column(t.folder)) is not None}
        if reference == "gura" else {},
        command={
            "argv": list(sys.argv if argv is None else argv),
            "arguments": arguments or {
                "tasks_dir": str(tasks_dir), "ensembles": names, "grid": grid, "model": model, "out": str(out),
                "grid_points": grid_points, "probe_grid": probe_grid, "reference": reference,
                "tasks": list(tasks) if tasks else None,
            },
            "cwd": str(Path.cwd()),
            "executable": sys.executable,
            "versions": versions(),
        },
    )
    if reference and not plan.reference_columns:
        print("NOTE: --reference gura: none of the tasks is an official HEAR 2021 task folder "
              "(e.g. speech_commands-v0.0.2-5h), so no published scores are added", flush=True)
    plan.out_dir.mkdir(parents=True, exist_ok=True)
    if report_only:  # reads finished cells, writes the reports atomically: no lock needed
        return run_plan(plan, report_only=True)
    with _exclusive(plan.out_dir):
        return run_plan(plan, verbose=verbose, fail_fast=fail_fast)


@dataclass
class Plan:
    """A validated evaluation: what :func:`run_plan` runs.

    Attributes:
        out_dir: the output folder (absolute).
        variants: rows, in order; ``tasks``: columns, in order.
        random_flags: variant label -> uses RANDOM fixture weights.
        settings: manifest and probe settings shared by all cells.
        reference, reference_columns: the ``--reference`` and its official task folder -> column map.
        command: what ``command.json`` records besides times and status.
    """

    out_dir: Path
    variants: List[Variant]
    tasks: List[TaskInfo]
    random_flags: Dict[str, bool]
    settings: Settings
    reference: Optional[str]
    reference_columns: Dict[str, str]
    command: Dict[str, Any]


@contextlib.contextmanager
def _exclusive(out_dir: Path) -> Iterator[None]:
    """Hold ``out_dir/.evaluate.lock`` so two runs never write one output folder (released on exit or death)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    with open(out_dir / ".evaluate.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise HearGuraError(f"another hear-gura evaluate is writing to {out_dir}; wait for it or use another "
                                "--out") from None
        yield


def share_key(cell: Cell) -> Tuple[str, str, str]:
    """Cells with equal keys can take their embeddings from one member pass."""
    from hear_gura.shared import MEMBER_OPTIONS

    members = {k: v for k, v in cell.variant.options.items() if k in MEMBER_OPTIONS}
    return cell.task.folder, cell.variant.ensemble, canonical_json(members)


def run_plan(
    plan: Plan, verbose: bool = False, fail_fast: bool = False, report_only: bool = False
) -> EvaluationResult:
    """Run every cell of a plan (skipping finished ones), then write the reports and ``command.json``.

    With ``report_only`` nothing runs and ``command.json`` is left alone: the
    reports cover the finished cells.
    """
    out_dir, command = plan.out_dir, dict(plan.command, started_at=now_text(), status="running")
    if not report_only:
        save_json(out_dir / "command.json", command)
    result = EvaluationResult(out_dir)
    runner = CellRunner(plan.settings, echo=verbose)
    cells = [Cell(v, t, out_dir) for v in plan.variants for t in plan.tasks]
    settings = plan.settings
    print(f"hear-gura evaluate: {len(plan.variants)} variant(s) x {len(plan.tasks)} task(s) = {len(cells)} cell(s); "
          f"probe grid {settings.probe_grid!r}, {settings.grid_points} grid point(s); output in {out_dir}", flush=True)
    if any(plan.random_flags.values()):
        print("NOTE: rows marked (random weights) use tiny RANDOM fixture checkpoints: their scores test the "
              "pipeline, not the models", flush=True)
    start = time.perf_counter()
    try:
        for index, cell in enumerate(cells, 1):
            prefix = f"[{index}/{len(cells)}] {cell.name}"
            finished = runner.finished_record(cell)
            if finished is not None:
                print(f"{prefix}: done earlier ({finished['metric']} = {finished['score']:.4f}), skipped", flush=True)
                result.outcomes.append(CellOutcome(cell, "skipped", finished))
                continue
            if report_only:
                print(f"{prefix}: not finished, not run (--report-only)", flush=True)
                result.outcomes.append(CellOutcome(cell, "not run"))
                continue
            random_weights = plan.random_flags[cell.variant.label]
            print(prefix + (" (random weights)" if random_weights else ""), flush=True)
            cell_start = time.perf_counter()
            mates = [c for c in cells if share_key(c) == share_key(cell) and runner.finished_record(c) is None
                     and not runner.embeddings_ready(c)]
            if len(mates) > 1 and cell in mates:
                runner.shared_embeddings(mates)
            outcome = runner.run(cell, random_weights)
            result.outcomes.append(outcome)
            print(f"      {outcome.status} in {_duration(time.perf_counter() - cell_start)}", flush=True)
            if outcome.status == "failed" and fail_fast:
                break
    except KeyboardInterrupt:
        command.update({"status": "interrupted", "finished_at": now_text()})
        save_json(out_dir / "command.json", command)
        print(f"\ninterrupted: {sum(1 for o in result.outcomes if o.record)} cell(s) finished; run the same command "
              "again to resume (finished cells are skipped, the interrupted one is redone)", flush=True)
        raise

    result.files = write_reports(plan, result)
    if report_only:
        print(f"{len(cells)} cell(s): {result.count('skipped')} finished, {result.count('not run')} not run; "
              f"wrote {', '.join(str(p) for p in result.files.values())}", flush=True)
        return result
    command.update({
        "status": "failed cells" if result.failed else "finished",
        "finished_at": now_text(),
        "seconds": round(time.perf_counter() - start, 1),
        "cells": {s: result.count(s) for s in ("done", "skipped", "failed")},
        "failed": [o.cell.name for o in result.failed],
    })
    save_json(out_dir / "command.json", command)
    print(f"{len(cells)} cell(s): {result.count('done')} run, {result.count('skipped')} skipped, "
          f"{len(result.failed)} failed, in {_duration(time.perf_counter() - start)}; "
          f"wrote {', '.join(str(p) for p in result.files.values())}", flush=True)
    return result


def write_reports(plan: Plan, result: EvaluationResult) -> Dict[str, Path]:
    """``results.csv``, ``results.md`` and (with matplotlib) ``results.png`` from the finished cells."""
    records = {(o.cell.variant.label, o.cell.task.folder): o.record for o in result.outcomes if o.record}
    ordered = [o.record for o in result.outcomes if o.record]
    leaderboard = load_leaderboard() if plan.reference_columns else None
    table = build_table(plan.tasks, plan.variants, plan.random_flags, records, leaderboard, plan.reference_columns)
    table.notes = _notes(plan, result)
    files = {"csv": plan.out_dir / "results.csv", "md": plan.out_dir / "results.md",
             "png": plan.out_dir / "results.png"}
    write_csv(files["csv"], ordered, table, leaderboard, plan.reference_columns)
    write_markdown(files["md"], table)
    try:
        write_heatmap(files["png"], table)
    except ImportError as err:
        print(f"NOTE: results.png not written ({err}); pip install matplotlib", flush=True)
        files.pop("png")
    return files


def _notes(plan: Plan, result: EvaluationResult) -> List[str]:
    settings, reference_columns = plan.settings, plan.reference_columns
    notes = [
        "Cells: the primary test metric of each task (its first `evaluation` metric; k-fold tasks: mean over "
        "folds), from heareval's prediction runner (MLP probe on frozen embeddings, "
        f"grid `{settings.probe_grid}`, {settings.grid_points} grid point(s)).",
        "**Bold**: the best measured score of each task (lowest for error rates such as segment_1s_er); "
        "n/a: the cell failed or was not run.",
    ]
    if any(o.record and not math.isfinite(float(o.record["score"])) for o in result.outcomes):
        notes.append("nan: heareval's score is undefined, e.g. an event-task probe that predicted no event "
                     "(sed_eval's F-measure is 0/0); kept as heareval wrote it, not replaced by 0.")
    if any(plan.random_flags.values()):
        notes.append("Rows marked *(random weights)* use tiny RANDOM fixture checkpoints (`hear-gura fixtures`): "
                     "their scores test the pipeline and say nothing about the pretrained models.")
    if reference_columns:
        notes.append(f"Rows marked *(published)*: {SOURCE}; shown for official HEAR 2021 tasks only "
                     f"({', '.join(f'{t} = {c}' for t, c in reference_columns.items())}).")
    elif plan.reference:
        notes.append("--reference gura: none of the tasks is an official HEAR 2021 task, so no published row.")
    if result.failed:
        notes.append("Failed cells: " + "; ".join(f"{o.cell.name} ({o.error.splitlines()[0]})" for o in result.failed))
    notes.append(f"Written {now_text()}; details per cell in results.csv, the exact command in command.json.")
    return notes
