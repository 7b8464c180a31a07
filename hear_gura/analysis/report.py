"""Reports of a layer analysis: ``layers-fastprobe.{csv,md,png}`` and ``layer-weights-fastprobe.png``.

All are views of the cell records of :mod:`hear_gura.analysis.layer_scores`
(one per task and member). Every title says the figures come from the fast
probe and are not HEAR scores; every file name says ``fastprobe``.

- CSV: one row per (task, member, choice, probe); ``choice`` is a state index,
  ``mean`` (equal-weight mean of the states) or ``learned`` (SUPERB's weighted
  sum); ``is_last`` / ``is_best`` mark the last state and the state chosen on
  the validation split(s).
- Markdown: per task, per member, the best single state (chosen on validation)
  next to ``last``, ``mean`` and the learned mix; then every state's score.
- PNG: per task, test score against state index for each member, with ``last``
  (dotted), ``mean`` (dashed) and the learned mix (dash-dot) as reference lines;
  and the learned weights per task.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

from hear_gura.analysis.fast_probe import FILE_TAG, LOWER_IS_BETTER, TITLE_TAG
from hear_gura.atomic import atomic_write

CSV_COLUMNS = ("task", "task_name", "member", "choice", "state", "state_name", "is_last", "is_best", "probe", "metric",
               "test", "test_std", "valid", "folds", "weight", "random_weights")


def _text(path: Path, text: str) -> None:
    atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


def _number(value: Optional[float], digits: int = 4) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _sorted(records: Sequence[Mapping[str, Any]]) -> List[Mapping[str, Any]]:
    return sorted(records, key=lambda r: (r["task"], r["member"]))


def state_label(record: Mapping[str, Any], index: int) -> str:
    """``"6 onset"`` where the member names its states (``state_names``), else ``"6"``."""
    names = record.get("state_names")
    return f"{index} {names[index]}" if names and index < len(names) else str(index)


def csv_rows(records: Sequence[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    """Every score of every cell as flat rows (see the module docstring)."""
    rows = []
    for record in _sorted(records):
        metric = record["metric"]
        learned = record.get("learned") or {}
        weights = learned.get("weights")

        def add(choice: str, state: Optional[int], probes: Mapping[str, Any]) -> None:
            for probe, found in probes.items():
                if not isinstance(found, Mapping) or "test" not in found:
                    continue
                rows.append({
                    "task": record["task"], "task_name": record["task_name"], "member": record["member"],
                    "choice": choice, "state": "" if state is None else state,
                    "state_name": "" if state is None or not record.get("state_names") else
                    record["state_names"][state],
                    "is_last": state == record["last_state"], "is_best": state == record["best_state"],
                    "probe": f"fast-{probe}", "metric": metric, "test": found["test"][metric],
                    "test_std": (found.get("test_std") or {}).get(metric, ""), "valid": found["valid"][metric],
                    "folds": len(found["per_fold"]),
                    "weight": "" if state is None or weights is None else weights[state],
                    "random_weights": record.get("random_weights", False),
                })

        for entry in record["states"]:
            add(str(entry["state"]), entry["state"], {k: v for k, v in entry.items() if k != "state"})
        add("mean", None, record["mean"])
        if learned:
            add("learned", None, {"linear": learned["linear"]})
    return rows


def write_csv(path: Path, records: Sequence[Mapping[str, Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(csv_rows(records))
    _text(path, buffer.getvalue())


def markdown(records: Sequence[Mapping[str, Any]]) -> str:
    """The Markdown report."""
    lines = [f"# Score per layer ({TITLE_TAG})", "",
             "Linear probe with fixed hyper-parameters on in-memory embeddings "
             "(`hear_gura.analysis.fast_probe`), scored with heareval's metric functions. "
             "These are NOT HEAR scores: confirm a choice with `hear-gura evaluate` (heareval's probe).", ""]
    if any(r.get("random_weights") for r in records):
        lines += ["**RANDOM fixture weights**: these numbers test the machinery, not the models.", ""]
    tasks: Dict[str, List[Mapping[str, Any]]] = {}
    for record in _sorted(records):
        tasks.setdefault(record["task"], []).append(record)
    for task, cells in tasks.items():
        metric = cells[0]["metric"]
        direction = "lower is better" if metric in LOWER_IS_BETTER else "higher is better"
        lines += [f"## {task}: test {metric} ({direction}; {TITLE_TAG})", "",
                  "| member | states | best state (valid) | best | last | mean | learned mix |",
                  "|---|---|---|---|---|---|---|"]
        for r in cells:
            states = r["states"]
            learned = (r.get("learned") or {}).get("linear")
            lines.append(
                f"| {r['member']} | {r['num_states']} | {state_label(r, r['best_state'])} | "
                f"{_number(states[r['best_state']]['linear']['test'][metric])} | "
                f"{_number(states[r['last_state']]['linear']['test'][metric])} | "
                f"{_number(r['mean']['linear']['test'][metric])} | "
                f"{_number(learned['test'][metric]) if learned else r.get('learned_skipped', 'n/a')} |")
        lines.append("")
        for r in cells:
            scene = "knn" in r["states"][0]
            weights = (r.get("learned") or {}).get("weights")
            header = "| state | linear test | linear valid |" + (" kNN test |" if scene else "") + \
                (" learned weight |" if weights else "")
            lines += [f"{r['member']}, every state:", "", header, "|" + "---|" * (header.count("|") - 1)]
            for entry in r["states"]:
                i = entry["state"]
                mark = " (last)" if i == r["last_state"] else ""
                mark += " (best on valid)" if i == r["best_state"] else ""
                row = f"| {state_label(r, i)}{mark} | {_number(entry['linear']['test'][metric])} | " \
                      f"{_number(entry['linear']['valid'][metric])} |"
                if scene:
                    row += f" {_number(entry['knn']['test'][metric])} |"
                if weights:
                    row += f" {_number(weights[i], 3)} |"
                lines.append(row)
            lines.append("")
    return "\n".join(lines)


def _figure(panels: int, title: str):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    columns = min(3, max(1, panels))
    rows = math.ceil(max(1, panels) / columns)
    figure = Figure(figsize=(5.2 * columns, 3.6 * rows + 0.6), dpi=110)
    FigureCanvasAgg(figure)
    figure.suptitle(title, fontsize=12)
    axes = [figure.add_subplot(rows, columns, k + 1) for k in range(max(1, panels))]
    return figure, axes


def _by_task(records: Sequence[Mapping[str, Any]]) -> Dict[str, List[Mapping[str, Any]]]:
    tasks: Dict[str, List[Mapping[str, Any]]] = {}
    for record in _sorted(records):
        tasks.setdefault(record["task"], []).append(record)
    return tasks


def write_scores_png(path: Path, records: Sequence[Mapping[str, Any]]) -> None:
    """Per task: test score against state index, one line per member; last / mean / learned as reference lines."""
    from matplotlib.ticker import MaxNLocator

    tasks = _by_task(records)
    random = " (RANDOM fixture weights)" if any(r.get("random_weights") for r in records) else ""
    figure, axes = _figure(len(tasks), f"Test score per layer: {TITLE_TAG}{random}")
    colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
    for axis, (task, cells) in zip(axes, tasks.items()):
        metric = cells[0]["metric"]
        for k, r in enumerate(cells):
            colour = colours[k % len(colours)]
            xs = [e["state"] for e in r["states"]]
            ys = [e["linear"]["test"][metric] for e in r["states"]]
            axis.plot(xs, ys, marker="o", markersize=3, color=colour, label=f"{r['member']} (one state)")
            best = r["best_state"]
            axis.plot([best], [ys[best]], marker="*", markersize=11, color=colour, linestyle="none")
            axis.axhline(ys[r["last_state"]], color=colour, linestyle=":", linewidth=1.2, label=f"{r['member']} last")
            axis.axhline(r["mean"]["linear"]["test"][metric], color=colour, linestyle="--", linewidth=1.2,
                         label=f"{r['member']} mean")
            learned = (r.get("learned") or {}).get("linear")
            if learned:
                axis.axhline(learned["test"][metric], color=colour, linestyle="-.", linewidth=1.2,
                             label=f"{r['member']} learned mix")
        arrow = "lower is better" if metric in LOWER_IS_BETTER else "higher is better"
        named = next((r for r in cells if r.get("state_names")), None)
        if named is not None:
            axis.set_xticks(range(len(named["state_names"])), named["state_names"], rotation=40, ha="right",
                            fontsize=7)
        else:
            axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_title(f"{task}", fontsize=10)
        # unnamed states are SSL hidden states, whose state 0 is the input to the first layer; named ones say
        # what they are (CREPE's conv1 is state 0)
        axis.set_xlabel("state (* = best on valid)" if named is not None
                        else "state (0 = input to the first layer; * = best on valid)")
        axis.set_ylabel(f"test {metric} ({arrow})")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7, loc="best")
    figure.tight_layout(rect=(0, 0, 1, 0.95))
    atomic_write(path, lambda handle: figure.savefig(handle, format="png"))


def write_weights_png(path: Path, records: Sequence[Mapping[str, Any]]) -> bool:
    """Per task: the learned (softmax) weight of each state, one line per member; False when none were learned."""
    tasks = {t: [r for r in cells if (r.get("learned") or {}).get("weights")] for t, cells in _by_task(records).items()}
    tasks = {t: cells for t, cells in tasks.items() if cells}
    if not tasks:
        return False
    figure, axes = _figure(len(tasks), f"Learned layer weights (SUPERB weighted sum): {TITLE_TAG}")
    for axis, (task, cells) in zip(axes, tasks.items()):
        for r in cells:
            weights = r["learned"]["weights"]
            line, = axis.plot(range(len(weights)), weights, marker="o", markersize=3, label=r["member"])
            axis.axhline(1.0 / len(weights), color=line.get_color(), linestyle=":", linewidth=1)
        axis.set_title(f"{task} (dotted: equal weights)", fontsize=10)
        axis.set_xlabel("state")
        axis.set_ylabel("softmax weight")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    figure.tight_layout(rect=(0, 0, 1, 0.95))
    atomic_write(path, lambda handle: figure.savefig(handle, format="png"))
    return True


def write_reports(out: Path, records: Sequence[Mapping[str, Any]]) -> Dict[str, Path]:
    """Write every report of these cell records into ``out``; returns name -> path."""
    files = {"csv": out / f"layers-{FILE_TAG}.csv", "md": out / f"layers-{FILE_TAG}.md",
             "png": out / f"layers-{FILE_TAG}.png"}
    write_csv(files["csv"], records)
    _text(files["md"], markdown(records) + "\n")
    write_scores_png(files["png"], records)
    weights = out / f"layer-weights-{FILE_TAG}.png"
    if write_weights_png(weights, records):
        files["weights_png"] = weights
    return files
