"""Reports of an evaluation: ``results.csv``, ``results.md`` and ``results.png``.

All three are views of one :class:`ScoreTable` (rows = variants, then
published reference rows; columns = tasks; cells = the primary test metric,
``mean ± std`` over seeds when a cell has several probe runs), so they always
agree. The CSV has one row per (variant, task) with every detail; reference
rows are marked in its ``source`` column. Fast-probe reports are the same
views, written to ``results-fastprobe.*`` and titled as not HEAR scores.

:func:`per_class_rows` / :func:`write_per_class` write the per-class table of
one task (``per-class-<task>.{md,csv}``): rows = classes, columns = variants.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from hear_gura.atomic import atomic_write
from hear_gura.harness.grid import Variant
from hear_gura.harness.scores import LOWER_IS_BETTER, TaskInfo

MEASURED = "measured"
REFERENCE = "GURA leaderboard"
RANDOM_SUFFIX = " (random weights)"
PUBLISHED_SUFFIX = " (published)"

CSV_COLUMNS = (
    "source", "ensemble", "variant", "options", "task", "task_name", "metric", "score", "score_std", "folds",
    "secondary", "embedding_width", "embed_seconds", "predict_seconds", "random_weights", "grid_points",
    "probe_grid", "probe", "seeds", "seed_std", "seed_scores",
)
PER_CLASS_COLUMNS = ("task", "variant", "probe", "metric", "class", "score", "seed_std", "seeds", "support")


@dataclass
class ScoreRow:
    """One row of the table: a variant (``measured``) or a published model (``reference``).

    ``spreads``: per column, the standard deviation over seeds (None: one run, or none).
    """

    label: str
    kind: str
    values: List[Optional[float]]
    spreads: List[Optional[float]] = field(default_factory=list)

    def spread(self, column: int) -> Optional[float]:
        return self.spreads[column] if column < len(self.spreads) else None


@dataclass
class ScoreTable:
    """Primary scores, rows x tasks.

    Attributes:
        tasks: the task folders (columns).
        metrics: each column's primary metric.
        rows: measured rows first, then reference rows.
        notes: lines printed under the Markdown table.
    """

    tasks: List[str]
    metrics: List[str]
    rows: List[ScoreRow] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)

    def lower_is_better(self, column: int) -> bool:
        return self.metrics[column] in LOWER_IS_BETTER

    def best(self, column: int) -> Optional[float]:
        """The best measured value of a column (None when none was measured)."""
        values = [r.values[column] for r in self.rows if r.kind == MEASURED and _finite(r.values[column])]
        if not values:
            return None
        return min(values) if self.lower_is_better(column) else max(values)


def _finite(value: Optional[float]) -> bool:
    return value is not None and math.isfinite(value)


def format_score(value: Optional[float]) -> str:
    """Three decimals, as the leaderboard prints them; ``nan`` as ``nan``; None (no score) as ``""``."""
    if value is None:
        return ""
    return f"{value:.3f}" if math.isfinite(value) else str(value)


def format_cell(value: Optional[float], spread: Optional[float]) -> str:
    """``0.583`` or, with a spread over seeds, ``0.583 ± 0.012``."""
    text = format_score(value)
    return f"{text} ± {format_score(spread)}" if spread is not None and text else text


def row_label(label: str, random_weights: bool) -> str:
    """A variant's row label; RANDOM fixture weights are said in it."""
    return label + (RANDOM_SUFFIX if random_weights else "")


def build_table(
    tasks: Sequence[TaskInfo],
    variants: Sequence[Variant],
    records: Dict[tuple, Dict[str, Any]],
    reference: Optional[Dict[str, Dict[str, float]]] = None,
    reference_columns: Optional[Dict[str, str]] = None,
) -> ScoreTable:
    """Assemble the table.

    Args:
        tasks: columns, in order.
        variants: :class:`~hear_gura.harness.grid.Variant` rows, in order.
        records: (variant label, task folder) -> the cell's result record.
        reference: published scores ``{model: {leaderboard column: score}}``.
        reference_columns: task folder -> leaderboard column (official tasks only).
    """
    table = ScoreTable([t.folder for t in tasks], [t.primary_metric for t in tasks])
    for variant in variants:
        found = [records.get((variant.label, task.folder)) for task in tasks]
        values = [float(record["score"]) if record else None for record in found]
        spreads = [None if not record or record.get("seed_std") is None else float(record["seed_std"])
                   for record in found]
        # The label says what the finished cells recorded, never what a manifest given now would load.
        random_weights = any(bool(record.get("random_weights")) for record in found if record)
        table.rows.append(ScoreRow(row_label(variant.label, random_weights), MEASURED, values, spreads))
    if reference and reference_columns:
        for model, scores in reference.items():
            values = [scores.get(reference_columns.get(t.folder, "")) for t in tasks]
            table.rows.append(ScoreRow(model + PUBLISHED_SUFFIX, REFERENCE, values))
    return table


# --------------------------------------------------------------------- CSV
def write_csv(path: Path, records: Sequence[Dict[str, Any]], table: ScoreTable,
              reference: Optional[Dict[str, Dict[str, float]]] = None,
              reference_columns: Optional[Dict[str, str]] = None) -> None:
    """One row per measured (variant, task), then one per published (model, official task)."""
    handle = io.StringIO(newline="")
    writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    for r in records:
        writer.writerow({
            "source": MEASURED, "ensemble": r["ensemble"], "variant": r["variant"],
            "options": json.dumps(r["options"], sort_keys=True), "task": r["task"], "task_name": r["task_name"],
            "metric": r["metric"], "score": repr(float(r["score"])),
            "score_std": "" if r.get("score_std") is None else repr(float(r["score_std"])),
            "folds": r.get("folds", 1), "secondary": json.dumps(r.get("secondary", {}), sort_keys=True),
            "embedding_width": r.get("embedding_width") or "", "embed_seconds": r.get("embed_seconds", ""),
            "predict_seconds": r.get("predict_seconds", ""), "random_weights": bool(r.get("random_weights")),
            "grid_points": r["probe"].get("grid_points", ""), "probe_grid": r["probe"].get("grid", ""),
            "probe": r["probe"].get("kind", "heareval"), "seeds": len(r.get("seeds") or [None]),
            "seed_std": "" if r.get("seed_std") is None else repr(float(r["seed_std"])),
            "seed_scores": json.dumps([float(v) for v in r.get("seed_scores") or [r["score"]]]),
        })
    if reference and reference_columns:
        for model, scores in reference.items():
            for task, metric in zip(table.tasks, table.metrics):
                value = scores.get(reference_columns.get(task, ""))
                if value is not None:
                    writer.writerow({"source": REFERENCE, "variant": model, "task": task, "metric": metric,
                                     "score": repr(value), "random_weights": False})
    text = handle.getvalue().encode("utf-8")
    atomic_write(path, lambda out: out.write(text))


# ---------------------------------------------------------------- Markdown
def markdown_table(table: ScoreTable) -> str:
    """The table in Markdown; the best measured score of each column in bold."""
    header = ["variant"] + [f"{task} ({metric})" for task, metric in zip(table.tasks, table.metrics)]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * len(table.tasks)) + "|"]
    best = [table.best(c) for c in range(len(table.tasks))]
    for row in table.rows:
        cells = []
        for column, value in enumerate(row.values):
            text = format_cell(value, row.spread(column))
            if row.kind == MEASURED and value is None:
                text = "n/a"
            elif (row.kind == MEASURED and best[column] is not None
                  and format_score(best[column]) == format_score(value)):
                text = f"**{text}**"
            cells.append(text)
        lines.append("| " + " | ".join([row.label.replace("|", "\\|")] + cells) + " |")
    return "\n".join(lines)


def write_markdown(path: Path, table: ScoreTable, title: str = "hear-gura evaluate",
                   extra: Sequence[Tuple[str, ScoreTable]] = ()) -> None:
    """``# title``, the table, then ``## heading`` and table of each ``extra``, then the notes as a bullet list."""
    text = f"# {title}\n\n{markdown_table(table)}\n"
    for heading, more in extra:
        text += f"\n## {heading}\n\n{markdown_table(more)}\n"
    if table.notes:
        text += "\n" + "".join(f"- {note}\n" for note in table.notes)
    data = text.encode("utf-8")
    atomic_write(path, lambda out: out.write(data))


# ------------------------------------------------------------------ heatmap
def relative_shades(raw: "np.ndarray", lower_is_better: Sequence[bool]) -> "np.ndarray":
    """Each cell's score relative to the best of its column, in [0, 1] (NaN stays NaN).

    ``score / best`` for maximised metrics and ``best / score`` for error rates,
    so a near-tie (0.324 against 0.329) shades alike (0.98 and 1.0) rather than
    as the two ends of a min-max scale. A column whose best is not positive
    (no such HEAR primary metric) falls back to min-max.

    Args:
        raw: ``(rows, columns)`` scores, NaN where missing.
        lower_is_better: one flag per column.
    """
    import numpy as np

    shade = np.full_like(raw, np.nan, dtype=float)
    for c, lower in enumerate(lower_is_better):
        column = raw[:, c]
        finite = np.isfinite(column)
        if not finite.any():
            continue
        lo, hi = column[finite].min(), column[finite].max()
        best = lo if lower else hi
        with np.errstate(divide="ignore", invalid="ignore"):
            if best > 0:
                ratio = best / column if lower else column / best
            else:
                ratio = (column - lo) / (hi - lo) if hi > lo else np.where(finite, 1.0, np.nan)
                ratio = 1.0 - ratio if lower else ratio
        shade[:, c] = np.where(finite, np.clip(ratio, 0.0, 1.0), np.nan)
    return shade


def write_heatmap(path: Path, table: ScoreTable, title: str = "Primary test metric per task") -> None:
    """An annotated heatmap (PNG): tasks on x, variants on y, colour = score relative to the task's best.

    Colours are :func:`relative_shades` (best = brightest; error rates
    inverted), since metrics differ in range; every cell shows its raw score
    (the mean over seeds, with ``± std`` beneath when a cell has several probe
    runs), the best measured one in bold. Uses matplotlib's Agg canvas
    directly, so it changes no global backend.
    """
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n_rows, n_cols = len(table.rows), len(table.tasks)
    raw = np.array([[np.nan if not _finite(v) else v for v in row.values] for row in table.rows], dtype=float)
    raw = raw.reshape(n_rows, n_cols)
    shade = relative_shades(raw, [table.lower_is_better(c) for c in range(n_cols)])

    width = max(6.0, 3.0 + 1.45 * n_cols + 0.06 * max((len(r.label) for r in table.rows), default=10))
    spreads = any(row.spread(c) is not None for row in table.rows for c in range(n_cols))
    height = max(2.8, 1.6 + (0.6 if spreads else 0.45) * n_rows)
    figure = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    cmap = __import__("matplotlib").colormaps["viridis"].with_extremes(bad="#dddddd")
    image = axes.imshow(np.ma.masked_invalid(shade), cmap=cmap, vmin=0.0, vmax=1.0, aspect="auto")
    best = [table.best(c) for c in range(n_cols)]
    for r, row in enumerate(table.rows):
        for c in range(n_cols):
            value = raw[r, c]
            if not np.isfinite(value):
                text = "n/a" if row.kind == MEASURED and row.values[c] is None else format_score(row.values[c])
                axes.text(c, r, text, ha="center", va="center", fontsize=8, color="#555555")
                continue
            is_best = row.kind == MEASURED and best[c] is not None and format_score(best[c]) == format_score(value)
            spread = row.spread(c)
            text = format_score(value) + ("" if spread is None else f"\n± {format_score(spread)}")
            axes.text(c, r, text, ha="center", va="center", fontsize=9 if spread is None else 8,
                      fontweight="bold" if is_best else "normal",
                      color="black" if shade[r, c] > 0.55 else "white")
    axes.set_xticks(range(n_cols))
    axes.set_xticklabels([f"{t}\n{m}" for t, m in zip(table.tasks, table.metrics)], rotation=25, ha="right",
                         fontsize=8)
    axes.set_yticks(range(n_rows))
    axes.set_yticklabels([row.label for row in table.rows], fontsize=8)
    measured = sum(1 for row in table.rows if row.kind == MEASURED)
    if 0 < measured < n_rows:
        axes.axhline(measured - 0.5, color="white", linewidth=3)
    axes.set_title(title, fontsize=10)
    colorbar = figure.colorbar(image, ax=axes, fraction=0.03, pad=0.02)
    colorbar.set_label("score / best of the task\n(error rates: best / score)", fontsize=8)
    figure.tight_layout()
    atomic_write(path, lambda out: figure.savefig(out, format="png"))


# ---------------------------------------------------------------- per class
def per_class_rows(records: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """One CSV row per (variant, class) of the given cell records (same task); cells without scores skipped."""
    rows = []
    for record in records:
        per_class = record.get("per_class")
        if not isinstance(per_class, dict):
            continue
        for label, value in per_class.get("classes", {}).items():
            rows.append({
                "task": record["task"], "variant": record["variant"],
                "probe": record.get("probe", {}).get("kind", "heareval"), "metric": per_class.get("metric"),
                "class": label, "score": repr(float(value["score"])),
                "seed_std": "" if value.get("std") is None else repr(float(value["std"])),
                "seeds": per_class.get("runs", 1), "support": value.get("support", ""),
            })
    return rows


def per_class_markdown(records: Sequence[Dict[str, Any]], labels: Sequence[str]) -> str:
    """Rows = classes, columns = support and each record's variant; the best variant per class in bold."""
    metric = next((r["per_class"].get("metric") for r in records if isinstance(r.get("per_class"), dict)), "")
    lower = metric in LOWER_IS_BETTER
    header = ["class", "support"] + [r["variant"].replace("|", "\\|") for r in records]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---", "---:"] + ["---:"] * len(records)) + "|"]
    for label in labels:
        values = []
        for record in records:
            per_class = record.get("per_class")
            value = per_class["classes"].get(label) if isinstance(per_class, dict) else None
            values.append(value)
        finite = [float(v["score"]) for v in values if v and _finite(float(v["score"]))]
        best = (min(finite) if lower else max(finite)) if finite else None
        support = next((v.get("support") for v in values if v and v.get("support") is not None), "")
        cells = []
        for value in values:
            if value is None:
                cells.append("n/a")
                continue
            score = float(value["score"])
            text = format_cell(score, value.get("std"))
            if best is not None and len(records) > 1 and format_score(best) == format_score(score):
                text = f"**{text}**"
            cells.append(text)
        lines.append("| " + " | ".join([str(label).replace("|", "\\|"), str(support)] + cells) + " |")
    return "\n".join(lines)


def write_per_class(md_path: Path, csv_path: Path, records: Sequence[Dict[str, Any]], labels: Sequence[str],
                    title: str, notes: Sequence[str]) -> None:
    """``per-class-<task>.md`` (title, table, notes) and ``.csv`` (one row per variant and class).

    Args:
        records: the cells' result records (one column each; one without ``per_class`` shows n/a).
        labels: the task's label vocabulary, in index order (the rows).
    """
    text = f"# {title}\n\n{per_class_markdown(records, labels)}\n"
    if notes:
        text += "\n" + "".join(f"- {note}\n" for note in notes)
    data = text.encode("utf-8")
    atomic_write(md_path, lambda out: out.write(data))
    handle = io.StringIO(newline="")
    writer = csv.DictWriter(handle, fieldnames=PER_CLASS_COLUMNS)
    writer.writeheader()
    writer.writerows(per_class_rows(records))
    table = handle.getvalue().encode("utf-8")
    atomic_write(csv_path, lambda out: out.write(table))
