"""One cell = one ensemble variant x one task: heareval's embedding runner, then its prediction runner.

Each runner is a subprocess (``python -m hear_gura.heareval_compat``), so a
crash, a leak or a CUDA error stays inside its cell. When several variants
(of any ensembles) need a task, their embeddings come from one pass of their
distinct members (:mod:`hear_gura.harness.shared_embed`), in the same files
heareval's runner writes. Outputs under ``OUT``::

    embeddings/<variant slug>/hear_gura.<ensemble>[-options]/<task>/   heareval's own layout
    cells/<variant slug>/<task>.embeddings.json   written once the embeddings are complete
    cells/<variant slug>/<task>.json              the cell's result, written last
    logs/<variant slug>/<task>.{embeddings,predictions}.log
    logs/study/<task>.embeddings.{log,json}   the study's member pass on a task (json: passes, cache counts)

Resuming: a cell is skipped only when its result file records the same
identity as the cell would have now (:mod:`hear_gura.identity`): the resolved
ensemble configuration, the content of every checkpoint its members load, the
task's content (every clip's bytes), the versions of hear_gura and the
packages behind the numbers, and the probe settings. Embeddings are trusted
only when heareval's ``.done.embeddings`` marker *and* our
``.embeddings.json`` record with the same identity exist; anything else in the
task's embedding folder is deleted and recomputed. A cell whose identity
cannot be proven (weights that are not on this machine) is always recomputed.
Prediction outputs without a result file are deleted and recomputed. Every
file of ours is written atomically, so an interrupted run leaves nothing a
rerun would trust by mistake.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, TextIO, Tuple

from hear_gura.atomic import save_json
from hear_gura.errors import HearGuraError
from hear_gura.harness.grid import Variant
from hear_gura.harness.scores import TaskInfo, read_scores
from hear_gura.identity import differences, same_identity

DONE_EMBEDDINGS = ".done.embeddings"
DONE_PREDICTIONS = "prediction-done.json"
SCORES_FILE = "test.predicted-scores.json"
PROBE_GRIDS = ("default", "fast", "faster")
LOG_TAIL_LINES = 25


def now_text() -> str:
    """Local time, ISO 8601 with offset, to the second."""
    return datetime.now().astimezone().isoformat(timespec="seconds")


def load_json(path: Path) -> Optional[Any]:
    """The JSON in ``path``, or None when it is missing or unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def run_tool(
    args: Sequence[str], log_path: Path, cwd: Path, echo: bool = False, module: str = "hear_gura.heareval_compat"
) -> Tuple[int, float]:
    """Run ``python -m MODULE ARGS`` with its output in ``log_path``.

    Args:
        args: for the default module, ``embeddings ...`` or ``predictions ...``
            (heareval's runner arguments, run with the compatibility fixes).
        log_path: stdout and stderr go here (overwritten).
        cwd: working directory of the runner.
        echo: also copy the output to this process's stdout.
    Returns:
        (exit status, wall-clock seconds).
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", module, *args]
    start = time.perf_counter()
    with open(log_path, "w", encoding="utf-8", errors="replace") as log:
        log.write("$ " + " ".join(command) + "\n")
        log.flush()
        process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, text=True, errors="replace", bufsize=1)
        try:
            assert process.stdout is not None
            for line in process.stdout:
                log.write(line)
                if echo:
                    sys.stdout.write(line)
            status = process.wait()
        except BaseException:
            process.kill()
            process.wait()
            raise
    return status, time.perf_counter() - start


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of a log, for error messages."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.replace("\r", "\n").splitlines()[-lines:])


@dataclass(frozen=True)
class Settings:
    """What a cell's result depends on besides its variant and task.

    Attributes:
        manifest: absolute path of the checkpoint manifest, or None.
        feature_cache: a feature cache folder the study steps read and fill, or None.
        grid_points: heareval's ``--grid-points``.
        probe_grid: heareval's ``--grid`` (``default``, ``fast``, ``faster``).
    """

    manifest: Optional[str] = None
    grid_points: int = 8
    probe_grid: str = "default"
    feature_cache: Optional[str] = None
    identities: Mapping[str, Dict[str, Any]] = field(default_factory=dict, compare=False, hash=False, repr=False)

    def probe(self) -> Dict[str, Any]:
        return {"grid_points": self.grid_points, "grid": self.probe_grid}

    def ensemble_identity(self, variant: Variant) -> Dict[str, Any]:
        """The variant's :func:`hear_gura.identity.ensemble_identity` (computed by the plan, once per variant)."""
        try:
            return self.identities[variant.label]
        except KeyError:
            raise HearGuraError(f"no identity computed for {variant.label}; build Settings with "
                                "variant_identities()") from None


def variant_identities(variants: Sequence[Variant], manifest: Optional[str]) -> Dict[str, Dict[str, Any]]:
    """Each variant's ensemble identity: resolved config, checkpoint contents, versions (no weights loaded).

    ``manifest`` None means what the embedding runner would use: ``$HEAR_GURA_MANIFEST`` or none.

    Raises:
        CheckpointError: the manifest is missing or malformed, or maps a checkpoint to a missing path.
        ConfigError: a variant's options are invalid.
    """
    from hear_gura.identity import ensemble_identity
    from hear_gura.manifest import Manifest
    from hear_gura.registry import load_ensemble

    checkpoints = Manifest.load(manifest)
    return {v.label: ensemble_identity(load_ensemble(v.ensemble).with_options(**json.loads(v.options_json)),
                                       checkpoints) for v in variants}


@dataclass(frozen=True)
class Cell:
    """One (variant, task) pair and where its files live under ``out``."""

    variant: Variant
    task: TaskInfo
    out: Path

    @property
    def name(self) -> str:
        return f"{self.variant.label} x {self.task.folder}"

    @property
    def embeddings_root(self) -> Path:
        """``--embeddings-dir`` of this variant (one per variant, so folder names never collide)."""
        return self.out / "embeddings" / self.variant.slug

    @property
    def result_path(self) -> Path:
        return self.out / "cells" / self.variant.slug / f"{self.task.folder}.json"

    @property
    def embeddings_record_path(self) -> Path:
        return self.out / "cells" / self.variant.slug / f"{self.task.folder}.embeddings.json"

    def log_path(self, step: str) -> Path:
        return self.out / "logs" / self.variant.slug / f"{self.task.folder}.{step}.log"

    def study_log_path(self) -> Path:
        """Log of the member pass this cell's task shares with the other variants of the study."""
        return self.out / "logs" / "study" / f"{self.task.folder}.embeddings.log"

    def embedding_dir(self) -> Optional[Path]:
        """heareval's folder for this task (``<root>/<module>[-options]/<task>``), or None before it exists."""
        found = sorted(self.embeddings_root.glob(f"*/{self.task.folder}"))
        if len(found) > 1:
            raise HearGuraError(f"several embedding folders for {self.name}: {', '.join(map(str, found))}")
        return found[0] if found else None

    def embedding_identity(self, settings: Settings) -> Dict[str, Any]:
        """What this cell's embeddings depend on (see :mod:`hear_gura.identity`)."""
        return {"module": self.variant.module, "options": self.variant.options,
                **settings.ensemble_identity(self.variant),
                "task": {"folder": self.task.folder, "content": self.task.fingerprint}}

    def identity(self, settings: Settings) -> Dict[str, Any]:
        """What this cell's score depends on: its embeddings' identity and the probe settings."""
        return {**self.embedding_identity(settings), "probe": settings.probe()}


@dataclass
class CellOutcome:
    """What happened to a cell: ``status`` is ``done``, ``skipped`` or ``failed``."""

    cell: Cell
    status: str
    record: Optional[Dict[str, Any]] = None
    error: str = ""
    steps: List[str] = field(default_factory=list)


def embedding_width(embedding_dir: Path) -> Optional[int]:
    """The embedding width heareval recorded (``<split>.embedding-dimensions.json`` is ``[count, width]``)."""
    for path in sorted(embedding_dir.glob("*.embedding-dimensions.json")):
        data = load_json(path)
        if isinstance(data, list) and len(data) == 2:
            return int(data[1])
    return None


def clear_predictions(embedding_dir: Path) -> None:
    """Delete the prediction runner's outputs in an embedding folder (it skips folders it marked done)."""
    for name in (DONE_PREDICTIONS, SCORES_FILE, "prediction.log"):
        (embedding_dir / name).unlink(missing_ok=True)
    for path in embedding_dir.glob("*.predictions.pkl"):
        path.unlink()
    shutil.rmtree(embedding_dir / "lightning_logs", ignore_errors=True)


class CellRunner:
    """Runs cells with fixed :class:`Settings`; see the module docstring for the files and resume rules.

    Args:
        settings: manifest and probe settings.
        echo: copy the runners' output to stdout (else only to the logs).
        stream: where progress lines go.
    """

    def __init__(self, settings: Settings, echo: bool = False, stream: Optional[TextIO] = None) -> None:
        self.settings = settings
        self.echo = echo
        self.stream = stream or sys.stdout
        self.cache_totals: Counter = Counter()

    def say(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def finished_record(self, cell: Cell) -> Optional[Dict[str, Any]]:
        """The cell's result if it was finished under the identity the cell has now, else None."""
        record = load_json(cell.result_path)
        if isinstance(record, dict) and same_identity(record.get("identity"), cell.identity(self.settings)):
            return record
        return None

    def stale_reasons(self, cell: Cell) -> List[str]:
        """Why a finished result of this cell cannot be reused (empty: none exists, or it can)."""
        record = load_json(cell.result_path)
        if not isinstance(record, dict):
            return []
        return differences(record.get("identity"), cell.identity(self.settings))

    def run(self, cell: Cell) -> CellOutcome:
        """Run (or skip) one cell; never raises for a failing runner (the outcome says ``failed``)."""
        record = self.finished_record(cell)
        if record is not None:
            return CellOutcome(cell, "skipped", record)
        cell.result_path.unlink(missing_ok=True)
        outcome = CellOutcome(cell, "failed")
        embed = self._embeddings(cell, outcome)
        if embed is None:
            return outcome
        embedding_dir, embed_seconds, width = embed
        predicted = self._predictions(cell, embedding_dir, outcome)
        if predicted is None:
            return outcome
        scores, predict_seconds = predicted
        identity = cell.identity(self.settings)
        record = {
            "ensemble": cell.variant.ensemble,
            "variant": cell.variant.label,
            "options": cell.variant.options,
            "task": cell.task.folder,
            "task_name": cell.task.task_name,
            "embedding_type": cell.task.embedding_type,
            "metric": scores.metric,
            "score": scores.score,
            "score_std": scores.score_std,
            "folds": scores.folds,
            "secondary": scores.secondary,
            "embedding_width": width,
            "embed_seconds": round(embed_seconds, 2),
            "predict_seconds": round(predict_seconds, 2),
            "random_weights": bool(identity["random_weights"]),
            "identity": identity,
            "probe": self.settings.probe(),
            "task_path": str(cell.task.path),
            "embedding_dir": str(embedding_dir),
            "finished_at": now_text(),
        }
        save_json(cell.result_path, record)
        outcome.status, outcome.record = "done", record
        return outcome

    def embeddings_ready(self, cell: Cell) -> bool:
        """Whether a cell's embeddings are complete and recorded with these settings."""
        existing = cell.embedding_dir()
        recorded = load_json(cell.embeddings_record_path)
        return (existing is not None and (existing / DONE_EMBEDDINGS).exists() and isinstance(recorded, dict)
                and same_identity(recorded.get("identity"), cell.embedding_identity(self.settings)))

    def study_embeddings(self, cells: Sequence[Cell]) -> bool:
        """Embed one task for several variants (any ensembles) from one pass of their distinct members.

        Writes heareval's folders and our records, so :meth:`run` then reuses
        them. Returns False (and the cells fall back to heareval's runner, one
        each) if the study step fails.
        """
        task = cells[0].task
        for cell in cells:
            existing = cell.embedding_dir()
            if existing is not None:
                shutil.rmtree(existing)
            cell.embeddings_record_path.unlink(missing_ok=True)
        variants = [{"ensemble": c.variant.ensemble, "options": c.variant.options,
                     "embeddings_dir": str(c.embeddings_root.resolve())} for c in cells]
        log = cells[0].study_log_path()
        report = log.with_suffix(".json")
        args = ["--tasks-dir", str(task.path.parent), "--task", task.folder, "--variants", json.dumps(variants),
                "--report", str(report.resolve())]
        if self.settings.manifest:
            args += ["--model", self.settings.manifest]
        if self.settings.feature_cache:
            args += ["--feature-cache", self.settings.feature_cache]
        self.say(f"      embeddings of {len(cells)} variant(s) on {task.folder} from one member pass ...")
        report.unlink(missing_ok=True)
        status, seconds = run_tool(args, log, cwd=cells[0].out.resolve(), echo=self.echo,
                                   module="hear_gura.harness.shared_embed")
        if status != 0 or not all(c.embedding_dir() and (c.embedding_dir() / DONE_EMBEDDINGS).exists() for c in cells):
            self.say(f"      study embeddings FAILED (status {status}, log: {log}); embedding variants one by one")
            return False
        summary = load_json(report) or {}
        for cell in cells:
            save_json(cell.embeddings_record_path, {
                "identity": cell.embedding_identity(self.settings), "seconds": round(seconds / len(cells), 2),
                "shared_with": len(cells), "shared_seconds": round(seconds, 2),
                "member_passes": summary.get("member_passes_total"),
                "width": embedding_width(cell.embedding_dir()), "finished_at": now_text()})
        line = (f"      study embeddings: {seconds:.1f} s for {len(cells)} variant(s), "
                f"{summary.get('members', '?')} distinct member(s), {summary.get('member_passes_total', '?')} "
                "member forward pass(es)")
        self.say(line)
        if "feature_cache" in summary:
            self.say("      " + summary["feature_cache"]["summary"])
            self.cache_totals.update({k: summary["feature_cache"][k] for k in ("hits", "misses", "corrupt")})
        return True

    # ----------------------------------------------------------------- steps
    def _fail(self, outcome: CellOutcome, step: str, message: str, log: Optional[Path] = None) -> None:
        tail = log_tail(log) if log else ""
        outcome.error = f"{step}: {message}" + (f"\n--- last lines of {log} ---\n{tail}" if tail else "")
        self.say(f"      {step} FAILED: {message}" + (f" (log: {log})" if log else ""))
        if tail:
            self.say("      | " + tail.replace("\n", "\n      | "))

    def _embeddings(self, cell: Cell, outcome: CellOutcome) -> Optional[Tuple[Path, float, Optional[int]]]:
        identity = cell.embedding_identity(self.settings)
        existing = cell.embedding_dir()
        if self.embeddings_ready(cell):
            seconds = float(load_json(cell.embeddings_record_path).get("seconds", 0.0))
            self.say(f"      embeddings: done earlier ({seconds:.1f} s), reused")
            return existing, seconds, embedding_width(existing)
        if existing is not None:  # half-written, or from other settings: never trusted
            shutil.rmtree(existing)
        cell.embeddings_record_path.unlink(missing_ok=True)
        args = ["embeddings", cell.variant.module, "--tasks-dir", str(cell.task.path.parent),
                "--task", cell.task.folder, "--embeddings-dir", str(cell.embeddings_root.resolve()),
                "--model-options", cell.variant.options_json]
        if self.settings.manifest:
            args += ["--model", self.settings.manifest]
        log = cell.log_path("embeddings")
        outcome.steps.append("embeddings")
        status, seconds = run_tool(args, log, cwd=cell.out.resolve(), echo=self.echo)
        found = cell.embedding_dir()
        if status != 0 or found is None or not (found / DONE_EMBEDDINGS).exists():
            self._fail(outcome, "embeddings", f"heareval's embedding runner exited with status {status}", log)
            return None
        width = embedding_width(found)
        save_json(cell.embeddings_record_path, {"identity": identity, "seconds": round(seconds, 2),
                                                "width": width, "finished_at": now_text()})
        self.say(f"      embeddings: {seconds:.1f} s (width {width})")
        return found, seconds, width

    def _predictions(self, cell: Cell, embedding_dir: Path, outcome: CellOutcome) -> Optional[Tuple[Any, float]]:
        clear_predictions(embedding_dir)
        args = ["predictions", str(embedding_dir.resolve()), "--grid-points", str(self.settings.grid_points),
                "--grid", self.settings.probe_grid]
        log = cell.log_path("predictions")
        outcome.steps.append("predictions")
        status, seconds = run_tool(args, log, cwd=cell.out.resolve(), echo=self.echo)
        if status != 0 or not (embedding_dir / SCORES_FILE).exists():
            self._fail(outcome, "predictions", f"heareval's prediction runner exited with status {status}", log)
            return None
        try:
            scores = read_scores(embedding_dir / SCORES_FILE, cell.task.metrics)
        except HearGuraError as err:
            self._fail(outcome, "predictions", str(err), log)
            return None
        spread = f" +- {scores.score_std:.4f} over {scores.folds} folds" if scores.score_std is not None else ""
        self.say(f"      predictions: {seconds:.1f} s -> {scores.metric} = {scores.score:.4f}{spread}")
        return scores, seconds
