"""The README's measured figures are rendered from committed files, and agree with them."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from eval_scripts_loader import load_script

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


@pytest.fixture(scope="module")
def figures():
    return load_script("readme_figures")


def outside_blocks(text: str) -> str:
    """A document without its generated blocks and code fences."""
    text = re.sub(r"<!-- figures:([\w-]+) BEGIN.*?<!-- figures:\1 END -->", "", text, flags=re.DOTALL)
    return re.sub(r"```.*?```", "", text, flags=re.DOTALL)


def test_the_documents_figures_agree_with_their_files(figures):
    texts = figures.read_documents()
    assert set(texts) == {"README.md", "docs/fast-probe-validation.md"}
    assert figures.render_documents(texts) == texts, "run: python eval_scripts/readme_figures.py"


def test_check_mode_fails_on_an_edited_figure_in_either_document(figures, tmp_path):
    texts = figures.read_documents()
    for doc, name in (("README.md", "bench-cpu"), ("docs/fast-probe-validation.md", "fastprobe-envsweep")):
        block = re.search(rf"<!-- figures:{name} BEGIN.*?<!-- figures:{name} END -->", texts[doc], re.DOTALL).group(0)
        figure = re.search(r"\d+\.\d+x", block).group(0)
        edited = dict(texts, **{doc: texts[doc].replace(block, block.replace(figure, "9.99x", 1))})
        for relative, text in edited.items():
            (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / relative).write_text(text)
        result = subprocess.run([sys.executable, str(ROOT / "eval_scripts" / "readme_figures.py"), "--check",
                                 "--docs-root", str(tmp_path)], capture_output=True, text=True)
        assert result.returncode != 0 and "9.99x" in result.stderr and doc in result.stderr
        assert "9.99x" in (tmp_path / doc).read_text()  # --check changes nothing


def test_a_changed_figure_file_changes_the_readme(figures, tmp_path):
    """Re-measuring a figure (a new JSON) must show in the rendered README."""
    for relative in ("eval_scripts", "ensembles", "hear_gura/data"):
        shutil.copytree(ROOT / relative, tmp_path / relative, ignore=shutil.ignore_patterns("*.png", "*.py"))
    bench = tmp_path / "eval_scripts" / "bench-cpu-layers2.json"
    data = json.loads(bench.read_text())
    data["fusion_cat.batch16x4s.speedup"] = 9.87
    bench.write_text(json.dumps(data))
    texts = figures.read_documents()
    rendered = figures.render_documents(texts, tmp_path)
    assert rendered["README.md"] != texts["README.md"] and "**9.87x**" in rendered["README.md"]


def test_every_block_is_in_one_document_once(figures):
    texts = figures.read_documents()
    without = re.sub(r"<!-- figures:windowing BEGIN.*?<!-- figures:windowing END -->", "", texts["README.md"],
                     flags=re.DOTALL)
    with pytest.raises(figures.FiguresError, match="missing \\['windowing'\\]"):
        figures.render_documents(dict(texts, **{"README.md": without}))
    extra = texts["README.md"] + "\n<!-- figures:nonsense BEGIN -->\n1.0x\n<!-- figures:nonsense END -->\n"
    with pytest.raises(figures.FiguresError, match="unknown \\['nonsense'\\]"):
        figures.render_documents(dict(texts, **{"README.md": extra}))
    block = re.search(r"^<!-- figures:demo-time BEGIN.*?^<!-- figures:demo-time END -->", texts["README.md"],
                      re.DOTALL | re.MULTILINE).group(0)
    doc = "docs/fast-probe-validation.md"
    with pytest.raises(figures.FiguresError, match="repeated \\['demo-time'\\] \\(in"):
        figures.render_documents(dict(texts, **{doc: texts[doc] + "\n" + block + "\n"}))


@pytest.mark.parametrize("document", ["README.md", "docs/fast-probe-validation.md"])
def test_no_measured_figure_outside_the_generated_blocks(document):
    """Speed-ups, memory, FLOP/s, percentages and durations of runs live in generated blocks only."""
    prose = outside_blocks((ROOT / document).read_text())
    pattern = r"\b\d[\d,.]*\s?(?:x\b|MB|GB|GFLOP|TFLOP|%|min\b|minutes|hours?\b)"
    allowed = {"2 x", "4.x", "5.x"}  # "the 2 x 2 grid"; transformers 4.x / 5.x
    hits = [m.group(0) for m in re.finditer(pattern, prose) if m.group(0) not in allowed]
    assert not hits, f"measured figures outside {document}'s figure blocks: {hits}"


def test_suite_sizes_file_matches_the_builder():
    sizes = load_script("suite_sizes")
    recorded = json.loads((ROOT / "eval_scripts" / "suite-sizes.json").read_text())
    assert recorded["ci"] == json.loads(json.dumps(sizes.suite_sizes("ci", recorded["seed"])))


def test_a_cell_measured_twice_for_the_real_members_is_refused(figures, tmp_path):
    """A later folder's cell that results-real also has would make two scores for one (variant, task): refuse."""
    shutil.copytree(ROOT / "eval_scripts", tmp_path / "eval_scripts", ignore=shutil.ignore_patterns("*.png", "*.py"))
    assert figures.REAL_LATER, "no later real-member folder to test with"
    later = tmp_path / figures.REAL_LATER[0] / "results.csv"
    real = tmp_path / figures.REAL / "results.csv"
    real_scores, _ = figures.real_scores(tmp_path)
    assert ("crepe_basic_pitch", "maestro_like_onset") in real_scores
    real.write_text(real.read_text() + "".join(later.read_text().splitlines(keepends=True)[1:]))
    with pytest.raises(figures.FiguresError, match="in both"):
        figures.real_scores(tmp_path)


def test_the_heareval_cells_of_a_layer_mix_must_run_the_exported_mix(figures, tmp_path):
    """The layer-loop table compares heareval on the exported mix with the analysis: another mix is refused."""
    shutil.copytree(ROOT / "eval_scripts", tmp_path / "eval_scripts", ignore=shutil.ignore_patterns("*.png", "*.py"))
    cells_folder, analysis = figures.LAYER_LOOPS[0]
    assert "exported mix" in figures.layer_loop(tmp_path)
    mix_file = tmp_path / analysis / "mix.json"
    mix = json.loads(mix_file.read_text())
    for options in mix["model_options"].values():
        weights = options["layers"][next(iter(options["layers"]))]["weights"]
        weights[0], weights[-1] = weights[-1], weights[0] + 1e-3
    mix_file.write_text(json.dumps(mix))
    with pytest.raises(figures.FiguresError, match="is not the mix"):
        figures.layer_loop(tmp_path)


def test_the_speech_pitch_pair_verdict_follows_the_cells(figures, tmp_path):
    """The pitch row compares the fusion's mean over heareval's runs with each member's: pushing the fusion's runs
    below the members turns the row to "no" and the target to "not met"; above, the row turns to "yes"."""
    shutil.copytree(ROOT / "eval_scripts", tmp_path / "eval_scripts", ignore=shutil.ignore_patterns("*.png", "*.py"))
    folder, fusion, _ = figures.SPEECH_PITCH_PAIR

    def set_fusion_pitch(value: float) -> None:
        for name in (*figures.SPEECH_PITCH_SEEDS, folder):
            results = tmp_path / name / "results.csv"
            if not results.is_file():
                continue
            reader = csv.DictReader(io.StringIO(results.read_text()))
            rows = list(reader)
            for row in rows:
                if row["variant"] == fusion and row["task_name"] == "nsynth_like_pitch":
                    runs = len(json.loads(row["seed_scores"])) if row["seed_scores"] else 1
                    row["score"] = str(value)
                    row["seed_scores"] = json.dumps([value] * runs) if row["seed_scores"] else ""
            out = io.StringIO()
            writer = csv.DictWriter(out, fieldnames=reader.fieldnames, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
            results.write_text(out.getvalue())

    def pitch_row(rendered: str) -> list[str]:
        row = next(line for line in rendered.splitlines() if line.startswith("| nsynth_like_pitch |"))
        return [cell.strip() for cell in row.strip("|").split("|")]

    set_fusion_pitch(0.001)
    rendered = figures.speech_pitch_pair(tmp_path)
    assert pitch_row(rendered)[-2].startswith("no (0 of") and f"target with `{fusion}` (mean over the row's heareval runs): **not met**" in rendered
    set_fusion_pitch(0.999)
    rendered = figures.speech_pitch_pair(tmp_path)
    assert pitch_row(rendered)[-2].startswith("yes") and pitch_row(rendered)[2].startswith("0.999")


def test_heareval_against_itself_names_the_thread_comparison_when_a_cell_is_unchanged(figures, tmp_path):
    """The one-thread vs two-thread line keeps its whole sentence when some cell did not change at all."""
    shutil.copytree(ROOT / "eval_scripts", tmp_path / "eval_scripts", ignore=shutil.ignore_patterns("*.png", "*.py"))
    path = tmp_path / "eval_scripts" / "fastprobe-agreement-env-seeds.json"
    data = json.loads(path.read_text())
    committed = figures.cells(figures.load_csv(tmp_path, f"{figures.REAL_LATER[0]}/results.csv"))
    pair = data["pairs"][0]
    pair["heareval_seed_scores"][0] = float(committed[(pair["variant"], pair["task"].split("-v1")[0])]["score"])
    path.write_text(json.dumps(data))
    line = next(x for x in figures.heareval_self_env(tmp_path).splitlines() if "at one CPU thread" in x)
    assert line.startswith("The same heareval run (seed 42)") and re.search(r"; \d+ of 21 cells changed\.$", line)
    assert "every cell changed" in next(x for x in figures.heareval_self_env(ROOT).splitlines()
                                        if "at one CPU thread" in x)


def test_member_additions_compares_one_machine_only_and_subtracts_means(figures, tmp_path):
    """Each 'what adding one member changes' entry is the fusion's mean over its runs minus the base's, read
    here straight from the folders' results.csv; a folder from another machine is refused, not mixed in."""
    shutil.copytree(ROOT / "eval_scripts", tmp_path / "eval_scripts", ignore=shutil.ignore_patterns("*.png", "*.py"))
    rendered = figures.member_additions(tmp_path)
    best: dict = {}
    for folder in figures.THIS_MACHINE:
        with (tmp_path / folder / "results.csv").open(newline="") as handle:
            for row in csv.DictReader(handle):
                if row["score"]:
                    runs = json.loads(row["seed_scores"]) if row.get("seed_scores") else [float(row["score"])]
                    key = (row["variant"], row["task_name"])
                    if key not in best or len(runs) > len(best[key]):
                        best[key] = runs
    mean = {k: sum(v) / len(v) for k, v in best.items()}
    additions = rendered.split("What adding one member changes")[1]
    row = next(line for line in additions.splitlines() if line.startswith("| speaker_id |"))
    expected = [f"{mean[(fusion, 'speaker_id')] - mean[(base, 'speaker_id')]:+.3f}"
                for _, base, fusion in figures.ADDITIONS]
    assert row.strip("| ").split(" | ")[1:] == expected
    provenance = tmp_path / figures.THIS_MACHINE[0] / "provenance.json"
    data = json.loads(provenance.read_text())
    provenance.write_text(json.dumps({**data, "machine": "an earlier 2-core machine (AVX2, no GPU)"}))
    with pytest.raises(figures.FiguresError, match="not this AVX-512 machine"):
        figures.member_additions(tmp_path)


def test_onset_target_is_met_only_when_every_comparison_holds_and_open_while_a_cell_is_missing(figures):
    """Issue 12's onset target on one machine's cells: above fbank AND CREPE on BOTH onset tasks, pitch >= 0.95."""
    scores = {("fbank", "maestro_like_onset"): 0.30, ("crepe", "maestro_like_onset"): 0.24,
              ("fbank", "dcase_like_events"): 0.13, ("crepe", "dcase_like_events"): 0.09,
              ("crepe_basic_pitch", "maestro_like_onset"): 0.32, ("crepe_basic_pitch", "dcase_like_events"): 0.15,
              ("crepe_basic_pitch", "nsynth_like_pitch"): 0.96,
              ("fbank_crepe_basic_pitch", "maestro_like_onset"): 0.29,  # below fbank on one task only
              ("fbank_crepe_basic_pitch", "dcase_like_events"): 0.25,
              ("fbank_crepe_basic_pitch", "nsynth_like_pitch"): 0.96,
              ("resemblyzer_basic_pitch", "dcase_like_events"): 0.20,  # its maestro cell is missing
              ("resemblyzer_basic_pitch", "nsynth_like_pitch"): 0.96}

    def verdict(fusion: str) -> str:
        table = figures.onset_target(lambda v, t: scores.get((v, t)))
        return next(x for x in table.splitlines() if x.startswith(f"| {fusion} |")).split(" | ")[-1].rstrip(" |")
    assert verdict("crepe_basic_pitch") == "**met**"
    assert verdict("fbank_crepe_basic_pitch") == "**not met**"
    assert verdict("resemblyzer_basic_pitch").startswith("open")
    scores[("crepe_basic_pitch", "nsynth_like_pitch")] = 0.949
    assert verdict("crepe_basic_pitch") == "**not met**"


def test_heldout_verdict_follows_the_plan(figures):
    """eval_scripts/fastprobe-heldout-plan.md: linear_raw becomes the default only if it agrees with heareval at
    least as well as linear pooled AND on the held-out task; the target is judged on the default so chosen."""
    def kind(pooled: float, kws: float) -> dict:
        return {"spearman_pooled": pooled, "spearman_per_task": {figures.HELDOUT_TASK: kws}}

    both = figures.heldout_verdict({"linear": kind(0.80, 0.60), "linear_raw": kind(0.91, 0.60)})
    assert both["default"] == "linear_raw" and both["target_met"] and both["default_pooled"] == 0.91
    pooled_only = figures.heldout_verdict({"linear": kind(0.80, 0.70), "linear_raw": kind(0.91, 0.60)})
    assert pooled_only["default"] == "linear" and not pooled_only["held_out"] and not pooled_only["target_met"]
    task_only = figures.heldout_verdict({"linear": kind(0.92, 0.60), "linear_raw": kind(0.91, 0.90)})
    assert task_only["default"] == "linear" and task_only["target_met"] and not task_only["pooled"]
    below = figures.heldout_verdict({"linear": kind(0.80, 0.60), "linear_raw": kind(0.89, 0.95)})
    assert below["default"] == "linear_raw" and not below["target_met"]


def test_sweep_verdict_follows_the_plan(figures):
    """eval_scripts/fastprobe-sweep-plan.md: ridge replaces linear_raw only if it agrees at 0.9 pooled AND within
    0.05 of linear_raw; the scene target is re-tested on linear_raw; the speed target on the default's slowest cell."""
    def kind(pooled: float, slowest: float) -> dict:
        return {"spearman_pooled": pooled, "speedup_min": slowest}

    close = figures.sweep_verdict({"linear_raw": kind(0.94, 2.0), "ridge": kind(0.91, 12.0)})
    assert close["default"] == "ridge" and close["raw_target_met"] and close["speed_met"]
    worse = figures.sweep_verdict({"linear_raw": kind(0.97, 2.0), "ridge": kind(0.91, 12.0)})
    assert worse["default"] == "linear_raw" and worse["candidate_agrees"] and not worse["candidate_close"]
    assert not worse["speed_met"] and worse["default_pooled"] == 0.97
    below = figures.sweep_verdict({"linear_raw": kind(0.88, 11.0), "ridge": kind(0.89, 50.0)})
    assert below["default"] == "linear_raw" and below["candidate_close"] and not below["candidate_agrees"]
    assert not below["raw_target_met"] and below["speed_met"]
    slow = figures.sweep_verdict({"linear_raw": kind(0.90, 3.0), "ridge": kind(0.95, 9.9)})
    assert slow["default"] == "ridge" and not slow["speed_met"]


def test_logistic_plan_verdict(figures):
    """eval_scripts/fastprobe-logistic-plan.md: the sweep plan's rule with logistic as the candidate; the scene
    target is tested on the default it decides, not on linear_raw."""
    def kind(pooled: float, slowest: float) -> dict:
        return {"spearman_pooled": pooled, "speedup_min": slowest}

    wins = figures.plan_verdict({"linear_raw": kind(0.89, 0.8), "logistic": kind(0.93, 9.4)}, "logistic")
    assert wins["default"] == "logistic" and wins["target_met"] and not wins["raw_target_met"]
    assert not wins["speed_met"] and wins["default_pooled"] == 0.93
    loses = figures.plan_verdict({"linear_raw": kind(0.97, 0.8), "logistic": kind(0.91, 40.0)}, "logistic")
    assert loses["default"] == "linear_raw" and loses["target_met"] and not loses["speed_met"]


def test_event_verdict_follows_the_addendum(figures):
    """eval_scripts/fastprobe-families-plan.md's addendum: a kind with no onset (F 0 or NaN) on more than half the
    event cells is not eligible; the eligible kind of highest pooled Spearman wins, ties to the lower median
    seconds; none eligible keeps logistic (default None)."""
    nan = float("nan")

    def kinds(scores: dict, pooled: dict, seconds: dict) -> dict:
        cells = len(next(iter(scores.values())))
        pairs = [{"family": "event", "heareval": 0.1 * i, "kinds": {k: {"score": v[i]} for k, v in scores.items()}}
                 for i in range(cells)]
        summary = {k: {"event": {"spearman_pooled": pooled[k], "seconds_median": seconds[k]}} for k in scores}
        return {"pairs": pairs, "summary": summary}

    scores = {"logistic": [0.0, nan, 0.0, 0.3], "linear": [0.1, 0.2, 0.0, 0.3], "linear_raw": [nan, 0.2, 0.1, 0.3]}
    verdict = figures.event_verdict(kinds(scores, {"logistic": 0.99, "linear": 0.7, "linear_raw": 0.8},
                                          {"logistic": 1.0, "linear": 2.0, "linear_raw": 3.0}))
    assert verdict["no_onset"] == {"logistic": 3, "linear": 1, "linear_raw": 1}
    assert verdict["eligible"] == ["linear", "linear_raw"] and verdict["default"] == "linear_raw"
    tie = figures.event_verdict(kinds(scores, {"logistic": 0.99, "linear": 0.8, "linear_raw": 0.8},
                                      {"logistic": 1.0, "linear": 2.0, "linear_raw": 3.0}))
    assert tie["default"] == "linear"
    none = {"logistic": [0.0] * 4, "linear": [nan] * 4, "linear_raw": [0.0, 0.0, 0.0, 0.1]}
    assert figures.event_verdict(kinds(none, {k: 0.5 for k in none}, {k: 1.0 for k in none}))["default"] is None
    # a kind scored on some cells only: ruled out once its no-onset cells pass half of all cells, never ruled in
    data = kinds(scores, {"logistic": 0.99, "linear": 0.7, "linear_raw": 0.8}, {k: 1.0 for k in scores})
    data["pairs"].append({"family": "event", "heareval": 0.9,
                          "kinds": {"linear": {"score": 0.2}, "linear_raw": {"score": 0.0}}})
    partial = figures.event_verdict(data)
    assert partial["scored"] == {"logistic": 4, "linear": 5, "linear_raw": 5} and partial["cells"] == 5
    assert partial["no_onset"]["logistic"] == 3 and partial["eligible"] == ["linear", "linear_raw"]
    data["pairs"][0]["kinds"]["logistic"]["score"] = 0.5  # 2 of 4 scored: would be eligible, but one is missing
    assert "logistic" not in figures.event_verdict(data)["eligible"]


def test_the_fast_probe_of_each_task_type_is_the_kind_its_test_chose(figures):
    """What evaluate --probe fast runs is what the committed measurements decided: on event tasks the kind the
    addendum's rule picks from fastprobe-kinds-families.json, on scene tasks the logistic kind, both as
    fastprobe_kinds.py defines them (the kinds the README's tables score)."""
    from dataclasses import replace

    from hear_gura.analysis.fast_probe import ProbeConfig, variant_probe

    kinds_script = load_script("fastprobe_kinds")
    data = json.loads((ROOT / "eval_scripts" / "fastprobe-kinds-families.json").read_text())
    chosen = figures.event_verdict(data)["default"] or "logistic"

    def config(kind: str) -> ProbeConfig:
        probe, overrides = kinds_script.KINDS[kind]
        assert probe == "linear"
        return replace(ProbeConfig(), **overrides)

    assert variant_probe("event") == config(chosen)
    assert variant_probe("scene") == config("logistic")


def test_best_possible_spearman_is_what_an_exhaustive_search_finds(figures):
    """The bound of a partly scored kind equals the best Spearman over every way to fill its missing scores
    (here: each on a fine grid of values around the known ones, in any order, ties included)."""
    import itertools
    import random

    from fastprobe_agreement import rank_value, spearman

    rng = random.Random(1)
    for _ in range(6):
        reference = [rng.random() for _ in range(7)]
        scores = [rng.choice([0.0, float("nan"), round(rng.random(), 1)]) for _ in range(7)]
        missing = rng.sample(range(7), 3)
        partial = [None if i in missing else s for i, s in enumerate(scores)]
        known = sorted({rank_value(s) for s in partial if s is not None})
        edges = [known[0] - 1] + known + [known[-1] + 1]
        grid = sorted(set(known) | {lo + (hi - lo) * k / 8 for lo, hi in zip(edges, edges[1:]) for k in range(1, 8)})
        best = -1.0
        for values in itertools.product(grid, repeat=3):
            filled = list(partial)
            for i, v in zip(missing, values):
                filled[i] = v
            rho = spearman(reference, filled)
            best = max(best, -1.0 if rho is None else rho)
        assert figures.best_possible_spearman(reference, partial) == pytest.approx(best, abs=1e-12)


def test_event_verdict_waits_for_a_partly_scored_kind_that_could_still_win(figures):
    """A kind scored on some cells only decides nothing while its best possible pooled Spearman reaches the chosen
    kind's; once even its best stays below, the verdict stands."""
    reference = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]

    def data(partial: list) -> dict:
        full = [0.1, 0.2, 0.3, 0.4, 0.6, 0.5]  # pooled 0.94 against reference
        pairs = [{"family": "event", "heareval": h,
                  "kinds": {"linear": {"score": f}, "linear_raw": {"score": f},
                            **({} if p is None else {"logistic": {"score": p}})}}
                 for h, f, p in zip(reference, full, partial)]
        from fastprobe_agreement import spearman
        summary = {k: {"event": {"spearman_pooled": spearman(reference, [q["kinds"][k]["score"] for q in pairs
                                                                          if k in q["kinds"]]) if k != "logistic"
                                 else None, "seconds_median": 1.0}} for k in ("logistic", "linear", "linear_raw")}
        return {"pairs": pairs, "summary": summary}

    could_win = figures.event_verdict(data([0.1, 0.2, 0.3, None, None, None]))
    assert could_win["undecided"] == ["logistic"] and could_win["default"] is None
    assert could_win["best_possible"]["logistic"] == pytest.approx(1.0)
    cannot = figures.event_verdict(data([0.6, 0.5, 0.4, None, None, None]))  # already ranked backwards
    assert cannot["undecided"] == [] and cannot["default"] == "linear"
    assert cannot["best_possible"]["logistic"] < 0.94


def test_a_rho_just_under_the_target_never_reads_as_meeting_it(figures):
    """Two decimals would print 0.898 as 0.90, which reads as meeting the 0.9 target: such values get three."""
    assert [figures.rho_text(v) for v in (0.898, 0.895, 0.8949, 0.9, 0.93, None)] == [
        "0.898", "0.895", "0.89", "0.90", "0.93", "n/a"]


def test_the_targets_block_refuses_one_machine_timings_of_other_seconds(figures, tmp_path):
    """issue-targets divides heareval's seconds here by the kind's seconds of the kinds file: a same-machine file
    whose kind seconds are not the kinds file's (timed in another run) is refused, and a cell it lacks too."""
    shutil.copytree(ROOT / "eval_scripts", tmp_path / "eval_scripts", ignore=shutil.ignore_patterns("*.png", "*.py"))
    figures.issue_targets(tmp_path)  # the committed files render
    same = tmp_path / "eval_scripts" / "heareval-same-machine-pitch.json"
    data = json.loads(same.read_text())
    data["cells"][0]["kinds"]["logistic"]["seconds"] += 0.01
    same.write_text(json.dumps(data))
    with pytest.raises(figures.FiguresError, match="seconds are not"):
        figures.issue_targets(tmp_path)
    data["cells"] = data["cells"][1:]
    same.write_text(json.dumps(data))
    with pytest.raises(figures.FiguresError, match="lacks the cells"):
        figures.issue_targets(tmp_path)


def test_the_targets_block_judges_a_family_by_its_reference_file_and_refuses_one_of_other_scores(figures, tmp_path):
    """Where a row names a fastprobe_reference.py file (more heareval runs), the scene verdict is taken against the
    mean of all its runs, not the kinds file's committed runs; a reference file whose kind scores are not the kinds
    file's is refused."""
    shutil.copytree(ROOT / "eval_scripts", tmp_path / "eval_scripts", ignore=shutil.ignore_patterns("*.png", "*.py"))
    reference = tmp_path / "eval_scripts" / "fastprobe-reference-env.json"
    data = json.loads(reference.read_text())
    row = "| scene, environmental and language ensembles: 24 | `logistic` | "
    def missed(block: str) -> str:
        return block.split("Rank correlation of at least 0.9 on scene tasks: ")[1].split(". At least")[0]

    block = figures.issue_targets(tmp_path)
    assert row + figures.rho_text(data["kinds"]["logistic"]["all"]["pooled"]) in block
    assert "environmental and language ensembles" in missed(block)  # 0.885 against the six runs
    data["kinds"]["logistic"]["all"]["pooled"] = 0.95
    reference.write_text(json.dumps(data))
    block = figures.issue_targets(tmp_path)
    assert row + "0.95" in block and "environmental and language ensembles" not in missed(block)
    data["pairs"][0]["kinds"]["logistic"] += 0.01
    reference.write_text(json.dumps(data))
    with pytest.raises(figures.FiguresError, match="scores are not"):
        figures.issue_targets(tmp_path)


def test_the_same_machine_block_refuses_kind_seconds_other_than_its_kinds_files(figures, tmp_path):
    """heareval-same-machine divides heareval's seconds here by the kinds file's: a same-machine file whose kind
    seconds are not those of the kinds file its row names is refused; a re-made row reports its identical scores."""
    shutil.copytree(ROOT / "eval_scripts", tmp_path / "eval_scripts", ignore=shutil.ignore_patterns("*.png", "*.py"))
    block = figures.heareval_same_machine(tmp_path)
    kinds = json.loads((tmp_path / "eval_scripts" / "fastprobe-kinds-logistic-now.json").read_text())
    assert f"in {4 * len(kinds['pairs'])} of {4 * len(kinds['pairs'])} (cell, kind) pairs" in block
    same = tmp_path / "eval_scripts" / "heareval-same-machine-speech.json"
    data = json.loads(same.read_text())
    data["cells"][3]["kinds"]["logistic"]["seconds"] *= 2
    same.write_text(json.dumps(data))
    with pytest.raises(figures.FiguresError, match="seconds are not"):
        figures.heareval_same_machine(tmp_path)


def test_rank_departure_names_the_variant_a_kind_places_furthest_from_heareval(figures):
    """Within one task: heareval's order by its mean of all runs against the kind's order by its scores."""
    def pair(variant, mean, score, task="t-v1-full"):
        return {"variant": variant, "task": task, "heareval_mean_all": mean, "heareval_committed": [mean - 0.01],
                "heareval_here": [mean + 0.01], "kinds": {"logistic": score}}

    pairs = [pair("a", 0.9, 0.5), pair("b", 0.8, 0.7), pair("c", 0.7, 0.6), pair("d", 0.5, 0.1, "other-v1-full")]
    assert figures.rank_departure(pairs, "t-v1-full", "logistic") == (
        "t: a heareval 1st (0.900 ± 0.014), `logistic` 3rd (0.500)")
    assert figures.rank_departure([pair("a", 0.9, 0.9), pair("b", 0.8, 0.7)], "t-v1-full", "logistic") == (
        "t: every variant in heareval's place")


def test_the_intervals_block_refuses_an_intervals_file_older_than_its_tests(figures, tmp_path):
    """fastprobe-intervals renders from fastprobe_intervals.py's file: a kinds file changed after it (another score
    of one cell) makes the file's rho stale, and the block refuses it; the layer-sweep row of issue-targets, whose
    heareval runs were made on the machine that timed the kinds, gives the same speed-ups in both speed columns."""
    shutil.copytree(ROOT / "eval_scripts", tmp_path / "eval_scripts", ignore=shutil.ignore_patterns("*.png", "*.py"))
    block = figures.fastprobe_intervals(tmp_path)
    assert "| Resemblyzer and Basic Pitch layer sweep, environmental and language" in block
    targets = figures.issue_targets(tmp_path)
    row = next(line for line in targets.splitlines() if line.startswith("| scene, environmental and language tasks, layer"))
    plans, here = row.strip("| ").split(" | ")[-2:]
    assert plans == here
    kinds = tmp_path / "eval_scripts" / "fastprobe-kinds-envsweep.json"
    data = json.loads(kinds.read_text())
    data["pairs"][0]["kinds"]["logistic"]["score"] = 1.0
    kinds.write_text(json.dumps(data))
    with pytest.raises(figures.FiguresError, match="run fastprobe_intervals.py again"):
        figures.fastprobe_intervals(tmp_path)


def test_a_targets_row_timed_on_one_machine_for_some_cells_names_them_and_still_refuses_other_seconds(figures,
                                                                                                       tmp_path):
    """A TargetRow with some_cells: its one-machine column covers the cells the same-machine file has (named in
    the block), a file with none of the row's cells is refused, and other kind seconds still are."""
    shutil.copytree(ROOT / "eval_scripts", tmp_path / "eval_scripts", ignore=shutil.ignore_patterns("*.png", "*.py"))
    pitch = next(row for row in figures.TARGET_ROWS if row.family == "pitch")
    same = tmp_path / "eval_scripts" / pitch.same_machine
    data = json.loads(same.read_text())
    kept = data["cells"][0]
    data["cells"] = [kept]
    same.write_text(json.dumps(data))
    rows = tuple(row._replace(some_cells=True) if row is pitch else row for row in figures.TARGET_ROWS)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(figures, "TARGET_ROWS", rows)
        block = figures.issue_targets(tmp_path)
        assert f"{pitch.what}: 1 of 16 cells, {kept['variant']} on {kept['task'].split('-v1')[0]}" in block
        kept["kinds"]["logistic"]["seconds"] += 0.01
        same.write_text(json.dumps(data))
        with pytest.raises(figures.FiguresError, match="seconds are not"):
            figures.issue_targets(tmp_path)
        data["cells"] = []
        same.write_text(json.dumps(data))
        with pytest.raises(figures.FiguresError, match="lacks the cells"):
            figures.issue_targets(tmp_path)


def test_the_sixth_tests_verdict_must_match_the_codes_default(figures, tmp_path):
    """The fastprobe-projected block applies the plan's rule to its kinds file and refuses to render when
    fast_probe.VARIANT_PROBE does not follow it (here: a kinds file in which `projected` would have been adopted)."""
    shutil.copytree(ROOT / "eval_scripts", tmp_path / "eval_scripts", ignore=shutil.ignore_patterns("*.png", "*.py"))
    assert "`projected` is not adopted" in figures.fastprobe_projected(tmp_path)
    kinds = tmp_path / "eval_scripts" / figures.PROJECTED[0]
    data = json.loads(kinds.read_text())
    data["summary"]["projected"]["scene"]["spearman_pooled"] = 0.95
    kinds.write_text(json.dumps(data))
    with pytest.raises(figures.FiguresError, match="make the code follow the rule"):
        figures.fastprobe_projected(tmp_path)


def test_the_mlp_diagnostics_reading_follows_its_plan_and_checks_its_cells(figures, tmp_path):
    """The fastprobe-mlp block reads the plan's branch from its files (the class branch only when `mlp` reaches 0.9
    on both tests) and refuses files whose refitted `logistic` scores are not the tests' committed ones."""
    shutil.copytree(ROOT / "eval_scripts", tmp_path / "eval_scripts", ignore=shutil.ignore_patterns("*.png", "*.py"))
    assert "not shown to be the linear class" in figures.fastprobe_mlp(tmp_path)
    (reference_name, _), (pesto_name, _) = figures.MLP_DIAGNOSTIC
    reference = tmp_path / "eval_scripts" / reference_name
    data = json.loads(reference.read_text())
    data["kinds"]["mlp"]["all"]["pooled"] = 0.95
    reference.write_text(json.dumps(data))
    pesto = tmp_path / "eval_scripts" / pesto_name
    data = json.loads(pesto.read_text())
    data["summary"]["mlp"]["scene"]["spearman_pooled"] = 0.92
    pesto.write_text(json.dumps(data))
    assert "(at least partly) the linear class" in figures.fastprobe_mlp(tmp_path)
    data["pairs"][0]["kinds"]["logistic"]["score"] += 0.01
    pesto.write_text(json.dumps(data))
    with pytest.raises(figures.FiguresError, match="not the test's cells"):
        figures.fastprobe_mlp(tmp_path)
