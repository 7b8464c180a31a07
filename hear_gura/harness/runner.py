"""One cell = one ensemble variant x one task x one probe: embeddings, then the probe's runs (one per seed).

Each step is a subprocess, so a crash, a leak or a CUDA error stays inside its
cell: heareval's embedding runner (``python -m hear_gura.heareval_compat``),
then :mod:`hear_gura.harness.probe_run` (heareval's prediction runner once per
seed, or the fast probe). When several variants (of any ensembles) need a
task, their embeddings come from one pass of their distinct members
(:mod:`hear_gura.harness.shared_embed`), in the same files heareval's runner
writes. Outputs under ``OUT``::

    embeddings/<variant slug>/hear_gura.<ensemble>[-options]/<task>/   heareval's own layout
    cells/<variant slug>/<task>.embeddings.json   written once the embeddings are complete
    cells/<variant slug>/<task>.json              the cell's result (heareval's probe), written last
    cells/<variant slug>/<task>.fastprobe.json    the cell's result with the fast probe (not HEAR scores)
    cells/<variant slug>/<task>/seed-<s>/         one run of heareval's probe: its test.predicted-scores.json,
                                                  <test split>.predictions.pkl (test predictions), run.json
                                                  (seed, seconds, per-class scores)
    cells/<variant slug>/<task>/fastprobe-seed-<s>/   one fast-probe run: fastprobe.json, run.json
    logs/<variant slug>/<task>.{embeddings,predictions,fastprobe}.log
    logs/study/<task>.embeddings.{log,json}   the study's member pass on a task (json: passes, cache counts)

Seeds: ``--seeds N`` runs the probe N times, run ``i`` with seed ``42 + i``
(42 is heareval's own fixed seed, so run 0 is exactly heareval's run). The
cell's score is the mean over runs, ``seed_std`` their sample standard
deviation; every run is kept (``runs`` in the result, a folder each).

Resuming: a cell is skipped only when its result file is complete and records
the same identity as the cell would have now (:mod:`hear_gura.identity`): the
resolved ensemble configuration, the content of every checkpoint its members
load, the task's content (every clip's bytes), the versions of hear_gura and
the packages behind the numbers, and the probe (which one, its settings, the
list of seeds: N seeds is never the same cell as one). A run of one seed is
reused, inside a redone cell, when the cell's previous result holds it under
the same embedding identity and probe settings: going from 1 to 3 seeds runs
2 more probes; an interrupted multi-seed cell (its result saved after each
run, marked incomplete) resumes at the next seed. Embeddings are trusted
only when heareval's ``.done.embeddings`` marker *and* our
``.embeddings.json`` record with the same identity exist; anything else in the
task's embedding folder is deleted and recomputed. A cell whose identity
cannot be proven (weights that are not on this machine) is always recomputed.
Every file of ours is written atomically, so an interrupted run leaves
nothing a rerun would trust by mistake.
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
from hear_gura.harness.probe_progress import ProbeProgress
from hear_gura.harness.probe_run import (
    FAST_FILE, FIRST_SEED, PREFIXES, RUN_FILE, SCORES_FILE, clear_outputs, seed_folder_name,
)
from hear_gura.harness.scores import TaskInfo, TaskScores, combine_runs, read_fast_scores, read_scores
from hear_gura.identity import canonical, differences, same_identity
from hear_gura.probe_names import FAST_FILE_TAG, FAST_TITLE_TAG

DONE_EMBEDDINGS = ".done.embeddings"
PROBE_GRIDS = ("default", "fast", "faster")
#: ``--probe``: heareval's prediction runner (HEAR scores) or the fast probe (exploring; never HEAR scores).
PROBES = ("heareval", "fast")
LOG_TAIL_LINES = 25
#: A runner's output line holding this marks progress: the rest of the line is shown on the console too.
PROGRESS_PREFIX = "hear_gura progress: "


def now_text() -> str:
    """Local time, ISO 8601 with offset, to the second."""
    return datetime.now().astimezone().isoformat(timespec="seconds")


def load_json(path: Path) -> Optional[Any]:
    """The JSON in ``path``, or None when it is missing or unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def run_fast_in_process(embedding_dir: Path, seeds: Sequence[int], keep: Path, device: str, log_path: Path,
                        echo: bool = False) -> Tuple[int, float]:
    """The fast probe's runs in THIS process (no subprocess: it holds no global state, and its imports,
    torch and heareval's metric code, are paid once per ``evaluate`` instead of once per cell).

    Output goes to ``log_path`` as a subprocess's would; an exception is logged and gives status 1.
    Returns (exit status, wall-clock seconds).
    """
    import contextlib
    import traceback

    from hear_gura.harness.probe_run import run_fast

    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(log_path, "w", encoding="utf-8", errors="replace") as log:
        log.write(f"$ (in process) fast probe {embedding_dir} --seeds {','.join(map(str, seeds))} --keep {keep}\n")
        log.flush()
        stream = _Tee(log, sys.stdout) if echo else log
        with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
            try:
                status = run_fast(embedding_dir, seeds, keep, device)
            except Exception:  # noqa: BLE001 - reported like a failed subprocess: the log holds the traceback
                traceback.print_exc()
                status = 1
    return status, time.perf_counter() - start


class _Tee:
    """Writes to several text streams."""

    def __init__(self, *streams: TextIO) -> None:
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
        return len(text)

    def flush(self) -> None:
        for stream in self.streams:
            stream.flush()


def run_tool(
    args: Sequence[str], log_path: Path, cwd: Path, echo: bool = False, module: str = "hear_gura.heareval_compat",
    progress: Optional[ProbeProgress] = None,
) -> Tuple[int, float]:
    """Run ``python -m MODULE ARGS`` with its output in ``log_path``.

    Args:
        args: for the default module, ``embeddings ...`` or ``predictions ...``
            (heareval's runner arguments, run with the compatibility fixes).
        log_path: stdout and stderr go here (overwritten).
        cwd: working directory of the runner.
        echo: also copy the output to this process's stdout.
        progress: without ``echo``, reads every output line and shows the
            console lines it returns (heareval's probe: which training, which epoch).
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
                elif PROGRESS_PREFIX in line:  # long steps say how far they are (after any \r-bars)
                    log.flush()
                    sys.stdout.write("      " + line[line.rindex(PROGRESS_PREFIX) + len(PROGRESS_PREFIX):])
                    sys.stdout.flush()
                elif progress is not None:
                    news = progress.feed(line)
                    if news is not None:
                        log.flush()
                        sys.stdout.write(f"      {news}\n")
                        sys.stdout.flush()
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
        seeds: probe runs per cell; run ``i`` uses seed ``42 + i``.
        probe_kind: ``heareval`` (HEAR scores) or ``fast`` (:mod:`hear_gura.analysis.fast_probe`).
        device: the fast probe's torch device (``auto``: ``cuda`` when there is one; heareval's runner
            picks its own).
    """

    manifest: Optional[str] = None
    grid_points: int = 8
    probe_grid: str = "default"
    feature_cache: Optional[str] = None
    identities: Mapping[str, Dict[str, Any]] = field(default_factory=dict, compare=False, hash=False, repr=False)
    seeds: int = 1
    probe_kind: str = "heareval"
    device: str = "auto"

    def seed_list(self) -> List[int]:
        """The seed of each run: ``42, 43, ...`` (42 is heareval's own)."""
        return [FIRST_SEED + i for i in range(self.seeds)]

    def probe_settings(self, embedding_type: str) -> Dict[str, Any]:
        """What one probe run on a task of this ``embedding_type`` depends on besides its embeddings and its seed
        (the fast probe's settings differ between scene and event tasks: :func:`fast_probe_hparams`)."""
        if self.probe_kind == "fast":
            return {"kind": "fast", "hparams": fast_probe_hparams(embedding_type)}
        return {"kind": "heareval", "grid_points": self.grid_points, "grid": self.probe_grid}

    def probe(self, embedding_type: str) -> Dict[str, Any]:
        """The probe part of a cell's identity: settings and the list of seeds."""
        return {**self.probe_settings(embedding_type), "seeds": self.seed_list()}

    def run_probe(self, seed: int, embedding_type: str) -> Dict[str, Any]:
        """The probe part of one run's identity."""
        return {**self.probe_settings(embedding_type), "seed": seed}

    def ensemble_identity(self, variant: Variant) -> Dict[str, Any]:
        """The variant's :func:`hear_gura.identity.ensemble_identity` (computed by the plan, once per variant)."""
        try:
            return self.identities[variant.label]
        except KeyError:
            raise HearGuraError(f"no identity computed for {variant.label}; build Settings with "
                                "variant_identities()") from None


def fast_probe_hparams(embedding_type: str) -> Dict[str, Any]:
    """The fixed hyper-parameters of the fast probe that scores variants on a task of this ``embedding_type``
    (:func:`hear_gura.analysis.fast_probe.variant_probe`), for identities: as JSON gives them back (tuples as
    lists), so a recorded identity and the current one compare value by value."""
    from dataclasses import asdict

    from hear_gura.analysis.fast_probe import variant_probe

    return json.loads(json.dumps(asdict(variant_probe(embedding_type))))


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
    """One (variant, task) pair, probed with ``probe`` (``heareval`` or ``fast``), and where its files live."""

    variant: Variant
    task: TaskInfo
    out: Path
    probe: str = "heareval"

    @property
    def name(self) -> str:
        return f"{self.variant.label} x {self.task.folder}"

    @property
    def embeddings_root(self) -> Path:
        """``--embeddings-dir`` of this variant (one per variant, so folder names never collide)."""
        return self.out / "embeddings" / self.variant.slug

    @property
    def result_path(self) -> Path:
        """``<task>.json`` (heareval's probe) or ``<task>.fastprobe.json``: separate results."""
        tag = f".{FAST_FILE_TAG}" if self.probe == "fast" else ""
        return self.out / "cells" / self.variant.slug / f"{self.task.folder}{tag}.json"

    @property
    def runs_dir(self) -> Path:
        """Where each probe run keeps its outputs (one sub-folder per seed)."""
        return self.out / "cells" / self.variant.slug / self.task.folder

    def run_dir(self, seed: int) -> Path:
        return self.runs_dir / seed_folder_name(self.probe, seed)

    @property
    def probe_step(self) -> str:
        """The probe step's name in logs: ``predictions`` (heareval's runner) or ``fastprobe``."""
        return FAST_FILE_TAG if self.probe == "fast" else "predictions"

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
        return {**self.embedding_identity(settings), "probe": settings.probe(self.task.embedding_type)}


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
    clear_outputs(embedding_dir)


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
        """The cell's result if it was finished (every seed) under the identity the cell has now, else None."""
        record = load_json(cell.result_path)
        if (isinstance(record, dict) and record.get("complete") is True
                and same_identity(record.get("identity"), cell.identity(self.settings))):
            return record
        return None

    def stale_reasons(self, cell: Cell) -> List[str]:
        """Why a finished result of this cell cannot be reused (empty: none exists, or it can)."""
        record = load_json(cell.result_path)
        if not isinstance(record, dict):
            return []
        current = cell.identity(self.settings)
        reasons = differences(record.get("identity"), current)
        recorded = record.get("identity", {}).get("probe") if isinstance(record.get("identity"), dict) else None
        if "probe" in reasons and isinstance(recorded, dict):
            reasons[reasons.index("probe")] = _probe_change(recorded, current["probe"])
        return reasons

    def reusable_runs(self, cell: Cell) -> Tuple[Optional[Dict[str, Any]], Dict[int, Dict[str, Any]]]:
        """(the cell's previous result, its runs this cell can reuse: same embeddings, same probe settings, seed).

        A run is reused only if the previous result (finished or interrupted,
        any seed count) has the embedding identity the cell has now, records
        that run's probe settings and seed, and its folder is still there.
        """
        previous = load_json(cell.result_path)
        if not isinstance(previous, dict) or not isinstance(previous.get("identity"), dict):
            return None, {}
        recorded = {k: v for k, v in previous["identity"].items() if k != "probe"}
        if not same_identity(recorded, cell.embedding_identity(self.settings)):
            return previous, {}
        kept = {}
        for run in previous.get("runs") or []:
            seed = run.get("seed") if isinstance(run, dict) else None
            if not isinstance(seed, int):
                continue
            if (canonical(run.get("probe")) == canonical(self.settings.run_probe(seed, cell.task.embedding_type))
                    and (cell.run_dir(seed) / RUN_FILE).is_file()):
                kept[seed] = run
        return previous, kept

    def run(self, cell: Cell) -> CellOutcome:
        """Run (or skip) one cell; never raises for a failing runner (the outcome says ``failed``)."""
        record = self.finished_record(cell)
        if record is not None:
            return CellOutcome(cell, "skipped", record)
        previous, runs = self.reusable_runs(cell)
        cell.result_path.unlink(missing_ok=True)
        outcome = CellOutcome(cell, "failed")
        seeds = self.settings.seed_list()
        runs = {seed: run for seed, run in runs.items() if seed in seeds}
        if runs:
            self.say(f"      probe run(s) of seed(s) {', '.join(map(str, sorted(runs)))}: done earlier, reused")
        missing = [seed for seed in seeds if seed not in runs]
        if missing:
            embed = self._embeddings(cell, outcome)
            if embed is None:
                return outcome
            embedding_dir, embed_seconds, width = embed
        else:  # every run reused: the embeddings are not needed again
            assert previous is not None
            embedding_dir = Path(str(previous.get("embedding_dir", "")))
            embed_seconds, width = float(previous.get("embed_seconds") or 0.0), previous.get("embedding_width")
        context = {"embedding_dir": embedding_dir, "embed_seconds": embed_seconds, "width": width}
        if missing and not self._probe_runs(cell, embedding_dir, missing, runs, outcome, context):
            return outcome
        record = self._save(cell, runs, context, complete=True)
        outcome.status, outcome.record = "done", record
        return outcome

    def _save(self, cell: Cell, runs: Mapping[int, Dict[str, Any]], context: Mapping[str, Any],
              complete: bool) -> Dict[str, Any]:
        """Write the cell's result from its runs (``complete``: every seed; else resumable progress)."""
        ordered = [runs[seed] for seed in self.settings.seed_list() if seed in runs]
        summary = combine_runs(ordered)
        identity = cell.identity(self.settings)
        record = {
            "ensemble": cell.variant.ensemble,
            "variant": cell.variant.label,
            "options": cell.variant.options,
            "task": cell.task.folder,
            "task_name": cell.task.task_name,
            "embedding_type": cell.task.embedding_type,
            "probe_kind": self.settings.probe_kind,
            **summary,
            "embedding_width": context["width"],
            "embed_seconds": round(float(context["embed_seconds"]), 2),
            "predict_seconds": round(sum(float(r.get("seconds", 0.0)) for r in ordered), 2),
            "random_weights": bool(identity["random_weights"]),
            "identity": identity,
            "probe": self.settings.probe(cell.task.embedding_type),
            "task_path": str(cell.task.path),
            "embedding_dir": str(context["embedding_dir"]),
            "runs": ordered,
            "complete": complete,
            "finished_at": now_text(),
        }
        save_json(cell.result_path, record)
        if complete:  # runs of seeds this result does not list are never reused: remove them
            listed = {cell.run_dir(run["seed"]).name for run in ordered}
            for folder in cell.runs_dir.glob(f"{PREFIXES[cell.probe]}seed-*"):
                if folder.name not in listed:
                    shutil.rmtree(folder, ignore_errors=True)
        return record

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

    def _run_entry(self, cell: Cell, seed: int) -> Dict[str, Any]:
        """One finished run, read from its folder (raises HearGuraError if its scores are unreadable)."""
        folder = cell.run_dir(seed)
        meta = load_json(folder / RUN_FILE) or {}
        if cell.probe == "fast":
            scores: TaskScores = read_fast_scores(folder / FAST_FILE, cell.task.metrics)
        else:
            scores = read_scores(folder / SCORES_FILE, cell.task.metrics)
        return {"seed": seed, "probe": self.settings.run_probe(seed, cell.task.embedding_type),
                "folder": str(folder.relative_to(cell.out)),
                "metric": scores.metric, "score": scores.score, "score_std": scores.score_std,
                "folds": scores.folds, "secondary": scores.secondary, "per_class": meta.get("per_class"),
                "seconds": float(meta.get("seconds", 0.0)), "finished_at": now_text()}

    def _probe_runs(self, cell: Cell, embedding_dir: Path, seeds: Sequence[int], runs: Dict[int, Dict[str, Any]],
                    outcome: CellOutcome, context: Mapping[str, Any]) -> bool:
        """Run the probe once per missing seed (heareval's: one subprocess; the fast probe: in this
        process, :func:`run_fast_in_process`); add each finished run to ``runs``.

        Runs that finished are recorded even if a later one fails or the
        process is interrupted (the result is saved as incomplete), so a rerun
        resumes at the next seed. Returns whether every seed finished.
        """
        for seed in seeds:
            shutil.rmtree(cell.run_dir(seed), ignore_errors=True)
        if cell.probe == "heareval":
            clear_predictions(embedding_dir)
        args = [cell.probe_step, str(embedding_dir.resolve()), "--seeds", ",".join(map(str, seeds)),
                "--keep", str(cell.runs_dir.resolve())]
        if cell.probe == "heareval":
            args += ["--grid-points", str(self.settings.grid_points), "--grid", self.settings.probe_grid]
        else:
            args += ["--device", self.settings.device]
        log = cell.log_path(cell.probe_step)
        outcome.steps.append(cell.probe_step)
        what = "heareval's prediction runner" if cell.probe == "heareval" else "the fast probe"
        status, problem, wall = None, "", None
        try:
            if cell.probe == "heareval":  # heareval's runner: an isolated subprocess
                status, wall = run_tool(args, log, cwd=cell.out.resolve(), echo=self.echo,
                                        module="hear_gura.harness.probe_run", progress=ProbeProgress())
            else:
                self._preload_fast_probe()
                status, wall = run_fast_in_process(embedding_dir.resolve(), seeds, cell.runs_dir.resolve(),
                                                   self.settings.device, log, self.echo)
        finally:  # also on Ctrl-C: keep every run that finished
            new = []
            for seed in seeds:
                if not (cell.run_dir(seed) / RUN_FILE).is_file():
                    continue
                try:
                    runs[seed] = self._run_entry(cell, seed)
                except HearGuraError as err:
                    problem = str(err)
                    break
                new.append(runs[seed])
            if wall is not None and new:  # the step's start-up (imports) shared by its runs: they sum to its wall time
                share = max(0.0, wall - sum(r["seconds"] for r in new)) / len(new)
                for run in new:
                    run["seconds"] = round(run["seconds"] + share, 2)
            for run in new:
                self._say_run(cell, run, len(self.settings.seed_list()) > 1)
            if len(runs) < len(self.settings.seed_list()) and runs:
                self._save(cell, runs, context, complete=False)
        if problem:
            self._fail(outcome, cell.probe_step, problem, log)
            return False
        if status != 0 or any(seed not in runs for seed in seeds):
            done = [s for s in seeds if s in runs]
            self._fail(outcome, cell.probe_step, f"{what} exited with status {status}"
                       + (f" after the run(s) of seed(s) {', '.join(map(str, done))}" if done else ""), log)
            return False
        return True

    def _preload_fast_probe(self) -> None:
        """The fast probe's one-time imports, before the first fast cell is timed, said once (in no cell's seconds)."""
        from hear_gura.analysis.fast_probe import preload

        seconds = preload()
        if seconds:
            self.say(f"      fast probe: one-time imports {seconds:.1f} s (heareval's metrics, torch's optimisers), "
                     "paid once per process and in no cell's seconds")

    def _say_run(self, cell: Cell, run: Mapping[str, Any], several: bool) -> None:
        spread = f" +- {run['score_std']:.4f} over {run['folds']} folds" if run.get("score_std") is not None else ""
        seed = f" (seed {run['seed']})" if several else ""
        self.say(f"      {cell.probe_step}{seed}: {run['seconds']:.1f} s -> {run['metric']} = {run['score']:.4f}{spread}")


def _probe_change(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """``probe fast, seeds 42 -> fast, seeds 42 (settings: standardise True -> False)`` (for messages)."""
    text = f"probe {_probe_text(old)} -> {_probe_text(new)}"
    before, after = old.get("hparams") or {}, new.get("hparams") or {}
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    if changed:
        text += " (settings: " + ", ".join(f"{k} {before.get(k, '(none)')} -> {after.get(k, '(none)')}"
                                          for k in changed) + ")"
    return text


def _probe_text(probe: Mapping[str, Any]) -> str:
    """``heareval grid faster x1, seeds 42,43`` (for messages)."""
    seeds = probe.get("seeds")
    head = (f"{probe.get('kind', 'heareval')}" + (f" grid {probe['grid']} x{probe.get('grid_points')}"
                                                  if "grid" in probe else ""))
    return head + (f", seeds {','.join(map(str, seeds))}" if isinstance(seeds, list) else "")
