"""The training report of a model version: one HTML page with PNG plots (precision-recall and ROC
curves, score distributions by class, feature importances, recall per scenario) and the metrics
table, next to the baselines. Written into a folder that is logged with the version in MLflow."""

from __future__ import annotations

import html
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lakehouse.ml.metrics import Evaluation

if TYPE_CHECKING:
    from lakehouse.ml.pipeline import ScoredWindow
    from lakehouse.ml.registry import ModelVersionInfo
    from lakehouse.settings import Settings

log = logging.getLogger(__name__)

#: The plots of a report, in the order the page shows them (``<name>.png``).
PLOTS = ("precision_recall", "roc", "scores", "importances", "scenarios")


def _curves(window: ScoredWindow) -> tuple[np.ndarray, ...]:
    order = np.argsort(-window.score, kind="mergesort")
    y = window.y[order].astype(float)
    tp, fp = np.cumsum(y), np.cumsum(1 - y)
    positives, negatives = max(1.0, y.sum()), max(1.0, (1 - y).sum())
    return tp / np.maximum(1, tp + fp), tp / positives, fp / negatives


def write_report(
    folder: Path,
    *,
    title: str,
    window: ScoredWindow,
    evaluation: Evaluation,
    baselines: dict[str, float],
    importances: list[tuple[str, float]],
    facts: dict[str, str],
    tables: dict[str, tuple[list[str], list[list[str]]]] | None = None,
) -> Path:
    """``tables``: more sections, heading → (columns, rows), after the metrics (e.g. model selection)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    precision, recall, fpr = _curves(window)

    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(recall, precision)
    ax.set(
        xlabel="recall",
        ylabel="precision",
        title=f"Precision-recall (AP {evaluation.average_precision:.3f})",
        xlim=(0, 1),
        ylim=(0, 1.02),
    )
    fig.tight_layout(), fig.savefig(folder / "precision_recall.png", dpi=90), plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(fpr, recall), ax.plot([0, 1], [0, 1], linestyle=":", color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC (AUC {evaluation.roc_auc:.3f})")
    fig.tight_layout(), fig.savefig(folder / "roc.png", dpi=90), plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 4))
    bins = np.linspace(0, 1, 41)
    ax.hist(window.score[~window.y], bins=bins, alpha=0.6, density=True, label="legitimate")
    ax.hist(window.score[window.y], bins=bins, alpha=0.6, density=True, label="fraud")
    ax.axvline(evaluation.threshold, color="black", linestyle="--", label="threshold")
    ax.set(xlabel="score", ylabel="density", title="Scores by class", yscale="log"), ax.legend()
    fig.tight_layout(), fig.savefig(folder / "scores.png", dpi=90), plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 5))
    names, weights = zip(*importances, strict=True) if importances else ((), ())
    ax.barh(list(names)[::-1], list(weights)[::-1])
    ax.set(title="Feature importances", xlabel="importance")
    fig.tight_layout(), fig.savefig(folder / "importances.png", dpi=90), plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 3.5))
    scenarios = evaluation.recall_by_scenario
    ax.barh(list(scenarios), list(scenarios.values()))
    ax.set(xlim=(0, 1), xlabel="recall at the threshold", title="Recall per scenario")
    fig.tight_layout(), fig.savefig(folder / "scenarios.png", dpi=90), plt.close(fig)

    metrics = {k: v for k, v in evaluation.as_dict().items() if not isinstance(v, dict)}
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{v:.4f}</td></tr>"
        if isinstance(v, float)
        else f"<tr><td>{html.escape(k)}</td><td>{v}</td></tr>"
        for k, v in metrics.items()
    )
    rows += "".join(f"<tr><td>baseline AP: {html.escape(k)}</td><td>{v:.4f}</td></tr>" for k, v in baselines.items())
    fact_rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>" for k, v in facts.items())
    more = "".join(
        f"<h2>{html.escape(heading)}</h2><table><tr>{''.join(f'<th>{html.escape(c)}</th>' for c in columns)}</tr>"
        + "".join(f"<tr>{''.join(f'<td>{html.escape(str(v))}</td>' for v in row)}</tr>" for row in rows)
        + "</table>"
        for heading, (columns, rows) in (tables or {}).items()
    )
    images = "".join(f'<img src="{name}.png" alt="{name}">' for name in PLOTS)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}}
td{{border:1px solid #ccc;padding:3px 8px}} img{{margin:8px;vertical-align:top}}</style>
</head><body><h1>{html.escape(title)}</h1><table>{fact_rows}</table><h2>Validation metrics</h2><table>{rows}</table>
{more}<h2>Plots</h2>{images}</body></html>"""
    (folder / "index.html").write_text(page)
    return folder / "index.html"


def fetch_report(settings: Settings, info: ModelVersionInfo, into: Path) -> Path | None:
    """A version's report copied from its run's artifacts into ``into`` (any artifact store the
    registry uses); None when the version has none (trained before reports were kept)."""
    import mlflow.artifacts

    from lakehouse.ml.registry import REPORT_ARTIFACT, client

    if not info.run_id:
        return None
    client(settings)  # the registry's tracking server, for the runs:/ address
    try:
        folder = mlflow.artifacts.download_artifacts(f"runs:/{info.run_id}/{REPORT_ARTIFACT}", dst_path=str(into))
    except Exception as exc:  # whatever the store says, the page goes on without the report
        log.info("model version %s: no training report (%s)", info.version, type(exc).__name__)
        return None
    return Path(folder)
