"""hear-gura evaluate --seeds N, per-class scores, --probe fast: real heareval runs on a tiny task, no mocks.

One module fixture walks one output folder through a sequence (fbank, weight-free, on the tiny 3-fold scene
task, heareval's ``faster`` grid, one grid point):

B. ``--seeds 2``: embeddings, then one probe subprocess running seeds 42 (heareval's own) and 43;
C. ``--seeds 2 --report-only --per-class TASK``: per-class tables, nothing run;
D. ``--seeds 1``: another cell (1 seed is not 2), made from the kept seed-42 run: nothing run;
then ``--probe fast``: a separate cell and separate reports, titled as not HEAR scores.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import pickle
import statistics
from pathlib import Path
from typing import Dict, List

import pytest

from hear_gura.errors import HearGuraError
from hear_tasks import SCENE
from eval_scripts_loader import load_script
from test_harness import counting_runs, read_csv, read_markdown_table, run_cli

HEADER = f"{SCENE} (top1_acc)"


def evaluate(out: Path, tasks_dir: Path, *extra: str, ensembles: str = "fbank") -> tuple:
    """Run ``hear-gura evaluate`` (``ensembles`` x the scene task); returns (runner calls, stdout)."""
    calls: List[str] = []
    stdout = io.StringIO()
    with counting_runs(calls), contextlib.redirect_stdout(stdout):
        run_cli(["evaluate", "--tasks-dir", str(tasks_dir), "--tasks", SCENE, "--ensembles", ensembles,
                 "--out", str(out), "--grid-points", "1", "--probe-grid", "faster", *extra])
    return calls, stdout.getvalue()


def load_predictions(folder: Path) -> Dict[str, dict]:
    """``{test split: heareval's predictions dict}`` of one kept run."""
    out = {}
    for path in sorted(folder.glob("*.predictions.pkl")):
        with open(path, "rb") as handle:
            out[path.name.split(".")[0]] = pickle.load(handle)
    return out


@pytest.fixture(scope="module")
def walk(tasks_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("seeds") / "results"
    cell = out / "cells" / "fbank"
    steps = {}
    steps["B"] = evaluate(out, tasks_dir, "--seeds", "2")
    steps["B_record"] = json.loads((cell / f"{SCENE}.json").read_text())
    steps["B_csv"] = read_csv(out / "results.csv")
    steps["B_md"] = read_markdown_table(out / "results.md")
    steps["B_md_text"] = (out / "results.md").read_text()
    steps["B_runs"] = {seed: load_predictions(cell / SCENE / f"seed-{seed}") for seed in (42, 43)}
    steps["B_scores"] = {seed: json.loads((cell / SCENE / f"seed-{seed}" / "test.predicted-scores.json").read_text())
                         for seed in (42, 43)}
    steps["C"] = evaluate(out, tasks_dir, "--seeds", "2", "--report-only", "--per-class", SCENE,
                          "--per-class", "tiny_tones:fbank")
    steps["D"] = evaluate(out, tasks_dir, "--seeds", "1")
    steps["D_record"] = json.loads((cell / f"{SCENE}.json").read_text())
    return {"out": out, "cell": cell, **steps}


def test_two_seeds_run_in_one_probe_step_and_one_seed_later_reuses_the_first(walk):
    calls, stdout = walk["B"]
    assert calls == [f"embeddings {SCENE}", f"predictions {SCENE}"]  # both seeds in one probe subprocess
    assert "predictions (seed 42)" in stdout and "predictions (seed 43)" in stdout and "2 seeds (42, 43)" in stdout
    record = walk["B_record"]
    assert record["complete"] and record["seeds"] == [42, 43] and record["probe"]["seeds"] == [42, 43]
    assert [r["seed"] for r in record["runs"]] == [42, 43]
    assert [r["folder"] for r in record["runs"]] == [f"cells/fbank/{SCENE}/seed-42", f"cells/fbank/{SCENE}/seed-43"]
    # 1 seed is another cell, made from the kept seed-42 run: nothing runs, seed 43's folder goes
    calls, stdout = walk["D"]
    assert calls == [] and "seeds 42,43 -> heareval grid faster x1, seeds 42" in stdout
    assert "seed(s) 42: done earlier, reused" in stdout
    assert walk["D_record"]["seeds"] == [42] and walk["D_record"]["seed_std"] is None
    assert walk["D_record"]["runs"] == record["runs"][:1] and walk["D_record"]["score"] == record["seed_scores"][0]
    assert not (walk["cell"] / SCENE / "seed-43").exists() and (walk["cell"] / SCENE / "seed-42").is_dir()


def test_each_seed_is_a_different_heareval_run_and_the_tables_show_mean_and_std(walk):
    import torch

    runs, scores = walk["B_runs"], walk["B_scores"]
    assert set(runs[42]) == set(runs[43]) == {"fold00", "fold01", "fold02"}  # every test fold's predictions kept
    assert any(not torch.equal(runs[42][f]["prediction"], runs[43][f]["prediction"]) for f in runs[42])
    hparams = {seed: scores[seed]["hparams"] for seed in (42, 43)}
    logs = (walk["out"] / "logs" / "fbank" / f"{SCENE}.predictions.log").read_text()
    assert "Global seed set to 43" in logs  # heareval's seed_everything(42) took the run's seed
    per_seed = [scores[seed]["aggregated_scores"]["test_top1_acc_mean"] for seed in (42, 43)]
    [row] = [r for r in walk["B_csv"] if r["source"] == "measured"]
    assert row["probe"] == "heareval" and row["seeds"] == "2"
    assert json.loads(row["seed_scores"]) == pytest.approx(per_seed, abs=1e-12)
    assert float(row["score"]) == pytest.approx(statistics.mean(per_seed), abs=1e-12)
    assert float(row["seed_std"]) == pytest.approx(statistics.stdev(per_seed), abs=1e-12)
    maps = [scores[seed]["aggregated_scores"]["test_mAP_mean"] for seed in (42, 43)]
    assert json.loads(row["secondary"])["mAP"] == pytest.approx(statistics.mean(maps), abs=1e-12)
    cell = walk["B_md"]["fbank"][HEADER].strip("*")
    assert cell == f"{statistics.mean(per_seed):.3f} ± {statistics.stdev(per_seed):.3f}"
    assert "over 2 probe runs per cell, seeds 42, 43" in walk["B_md_text"]
    assert hparams[42] != hparams[43]  # random.shuffle of heareval's grid, seeded: another grid point drawn


def recall_per_class(predictions: Dict[str, dict]) -> List[float]:
    """Per class: the share of its test clips predicted as it, mean over folds (computed here, independently)."""
    per_fold = []
    for data in predictions.values():
        truth, guess = data["target"].argmax(1), data["prediction"].argmax(1)
        per_fold.append([float((guess[truth == c] == c).float().mean()) for c in range(data["target"].shape[1])])
    return [statistics.mean(fold[c] for fold in per_fold) for c in range(len(per_fold[0]))]


def test_report_only_per_class_writes_the_tables_from_the_kept_test_predictions(walk):
    calls, stdout = walk["C"]
    assert calls == []
    out = walk["out"]
    expected = {seed: recall_per_class(walk["B_runs"][seed]) for seed in (42, 43)}  # labels: noise, tone
    rows = read_csv(out / f"per-class-{SCENE}.csv")
    assert [(r["variant"], r["class"]) for r in rows] == [("fbank", "noise"), ("fbank", "tone")]
    for index, row in enumerate(rows):
        values = [expected[42][index], expected[43][index]]
        assert row["metric"] == "top1_acc" and row["seeds"] == "2" and row["support"] == "6"
        assert float(row["score"]) == pytest.approx(statistics.mean(values), abs=1e-12)
        assert float(row["seed_std"]) == pytest.approx(statistics.stdev(values), abs=1e-12)
    table = read_markdown_table(out / f"per-class-{SCENE}.md")
    assert set(table) == {"noise", "tone"} and table["tone"]["support"] == "6"
    assert table["noise"]["fbank"] == f"{float(rows[0]['score']):.3f} ± {float(rows[0]['seed_std']):.3f}"
    text = (out / f"per-class-{SCENE}.md").read_text()
    assert text.startswith(f"# Per-class top1_acc on {SCENE}, mean ± std over 2 seeds")
    assert "predicted as the class (recall)" in text
    assert (out / f"per-class-{SCENE}-fbank.md").read_text().splitlines()[2:] == text.splitlines()[2:]


def test_an_interrupted_multi_seed_cell_is_not_finished(walk, tasks_dir):
    from hear_gura.harness.grid import build_variants
    from hear_gura.harness.runner import Cell, CellRunner, Settings, variant_identities
    from hear_gura.harness.scores import TaskInfo

    variants = build_variants(["fbank"], {})
    identities = variant_identities(variants, None)
    cell = Cell(variants[0], TaskInfo.load(tasks_dir / SCENE), walk["out"])

    def runner(seeds: int) -> CellRunner:
        return CellRunner(Settings(grid_points=1, probe_grid="faster", identities=identities, seeds=seeds),
                          stream=io.StringIO())

    record = json.loads(cell.result_path.read_text())  # step D's: seed 42 only
    assert runner(1).finished_record(cell) is not None and runner(2).finished_record(cell) is None
    assert runner(2).stale_reasons(cell) == ["probe heareval grid faster x1, seeds 42 -> heareval grid faster x1, "
                                             "seeds 42,43"]
    assert list(runner(2).reusable_runs(cell)[1]) == [42]  # going to 2 seeds would run seed 43 only
    try:  # one run of two recorded, as a run interrupted after seed 42 leaves it
        cell.result_path.write_text(json.dumps({**record, "identity": {**record["identity"], "probe": {
            **record["identity"]["probe"], "seeds": [42, 43]}}, "complete": False}))
        assert runner(2).finished_record(cell) is None
        previous, kept = runner(2).reusable_runs(cell)
        assert list(kept) == [42]  # resumes at seed 43
    finally:
        cell.result_path.write_text(json.dumps(record))


def test_fast_probe_cells_and_reports_are_separate_and_never_called_hear_scores(walk, tasks_dir):
    out = walk["out"]
    heareval_files = {p: p.stat().st_mtime_ns for p in [out / "results.md", out / "results.csv",
                                                        walk["cell"] / f"{SCENE}.json"]}
    with pytest.raises(HearGuraError, match="only heareval's probe keeps"):
        evaluate(out, tasks_dir, "--probe", "fast", "--per-class", SCENE)
    calls, stdout = evaluate(out, tasks_dir, "--probe", "fast")
    assert calls == []  # no embedding step (shared with heareval's cells), and the fast probe runs in process
    assert "(in process) fast probe" in (out / "logs" / "fbank" / f"{SCENE}.fastprobe.log").read_text()
    assert "fast probe, not HEAR scores" in stdout
    assert {p: p.stat().st_mtime_ns for p in heareval_files} == heareval_files
    record = json.loads((walk["cell"] / f"{SCENE}.fastprobe.json").read_text())
    assert record["probe"]["kind"] == "fast" and record["probe"]["hparams"]["lr"] > 0
    # the logistic probe on raw embeddings over their root mean square, by L-BFGS; the kNN on standardised ones
    assert record["probe"]["hparams"]["standardise"] is False and record["probe"]["hparams"]["knn_standardise"]
    assert record["probe"]["hparams"]["rms_scale"] is True and record["probe"]["hparams"]["solver"] == "lbfgs"
    kept = json.loads((walk["cell"] / SCENE / "fastprobe-seed-42" / "fastprobe.json").read_text())
    assert record["score"] == kept["test"]["top1_acc"] and record["secondary"]["knn_top1_acc"] == kept["knn"]["test"][
        "top1_acc"]
    md = (out / "results-fastprobe.md").read_text()
    assert md.startswith("# hear-gura evaluate: linear probe (fast probe, not HEAR scores)")
    assert "## kNN probe, scene tasks (fast probe, not HEAR scores)" in md and "NOT HEAR SCORES" in md
    [row] = read_csv(out / "results-fastprobe.csv")
    assert row["probe"] == "fast" and float(row["score"]) == record["score"]
    assert (out / "results-fastprobe.png").stat().st_size > 10_000
    # the heareval cell is still finished: a heareval run after the fast one runs nothing
    assert evaluate(out, tasks_dir, "--seeds", "1")[0] == []

    # a fast cell made with other settings (the standardised linear probe of before) is redone, and says why
    from hear_gura.harness.grid import build_variants
    from hear_gura.harness.runner import Cell, CellRunner, Settings, variant_identities
    from hear_gura.harness.scores import TaskInfo

    variants = build_variants(["fbank"], {})
    fast_runner = CellRunner(Settings(grid_points=1, probe_grid="faster", probe_kind="fast",
                                      identities=variant_identities(variants, None)), stream=io.StringIO())
    cell = Cell(variants[0], TaskInfo.load(tasks_dir / SCENE), out, "fast")
    assert fast_runner.finished_record(cell) is not None
    saved = cell.result_path.read_text()
    before = json.loads(saved)
    before["identity"]["probe"]["hparams"]["standardise"] = True
    cell.result_path.write_text(json.dumps(before))
    try:
        assert fast_runner.finished_record(cell) is None
        assert fast_runner.stale_reasons(cell) == [
            "probe fast, seeds 42 -> fast, seeds 42 (settings: standardise True -> False)"]
    finally:
        cell.result_path.write_text(saved)


def test_event_per_class_is_sed_eval_class_wise_onset_f_measure():
    from hear_gura.harness.per_class import event_per_class, scene_per_class

    reference = {"a.wav": [{"label": "dog", "start": 100.0, "end": 400.0},
                           {"label": "cat", "start": 1000.0, "end": 1300.0}],
                 "b.wav": [{"label": "dog", "start": 50.0, "end": 300.0}]}
    predicted = {"a.wav": [{"label": "dog", "start": 220.0, "end": 420.0},  # onset 120 ms late: a hit (200 ms collar)
                           {"label": "cat", "start": 1500.0, "end": 1700.0}],  # 500 ms late: a miss and a false alarm
                 "b.wav": []}
    values, support = event_per_class("event_onset_200ms_fms", predicted, reference, ["cat", "dog"])
    assert support == [1, 2]
    assert values[0] == 0.0  # cat: no hit
    assert values[1] == pytest.approx(2 * 1.0 * 0.5 / 1.5)  # dog: precision 1, recall 1/2
    values, _ = event_per_class("event_onset_50ms_fms", predicted, reference, ["cat", "dog"])
    assert values[1] == 0.0  # the same late onset misses a 50 ms collar

    import numpy as np

    target = np.eye(3)[[0, 0, 1, 1, 2, 2]]
    prediction = np.eye(3)[[0, 1, 1, 1, 2, 0]] * 0.8 + 0.1
    recall, counts = scene_per_class("top1_acc", prediction, target)
    assert recall == [0.5, 1.0, 0.5] and counts == [2, 2, 2]
    ap, _ = scene_per_class("mAP", prediction, np.eye(3)[[0, 0, 1, 1, 1, 1]])
    assert math.isnan(ap[2])  # a class without a positive has no average precision


def test_predictions_are_read_without_running_code_from_the_pickle(walk, tmp_path):
    """Per-class scoring reads heareval's pickles with an allow-list: equal to pickle.load on them,
    and a pickle that names any other global (here os.system) is refused before it runs."""
    import os

    import torch

    from hear_gura.errors import HearGuraError
    from hear_gura.harness.per_class import PredictionsUnpickler, per_class_scores

    for path in sorted((walk["cell"] / SCENE / "seed-42").glob("*.predictions.pkl")):
        with open(path, "rb") as handle:
            safe = PredictionsUnpickler(handle).load()
        with open(path, "rb") as handle:
            plain = pickle.load(handle)
        assert safe.keys() == plain.keys() and all(torch.equal(safe[k], plain[k]) for k in ("target", "prediction"))

    class Payload:
        def __reduce__(self):
            return os.system, ("touch " + str(tmp_path / "ran"),)

    folder = tmp_path / "foreign"
    folder.mkdir()
    (folder / "test.predictions.pkl").write_bytes(pickle.dumps({"prediction": Payload()}))
    with pytest.raises(HearGuraError, match="system is not part of heareval's predictions"):
        per_class_scores(folder, "top1_acc", "scene", ["noise", "tone"])
    assert not (tmp_path / "ran").exists()


def test_the_console_says_which_heareval_training_runs_while_the_probe_step_works(walk):
    """heareval's own markers (seed, grid point, test split), read from the real run's output, reach the
    console in order: one line per training (1 grid point, then the 3-fold task's two other splits), per seed."""
    lines = [x.strip() for x in walk["B"][1].splitlines() if x.strip().startswith("heareval probe")]
    trainings = [x.split(": ", 1)[1].rsplit(", ", 1)[0] for x in lines if ", epoch " not in x]
    expected = ["training grid point 1 of 1", "training for test split 2 of 3 with the best grid point",
                "training for test split 3 of 3 with the best grid point"]
    assert trainings == expected * 2
    assert [x.split(":")[0] for x in lines if ", epoch " not in x] == ["heareval probe (seed 42)"] * 3 + [
        "heareval probe (seed 43)"] * 3


def test_probe_progress_shows_an_epoch_at_most_once_a_minute_within_a_training():
    from hear_gura.harness.probe_progress import ProbeProgress

    now = [0.0]
    progress = ProbeProgress(clock=lambda: now[0])
    assert progress.feed("hear_gura probe run: seed 43 (heareval's seed_everything(42) takes 43)") is None
    assert progress.feed("Epoch 0:  10%|#   | 1/10 [00:01<00:09]") is None  # no training announced yet
    now[0] = 5.0
    said = progress.feed("grid: 0it [00:00, ?it/s]\x1b[Apredict - t - 2026 - 110 - Grid point 1 of 2: {'lr': 1}")
    assert said == "heareval probe (seed 43): training grid point 1 of 2, 5 s into the probe step"
    now[0] = 64.0
    assert progress.feed("Epoch 3:  50%|#####     | 5/10 [00:02<00:02, loss=0.1]") is None  # 59 s after the last line
    now[0] = 65.0
    assert progress.feed("\x1b[AEpoch 4:  50%|#####     | 5/10") == (
        "heareval probe (seed 43): grid point 1 of 2, epoch 4, 1 min 05 s into the probe step")
    assert progress.feed("Epoch 4:  60%|######    | 6/10") is None
    now[0] = 3725.0
    assert progress.feed("predict - t - 110 - Training split 2 of 5: {'train': ['fold00']}") == (
        "heareval probe (seed 43): training for test split 2 of 5 with the best grid point, "
        "1 h 02 min into the probe step")


def test_heareval_runs_on_views_of_one_folder_go_on_at_once_and_a_second_run_in_the_folder_is_refused(walk):
    """heareval's runner writes its outputs into the folder it scores. Two runs of the scripts' one way to run it
    (eval_scripts/heareval_default_cost.run_heareval_probe, each on an input_view of the folder) at the same time on
    one embedding folder give the scores evaluate's own runs gave for those seeds, and leave the folder's outputs as
    they were; a probe run in a folder whose lock another process holds is refused before heareval starts."""
    import threading

    from hear_gura.harness.probe_run import LOCK_FILE, exclusive_outputs, input_view
    from hear_gura.harness.probe_run import main as probe_main

    cost = load_script("heareval_default_cost")
    [folder] = (walk["out"] / "embeddings" / "fbank").glob(f"*/{SCENE}")
    before = (folder / "test.predicted-scores.json").read_bytes()
    metric = walk["B_record"]["metric"]
    results: Dict[int, dict] = {}
    threads = [threading.Thread(target=lambda s=s: results.__setitem__(
        s, cost.run_heareval_probe(folder, [metric], ("faster", 1), s))) for s in (42, 43)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [results[seed]["score"] for seed in (42, 43)] == walk["B_record"]["seed_scores"]
    assert (folder / "test.predicted-scores.json").read_bytes() == before

    view = input_view(folder, walk["out"].parent / "view")
    linked = sorted(p.name for p in view.iterdir())
    assert "task_metadata.json" in linked and "test.predicted-scores.json" not in linked
    assert not any(name.endswith(".predictions.pkl") or name in ("lightning_logs", LOCK_FILE) for name in linked)
    with exclusive_outputs(folder), pytest.raises(SystemExit, match="another heareval probe run"):
        probe_main(["predictions", str(folder), "--seeds", "42", "--keep", str(walk["out"].parent / "refused"),
                    "--grid", "faster", "--grid-points", "1"])
    assert not any((walk["out"].parent / "refused").iterdir())


def test_a_param_grid_reaches_heareval_through_its_per_task_grid_and_leaves_the_folder_as_it_was(walk):
    """eval_scripts/heareval_default_cost.run_heareval_probe(param_grid={"hidden_layers": [0]}) trains heareval's
    probe with no hidden layer (heareval's own record of the grid point it chose says so), through heareval's
    per-task grid override in a copy of task_metadata.json inside the view: the embedding folder's file is not
    touched (without an override the same call gives evaluate's own scores: the views test above). A bad
    --param-grid is refused."""
    cost = load_script("heareval_default_cost")
    [folder] = (walk["out"] / "embeddings" / "fbank").glob(f"*/{SCENE}")
    metadata = (folder / "task_metadata.json").read_bytes()
    metric = walk["B_record"]["metric"]
    # heareval's "fast" grid has hidden_layers [1, 2] only: a 0 can come from the override alone
    linear = cost.run_heareval_probe(folder, [metric], ("fast", 1), 42, {"hidden_layers": [0]})
    assert linear["hparams"]["hidden_layers"] == 0 and 0.0 <= linear["score"] <= 1.0
    assert (folder / "task_metadata.json").read_bytes() == metadata and not (folder / "task_metadata.json").is_symlink()
    assert cost.parse_param_grid('{"hidden_layers": [0]}') == {"hidden_layers": [0]}
    for bad in ('{"hidden_layers": 0}', "[0]", "{"):
        with pytest.raises(SystemExit, match="--param-grid"):
            cost.parse_param_grid(bad)



def test_the_fast_probes_one_time_imports_are_paid_before_any_run_is_timed(walk, tmp_path):
    """fast_probe.preload() imports what a process's first fit and score would import on first use (heareval's
    metric module, torch's optimiser machinery), once; probe_run's fast runs call it before timing any run and say
    what it took. In fresh processes: the modules are absent before, present after, a second call costs nothing."""
    import subprocess
    import sys

    code = ("import sys; from hear_gura.analysis.fast_probe import preload\n"
            "lazy = ('heareval.score', 'torch._dynamo')\n"
            "assert not any(m in sys.modules for m in lazy), [m for m in lazy if m in sys.modules]\n"
            "first = preload(); assert first > 0 and all(m in sys.modules for m in lazy)\n"
            "assert preload() == 0.0\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    [folder] = (walk["out"] / "embeddings" / "fbank").glob(f"*/{SCENE}")
    done = subprocess.run([sys.executable, "-m", "hear_gura.harness.probe_run", "fastprobe", str(folder),
                           "--seeds", "42", "--keep", str(tmp_path / "runs")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.index("one-time imports") < done.stdout.index("fast probe run: seed 42")
    assert (tmp_path / "runs" / "fastprobe-seed-42" / "fastprobe.json").is_file()


def test_fastprobe_startup_times_the_first_cell_with_and_without_the_preload(walk, tmp_path):
    """eval_scripts/fastprobe_startup.py scores the same folder in two fresh processes, the runner's step timed with
    the one-time imports inside it and after fast_probe.preload(): the scores are the same; a folder that is not an
    embedding folder is refused before any process starts."""
    startup = load_script("fastprobe_startup")
    [folder] = (walk["out"] / "embeddings" / "fbank").glob(f"*/{SCENE}")
    out = tmp_path / "startup.json"
    startup.main([str(folder), "--json", str(out)])
    data = json.loads(out.read_text())
    assert data["same_scores"] and data["preload_seconds"] > 0
    assert set(data["first_cell"]) == {"charged", "preloaded"} and data["later_cells_max"]["charged"] is None
    with pytest.raises(SystemExit, match="not embedding folders"):
        startup.main([str(tmp_path), "--json", str(tmp_path / "no.json")])
    assert not (tmp_path / "no.json").exists()
