"""``hear-gura layers``: one member pass per task, every state probed, learned layer weights exported.

One analysis of the tiny HuBERT fixture on the two tiny tasks (tests/hear_tasks.py)
is shared by the tests (module fixture); the fast probe runs with a short step limit.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from eval_scripts_loader import load_script
from hear_tasks import EVENT, SCENE

QUICK = dict(max_steps=40)  # what --max-steps 40 gives


@pytest.fixture(scope="module")
def analysis(tasks_dir: Path, manifest: Path, tmp_path_factory: pytest.TempPathFactory):
    """``hear-gura layers`` (the CLI) on both tiny tasks, features kept, learned weights exported."""
    from hear_gura.cli import main

    out = tmp_path_factory.mktemp("layers")
    main(["layers", "--tasks-dir", str(tasks_dir), "--ensemble", "hubert", "--model", str(manifest),
          "--out", str(out), "--export", str(out / "mix.json"), "--keep-features", "--max-steps", "40"])
    return out


def _store(out: Path, task: str):
    from hear_gura.analysis.states import StateStore

    record = json.loads((out / "cells" / task / "hubert.json").read_text())
    return StateStore(out / "features" / task / "hubert", "hubert", record["num_states"]), record


def test_reports_cover_every_state_and_say_fast_probe(analysis: Path) -> None:
    files = sorted(p.name for p in analysis.iterdir() if p.is_file())
    assert {"layers-fastprobe.csv", "layers-fastprobe.md", "layers-fastprobe.png",
            "layer-weights-fastprobe.png"} <= set(files)
    markdown = (analysis / "layers-fastprobe.md").read_text()
    assert "fast probe, not HEAR scores" in markdown.splitlines()[0]
    import csv

    rows = list(csv.DictReader((analysis / "layers-fastprobe.csv").open()))
    for task, metric in ((SCENE, "top1_acc"), (EVENT, "event_onset_200ms_fms")):
        record = json.loads((analysis / "cells" / task / "hubert.json").read_text())
        states = record["num_states"]
        assert states > 2 and [s["state"] for s in record["states"]] == list(range(states))
        linear = [r for r in rows if r["task"] == task and r["probe"] == "fast-linear"]
        assert [r["choice"] for r in linear] == [str(i) for i in range(states)] + ["mean", "learned"]
        assert all(r["metric"] == metric and 0.0 <= float(r["test"]) <= 1.0 for r in linear)
        assert [r["is_last"] for r in linear[:states]] == ["False"] * (states - 1) + ["True"]
        weights = record["learned"]["weights"]
        assert len(weights) == states and abs(sum(weights) - 1) < 1e-6 and all(w > 0 for w in weights)
    knn = [r for r in rows if r["task"] == SCENE and r["probe"] == "fast-knn"]
    assert len(knn) == states + 1  # every state and the mean


def test_exported_mix_runs_as_the_hear_module(analysis: Path, manifest: Path, tasks_dir: Path) -> None:
    """The exported --model-options give the HEAR module whose embeddings ARE the analysis's weighted sum."""
    from hear_gura.analysis.learned_weights import WeightedSum
    from hear_gura.api import load_ensemble_model
    from hear_gura.audio_io import read_wav

    index = json.loads((analysis / "mix.json").read_text())
    assert index["module"] == "hear_gura.hubert" and set(index["model_options"]) == {SCENE, EVENT}
    for task, split in ((EVENT, "test"), (SCENE, "fold01")):
        options = json.loads((analysis / f"mix.{task}.json").read_text())
        assert options == index["model_options"][task] and set(options) == {"layers"}
        store, record = _store(analysis, task)
        assert options["layers"]["hubert"]["weights"] == pytest.approx(record["learned"]["weights"], abs=1e-12)
        mix = WeightedSum(store.num_states)  # the analysis's own weighted sum, at the exported weights
        with torch.no_grad():
            mix.logits.copy_(torch.tensor(options["layers"]["hubert"]["weights"]).log())
            analysed = mix(torch.from_numpy(np.asarray(store.stacked(split)))).numpy()
        model = load_ensemble_model("hubert", str(manifest), **options)
        rows = json.loads((store.folder / f"{split}.rows.json").read_text())
        files = list(dict.fromkeys(rows["files"]))
        audio = torch.stack([read_wav(tasks_dir / task / "16000" / split / f) for f in files])
        if task == EVENT:
            embeddings, timestamps = model.timestamp_embeddings(audio)
            np.testing.assert_allclose(timestamps.reshape(-1).numpy(), rows["timestamps"], atol=1e-3)
            module = embeddings.reshape(-1, embeddings.shape[-1]).numpy()
        else:
            module = model.scene_embeddings(audio).numpy()
        assert module.shape == analysed.shape
        np.testing.assert_allclose(module, analysed, rtol=1e-4, atol=1e-5)
        # and the mix is not a single state nor the plain mean: the check has teeth
        assert not np.allclose(module, np.asarray(store.mean(split)), rtol=1e-3, atol=1e-4)


def test_fast_probe_metric_is_heareval_score_of_its_predictions(analysis: Path, tasks_dir: Path) -> None:
    """Scores are heareval's functions on the probe's predictions, with targets built as heareval builds them."""
    import pandas as pd
    from heareval.score import available_scores, label_to_binary_vector, label_vocab_as_dict

    from hear_gura.analysis.fast_probe import ProbeConfig, TaskSpec, predict, predicted_events, probe_task

    for task_folder in (SCENE, EVENT):
        store, record = _store(analysis, task_folder)
        task = TaskSpec.load(tasks_dir / task_folder)
        last = store.num_states - 1
        splits = store.splits(task, lambda s: np.array(store.state(s, last)))
        result = probe_task(task, splits, "linear", seed=0, config=ProbeConfig(**QUICK))
        assert result["test"][task.primary_metric] == pytest.approx(
            record["states"][last]["linear"]["test"][task.primary_metric])  # the cell is this computation
        label_to_idx = label_vocab_as_dict(pd.read_csv(tasks_dir / task_folder / "labelvocabulary.csv"),
                                           key="label", value="idx")
        per_fold = []
        for fold, scores in result["per_fold"].items():
            labelled = json.loads((tasks_dir / task_folder / f"{fold}.json").read_text())
            probabilities = predict(result["models"][fold], task, splits[fold].x)
            if task.embedding_type == "scene":
                targets = np.stack([label_to_binary_vector([label_to_idx[x] for x in labelled[f]],
                                                           len(label_to_idx)).numpy()
                                    for f in json.loads((store.folder / f"{fold}.rows.json").read_text())["files"]])
                expected = {m: available_scores[m](label_to_idx=label_to_idx)(probabilities, targets)
                            for m in task.metrics}
            else:
                setting = tuple(tuple(p) for p in scores["postprocessing"])
                events = predicted_events(task, probabilities, splits[fold], setting)[setting]
                assert set(events) == set(labelled)
                expected = {m: available_scores[m](label_to_idx=label_to_idx)(events, labelled)[0][1]
                            for m in task.metrics}
            assert scores["test"] == pytest.approx(expected, abs=1e-12)
            per_fold.append(expected[task.primary_metric])
        assert result["test"][task.primary_metric] == pytest.approx(np.mean(per_fold))


def test_event_frames_carry_heareval_labels(analysis: Path, tasks_dir: Path) -> None:
    from hear_gura.heareval_compat import install_import_hook

    install_import_hook()
    from heareval.embeddings.task_embeddings import get_labels_for_timestamps

    store, _ = _store(analysis, EVENT)
    rows = json.loads((store.folder / "train.rows.json").read_text())
    labelled = json.loads((tasks_dir / EVENT / "train.json").read_text())
    files = list(dict.fromkeys(rows["files"]))
    stamps = [np.array([t for f2, t in zip(rows["files"], rows["timestamps"]) if f2 == f]) for f in files]
    expected = [x for per_clip in get_labels_for_timestamps([labelled[f] for f in files], stamps) for x in per_clip]
    assert rows["labels"] == expected and any(rows["labels"]) and not all(rows["labels"])


def test_score_embedding_folder_reads_heareval_layout(tmp_path: Path, tasks_dir: Path, manifest: Path) -> None:
    """The evaluate integration: one task folder as heareval's embedding runner writes it."""
    from hear_gura.analysis.fast_probe import ProbeConfig, score_embedding_folder
    from hear_gura.harness.shared_embed import study_task_embeddings

    folder, = study_task_embeddings([{"ensemble": "hubert", "options": {}, "embeddings_dir": str(tmp_path)}],
                                    str(manifest), tasks_dir / SCENE)
    result = score_embedding_folder(folder, seed=0, config=ProbeConfig(**QUICK))
    assert result["probe"] == "fast" and "not HEAR scores" in result["title"]
    assert result["primary_metric"] == "top1_acc" and set(result["per_fold"]) == {"fold00", "fold01", "fold02"}
    assert result["test"]["top1_acc"] == pytest.approx(np.mean([f["test"]["top1_acc"]
                                                                for f in result["per_fold"].values()]))
    assert set(result["knn"]["test"]) == {"top1_acc", "mAP"} and result["rows"] == {f"fold0{i}": 4 for i in range(3)}
    json.dumps(result)  # JSON-able
    assert score_embedding_folder(folder, seed=0, config=ProbeConfig(**QUICK))["test"] == result["test"]


def test_variants_are_probed_by_their_task_type(tmp_path: Path, tasks_dir: Path, manifest: Path) -> None:
    """score_embedding_folder's default (what evaluate --probe fast runs): the logistic probe on scene tasks, the
    Adam probe on raw inputs on event tasks (eval_scripts/fastprobe-families-plan.md's addendum); a fast cell's
    identity records the one its task type gets."""
    from dataclasses import asdict

    from hear_gura.analysis.fast_probe import (EVENT_PROBE, LOGISTIC_PROBE, ProbeConfig, score_embedding_folder,
                                               variant_probe)
    from hear_gura.errors import HearGuraError
    from hear_gura.harness.runner import Settings
    from hear_gura.harness.shared_embed import study_task_embeddings

    assert variant_probe("scene") == LOGISTIC_PROBE
    assert variant_probe("event") == EVENT_PROBE == ProbeConfig(standardise=False)
    with pytest.raises(HearGuraError, match="scene or event"):
        variant_probe("frames")
    folder, = study_task_embeddings([{"ensemble": "hubert", "options": {}, "embeddings_dir": str(tmp_path)}],
                                    str(manifest), tasks_dir / EVENT)
    default = score_embedding_folder(folder, seed=0)
    assert default["embedding_type"] == "event" and default["hparams"] == asdict(EVENT_PROBE)
    assert default["test"] == score_embedding_folder(folder, seed=0, config=ProbeConfig(standardise=False))["test"]
    assert default["test"] != score_embedding_folder(folder, seed=0, config=LOGISTIC_PROBE)["test"]
    fast = Settings(probe_kind="fast")
    assert fast.probe("event")["hparams"] == json.loads(json.dumps(asdict(EVENT_PROBE)))
    assert fast.probe("scene")["hparams"] == json.loads(json.dumps(asdict(LOGISTIC_PROBE)))
    assert fast.run_probe(43, "event") == {"kind": "fast", "hparams": fast.probe("event")["hparams"], "seed": 43}
    heareval = Settings(grid_points=2, probe_grid="fast")
    assert heareval.probe("scene") == heareval.probe("event")  # heareval's probe is one for both


def test_rerun_skips_finished_cells_and_reuses_features(analysis: Path, tasks_dir: Path, manifest: Path,
                                                        tmp_path: Path) -> None:
    import shutil

    from hear_gura.analysis.fast_probe import ProbeConfig
    from hear_gura.analysis.layer_scores import run_layers

    analysis = Path(shutil.copytree(analysis, tmp_path / "copy"))  # the shared analysis stays as it was
    cell = analysis / "cells" / SCENE / "hubert.json"
    before = cell.read_text()
    log = io.StringIO()
    again = run_layers(tasks_dir, "hubert", out=analysis, model=str(manifest), tasks=[SCENE],
                       config=ProbeConfig(**QUICK), keep_features=True, stream=log)
    assert again.computed == [] and "hubert: done earlier, reused" in log.getvalue()
    assert "member pass" not in log.getvalue() and cell.read_text() == before
    # another seed: the cell is recomputed from the kept features, with no member pass
    log = io.StringIO()
    other = run_layers(tasks_dir, "hubert", out=analysis, model=str(manifest), tasks=[SCENE], seed=1,
                       config=ProbeConfig(**QUICK), keep_features=True, learned=False, stream=log)
    assert other.computed == [(SCENE, "hubert")]
    assert "member pass: done earlier, features reused" in log.getvalue()
    assert json.loads(cell.read_text())["identity"]["probe"]["seed"] == 1


def test_crepe_blocks_through_a_feature_cache(tasks_dir: Path, tmp_path: Path) -> None:
    """CREPE's conv blocks as states (``"states": "blocks"``) in ``layers``; a second analysis over the
    same feature cache runs no member and writes the same features, byte for byte."""
    from hear_gura.analysis.fast_probe import ProbeConfig
    from hear_gura.analysis.layer_scores import run_layers

    options = {"members": [{"name": "crepe", "type": "crepe", "model": "tiny", "states": "blocks"}]}
    logs = []
    for out in ("first", "second"):
        log = io.StringIO()
        run_layers(tasks_dir, "crepe", out=tmp_path / out, options=options, tasks=[SCENE], learned=False,
                   config=ProbeConfig(**QUICK), keep_features=True, stream=log, feature_cache=tmp_path / "cache")
        logs.append(log.getvalue())
    assert "crepe: 5 states" in logs[0] and "feature cache so far: 0 hit(s)" in logs[0]
    written = int(logs[0].split(" miss(es), ")[1].split(" written")[0])
    assert written == 5 * 12  # every state of the 12 clips
    assert f"feature cache so far: {written} hit(s), 0 miss(es), 0 written" in logs[1]
    record = json.loads((tmp_path / "first" / "cells" / SCENE / "crepe.json").read_text())
    assert [s["state"] for s in record["states"]] == list(range(5))
    assert record["state_names"] == ["conv1", "conv2", "conv3", "conv4", "conv5"]  # the kind's description
    report = tmp_path / "first" / "layers-fastprobe.md"
    assert "| 0 conv1" in report.read_text() and "| 4 conv5 (last)" in report.read_text()
    # --report-only rewrites the same reports from the cells, running nothing
    written = report.read_text()
    report.unlink()
    log = io.StringIO()
    run_layers(tasks_dir, "crepe", out=tmp_path / "first", options=options, tasks=[SCENE], report_only=True,
               stream=log)
    assert report.read_text() == written and "member pass" not in log.getvalue()
    features = sorted(p.relative_to(tmp_path / "first") for p in (tmp_path / "first" / "features").rglob("*.f32"))
    assert len(features) >= 5
    for path in features:
        assert (tmp_path / "first" / path).read_bytes() == (tmp_path / "second" / path).read_bytes()


def test_refuses_members_without_layers(tasks_dir: Path, manifest: Path, tmp_path: Path) -> None:
    from hear_gura.analysis.layer_scores import run_layers
    from hear_gura.errors import HearGuraError

    with pytest.raises(HearGuraError, match="no member of 'fbank' has more than one state"):
        run_layers(tasks_dir, "fbank", out=tmp_path)
    with pytest.raises(HearGuraError, match="--member crepe has one state"):
        run_layers(tasks_dir, "cat_wav2vec2_crepe", members=["crepe"], model=str(manifest), out=tmp_path)
    with pytest.raises(HearGuraError, match="not available for layers"):
        run_layers(tasks_dir, "hubert", probe="heareval", out=tmp_path)


def test_streamed_rows_train_the_same_probe(analysis: Path, tasks_dir: Path) -> None:
    """Inputs too big for memory are read per batch from the memmaps: the same batches, the same probe (Adam and
    L-BFGS solvers)."""
    from hear_gura.analysis.fast_probe import ProbeConfig, TaskSpec, probe_task
    from hear_gura.analysis.learned_weights import learn_weights

    store, _ = _store(analysis, EVENT)
    task = TaskSpec.load(tasks_dir / EVENT)
    splits = store.splits(task, lambda s: store.state(s, 1))
    whole = probe_task(task, splits, "linear", config=ProbeConfig(**QUICK))
    streamed = probe_task(task, splits, "linear", config=ProbeConfig(**QUICK, memory_values=0))
    assert whole["per_fold"] == streamed["per_fold"]
    for a, b in zip(whole["models"]["test"].state_dict().values(), streamed["models"]["test"].state_dict().values()):
        assert torch.equal(a, b)
    from dataclasses import replace

    lbfgs = ProbeConfig(**QUICK, standardise=False, rms_scale=True, solver="lbfgs")
    whole = probe_task(task, splits, "linear", config=lbfgs)
    streamed = probe_task(task, splits, "linear", config=replace(lbfgs, memory_values=0))
    assert json.dumps(whole["per_fold"]) == json.dumps(streamed["per_fold"])  # as text: a NaN score equals itself
    stacked = store.splits(task, store.stacked)
    assert learn_weights(task, stacked, config=ProbeConfig(**QUICK, memory_values=0))["weights"] == \
        learn_weights(task, stacked, config=ProbeConfig(**QUICK))["weights"]


@pytest.mark.parametrize("metadata", [
    {"split_mode": "trainvaltest", "splits": ["train", "valid", "test"]},
    {"split_mode": "new_split_kfold", "splits": ["fold02", "fold00", "fold01"]},
    {"split_mode": "new_split_kfold", "splits": [f"fold{i:02d}" for i in (4, 1, 3, 0, 2)]},
    {"split_mode": "presplit_kfold", "splits": [f"fold{i:02d}" for i in range(10)]},
])
def test_fast_probe_splits_are_heareval_splits(metadata) -> None:
    """The fast probe's folds (train, valid, test per fold) are heareval's own get_splits_from_metadata."""
    from heareval.predictions.task_predictions import get_splits_from_metadata

    from hear_gura.analysis.fast_probe import data_splits

    expected = [{part: tuple(names) for part, names in fold.items()} for fold in get_splits_from_metadata(metadata)]
    assert [dict(fold) for fold in data_splits(metadata)] == expected


def test_mlp_probe_is_hearevals_model() -> None:
    """For the same seed, the MLP probe's model is heareval's FullyConnectedPrediction at that grid point:
    the same layers in the same order, the same initial weights, the same logits (train and eval mode)."""
    from heareval.predictions.task_predictions import FullyConnectedPrediction

    from hear_gura.analysis.fast_probe import mlp_model

    conf = {"hidden_layers": 1, "hidden_dim": 64, "dropout": 0.1, "hidden_norm": torch.nn.BatchNorm1d,
            "norm_after_activation": False, "initialization": torch.nn.init.xavier_uniform_}
    torch.manual_seed(3)
    theirs = FullyConnectedPrediction(20, 7, "multiclass", conf)
    torch.manual_seed(3)
    ours = mlp_model(20, 7, hidden=64, dropout=0.1)
    assert [type(m) for m in ours] == [type(m) for m in theirs.hidden] + [torch.nn.Linear]
    for a, b in zip(ours.state_dict().values(), [*theirs.hidden.state_dict().values(),
                                                 *theirs.projection.state_dict().values()]):
        assert torch.equal(a, b)
    x = torch.randn(16, 20) * 50 + 3  # raw inputs: no standardisation on either side
    for train in (False, True):
        ours.train(train), theirs.train(train)
        torch.manual_seed(5)
        mine = ours(x)
        torch.manual_seed(5)
        assert torch.equal(mine, theirs.forward_logit(x))


def test_probe_kinds_on_raw_and_standardised_inputs(analysis: Path, tasks_dir: Path) -> None:
    """The MLP and ridge probes train and score every task; ``standardise=False`` and ``knn_standardise=False`` feed
    the linear and kNN probes raw inputs (a scaled copy of the features then changes their scores' inputs, not the
    standardised ones); an unknown kind is refused."""
    from hear_gura.analysis.fast_probe import ProbeConfig, TaskSpec, probe_task
    from hear_gura.errors import HearGuraError

    for name in (SCENE, EVENT):
        store, _ = _store(analysis, name)
        task = TaskSpec.load(tasks_dir / name)
        splits = store.splits(task, lambda s: store.state(s, 1))
        mlp = probe_task(task, splits, "mlp", seed=1, config=ProbeConfig(**QUICK))
        again = probe_task(task, splits, "mlp", seed=1, config=ProbeConfig(**QUICK))
        assert mlp["per_fold"] == again["per_fold"]  # seeded: deterministic on CPU
        assert all(0.0 <= f["test"][task.primary_metric] <= 1.0 for f in mlp["per_fold"].values())
        first = next(iter(mlp["models"].values()))
        assert isinstance(first[1], torch.nn.BatchNorm1d) and not any(
            type(m).__name__ == "Standardize" for m in first)
        # Standardised inputs make the linear probe blind to a per-feature scale; raw inputs do not.
        scale = np.linspace(0.01, 100.0, next(iter(splits.values())).x.shape[1]).astype(np.float32)
        scaled = {k: v.with_x(v.x * scale) for k, v in splits.items()}
        std = ProbeConfig(**QUICK)
        raw = ProbeConfig(**QUICK, standardise=False, knn_standardise=False)
        a = probe_task(task, splits, "linear", config=std)["models"]
        b = probe_task(task, scaled, "linear", config=std)["models"]
        for fold in a:
            np.testing.assert_allclose(a[fold][1].weight.detach().numpy(), b[fold][1].weight.detach().numpy(),
                                       rtol=1e-3, atol=1e-5)
        raw_model = next(iter(probe_task(task, scaled, "linear", config=raw)["models"].values()))
        assert len(raw_model) == 1 and isinstance(raw_model[0], torch.nn.Linear)
        if task.embedding_type == "scene":
            knn_std = probe_task(task, splits, "knn", config=std)["per_fold"]
            assert probe_task(task, scaled, "knn", config=std)["per_fold"] == knn_std
            raw_x = {k: v.with_x(v.x * 2.0) for k, v in splits.items()}  # a global scale: cosine unchanged
            assert probe_task(task, raw_x, "knn", config=raw)["per_fold"] == \
                probe_task(task, splits, "knn", config=raw)["per_fold"]
        # the ridge probe: any task (event tasks through heareval's post-processing), no randomness
        ridge = probe_task(task, splits, "ridge", seed=1)
        assert ridge["per_fold"] == probe_task(task, splits, "ridge", seed=2)["per_fold"]
        assert all(0.0 <= f["test"][task.primary_metric] <= 1.0 and f["penalty"] is not None
                   for f in ridge["per_fold"].values())
        assert all((f["postprocessing"] is None) == (task.embedding_type == "scene")
                   for f in ridge["per_fold"].values())
    with pytest.raises(HearGuraError, match="unknown fast probe 'svm'; valid: linear, mlp, knn, ridge"):
        probe_task(task, splits, "svm")


def test_fastprobe_kinds_rescores_the_same_embeddings(tmp_path: Path, tasks_dir: Path, manifest: Path) -> None:
    """eval_scripts/fastprobe_kinds.py finds a pair's embeddings in an evaluate layout, scores each kind,
    checks that the default kind reproduces the pair's committed fast score, and skips pairs it cannot find."""
    from dataclasses import asdict

    from hear_gura.analysis.fast_probe import VARIANT_PROBE, score_embedding_folder
    from hear_gura.harness.shared_embed import study_task_embeddings

    kinds = load_script("fastprobe_kinds")
    root = tmp_path / "results"
    folder, = study_task_embeddings([{"ensemble": "hubert", "options": {},
                                      "embeddings_dir": str(root / "embeddings" / "hubert")}],
                                    str(manifest), tasks_dir / SCENE)
    task = folder.name
    fast = score_embedding_folder(folder, seed=42)["test"]["top1_acc"]
    pair = {"variant": "hubert", "task": task, "family": "scene", "metric": "top1_acc", "heareval": 0.5,
            "heareval_seconds": 10.0, "fast": fast, "fast_seed": 42,
            "fast_hparams": json.loads(json.dumps(asdict(VARIANT_PROBE)))}  # as a cell records it
    missing = {**pair, "variant": "fbank"}
    agreement = tmp_path / "agreement.json"
    agreement.write_text(json.dumps({"pairs": [pair, missing]}))
    out = tmp_path / "kinds.json"
    kinds.main(["--agreement", str(agreement), "--embeddings", str(root), "--json", str(out),
                "--kinds", "linear,logistic,mlp,knn_raw"])
    data = json.loads(out.read_text())
    assert data["skipped"] == [f"fbank x {task}"]
    entry, = data["pairs"]
    # evaluate's fast cell (the logistic default) is reproduced by that kind, and the standardised kind scores otherwise
    assert entry["reproducing_kind"] == "logistic" and entry["linear_reproduces"] is True
    assert entry["embedding_dir"] == str(folder)
    assert entry["kinds"]["logistic"]["score"] == fast != entry["kinds"]["linear"]["score"]
    assert set(entry["kinds"]) == {"linear", "logistic", "mlp", "knn_raw"}
    # cells made by the earlier defaults name their kinds: raw inputs with Adam, and (no record) standardised
    assert kinds.reproducing_kind({"fast_hparams": {"standardise": False}}) == "linear_raw"
    assert kinds.reproducing_kind({}) == "linear"
    assert all(0.0 <= k["score"] <= 1.0 for k in entry["kinds"].values())
    assert data["summary"]["mlp"]["scene"]["cells"] == 1
    with pytest.raises(SystemExit, match="unknown kind"):
        kinds.main(["--agreement", str(agreement), "--embeddings", str(root), "--kinds", "svm"])
    # a slow kind the cells were made with is taken from them, not run again; a variant can be scored alone
    alone = tmp_path / "kinds-alone.json"
    kinds.main(["--agreement", str(agreement), "--embeddings", str(root), "--json", str(alone), "--variants", "hubert",
                "--kinds", "logistic,linear", "--cell-kinds", "logistic"])
    entry, = json.loads(alone.read_text())["pairs"]
    assert entry["kinds"]["logistic"] == {"score": fast, "seconds": None, "from_cell": True}
    assert "linear_reproduces" not in entry and list(entry["kinds"]) == ["logistic", "linear"]
    with pytest.raises(SystemExit, match="made with logistic, not linear"):
        kinds.main(["--agreement", str(agreement), "--embeddings", str(root), "--kinds", "linear",
                    "--cell-kinds", "linear"])
    with pytest.raises(SystemExit, match="variant"):
        kinds.main(["--agreement", str(agreement), "--embeddings", str(root), "--variants", "wav2vec2"])

    # A later run scores the skipped pair (its embeddings made since) and merges the first run's pairs.
    shutil.copytree(folder, root / "embeddings" / "fbank" / folder.parent.name / task)
    later = tmp_path / "agreement-later.json"
    later.write_text(json.dumps({"pairs": [missing]}))
    merged = tmp_path / "merged.json"
    kinds.main(["--agreement", str(later), "--embeddings", str(root), "--json", str(merged),
                "--kinds", "linear,logistic,mlp,knn_raw", "--merge", str(out), "--note", "second run"])
    data = json.loads(merged.read_text())
    assert data["skipped"] == [] and sorted(p["variant"] for p in data["pairs"]) == ["fbank", "hubert"]
    assert data["summary"]["mlp"]["scene"]["cells"] == 2 and data["note"] == "second run"
    with pytest.raises(SystemExit, match="did not score kind"):
        kinds.main(["--agreement", str(later), "--embeddings", str(root), "--kinds", "knn",
                    "--merge", str(out)])
    # ... unless asked: each kind's summary covers the cells that have it, the cells it lacks are listed
    partial = tmp_path / "partial.json"
    kinds.main(["--agreement", str(later), "--embeddings", str(root), "--kinds", "knn", "--merge", str(out),
                "--partial-merge", "--json", str(partial)])
    data = json.loads(partial.read_text())
    assert data["not_scored"] == {"knn": [f"hubert x {task}"]} and data["summary"]["knn"]["scene"]["cells"] == 1
    # kinds of the same embeddings scored in separate runs join one entry; the first run's entry of a kind wins
    knn_only = tmp_path / "knn-only.json"
    kinds.main(["--agreement", str(agreement), "--embeddings", str(root), "--kinds", "knn", "--json", str(knn_only)])
    joined = tmp_path / "joined.json"
    kinds.main(["--agreement", str(agreement), "--embeddings", str(root), "--families", "none", "--kinds",
                "linear,knn", "--merge", str(out), str(knn_only), "--partial-merge", "--json", str(joined)])
    data = json.loads(joined.read_text())
    hubert = next(p for p in data["pairs"] if p["variant"] == "hubert")
    first = next(p for p in json.loads(out.read_text())["pairs"] if p["variant"] == "hubert")
    assert set(hubert["kinds"]) == {"linear", "logistic", "mlp", "knn_raw", "knn"}
    assert hubert["kinds"]["linear"] == first["kinds"]["linear"] and data["summary"]["knn"]["scene"]["cells"] == 2
    assert data["skipped"] == []  # skipped by the first run, scored by a merged one

    # --tasks scores only the named tasks (by name or folder) and refuses a task no pair is on.
    two_tasks = tmp_path / "two-tasks.json"
    two_tasks.write_text(json.dumps({"pairs": [pair, {**pair, "task": "other-v1-ci"}]}))
    only = tmp_path / "only.json"
    kinds.main(["--agreement", str(two_tasks), "--embeddings", str(root), "--json", str(only),
                "--kinds", "linear", "--tasks", task.split("-v1")[0]])
    data = json.loads(only.read_text())
    assert [(p["variant"], p["task"]) for p in data["pairs"]] == [("hubert", task)] and data["skipped"] == []
    kinds.main(["--agreement", str(two_tasks), "--embeddings", str(root), "--json", str(only),
                "--kinds", "linear", "--tasks", "other-v1-ci"])
    data = json.loads(only.read_text())
    assert data["pairs"] == [] and data["skipped"] == ["hubert x other-v1-ci"]
    with pytest.raises(SystemExit, match=r"no pair of .* is on task\(s\) kws; its tasks: "):
        kinds.main(["--agreement", str(two_tasks), "--embeddings", str(root), "--kinds", "linear", "--tasks", "kws"])


def test_fastprobe_kinds_finds_a_grid_variants_embeddings(tmp_path: Path) -> None:
    """A grid variant's embeddings lie under its folder name (``pesto__layers=0__<hash>``), not its label
    (``pesto[layers=0]``): the pair's recorded embedding folder names it."""
    kinds = load_script("fastprobe_kinds")
    recorded = "/elsewhere/embeddings/pesto__layers=0__430e1d40ba/hear_gura.pesto-layers=0/kws-v1-full"
    here = tmp_path / "embeddings" / "pesto__layers=0__430e1d40ba" / "hear_gura.pesto-layers=0" / "kws-v1-full"
    assert kinds.find_embeddings([tmp_path], "pesto[layers=0]", "kws-v1-full", recorded) is None
    here.mkdir(parents=True)
    assert kinds.find_embeddings([tmp_path], "pesto[layers=0]", "kws-v1-full") is None
    assert kinds.find_embeddings([tmp_path], "pesto[layers=0]", "kws-v1-full", recorded) == here
