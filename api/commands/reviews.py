"""``riskctl scan reviews``, ``riskctl eval reviews``, ``riskctl eval yelpchi`` and the
``riskctl train reviews`` text-model training that ``api.cli`` dispatches here."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import click
import orjson

from api.cliutil import database, routing, settings, when
from api.commands import evaluate, scan


def _dump(data: Any) -> None:
    click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode())


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


# -- scan ----------------------------------------------------------------------------------
@scan.command("reviews")
@click.option("--since", default=None, help="first day of reviews to scan (inclusive), YYYY-MM-DD")
@click.option("--until", default=None, help="last day (exclusive), YYYY-MM-DD")
@click.option(
    "--min-score",
    default=50.0,
    show_default=True,
    type=click.FloatRange(0, 100),
    help="open a case only when the mean score of a finding's reviews reaches this",
)
@click.option("--dry-run", is_flag=True, help="report what would be opened; change nothing")
@click.option("--json", "as_json", is_flag=True, help="print the summary as JSON")
def scan_reviews_cmd(
    since: str | None, until: str | None, min_score: float, dry_run: bool, as_json: bool
) -> None:
    """Copy-paste farms, bursts and collusion rings in stored reviews: open or join cases."""
    from riskctl.review_scan import scan_reviews
    from riskctl.review_text import TextModelStore
    from riskctl.scans import record_findings

    cfg = settings()
    text_model = TextModelStore(cfg.instance / "models").current()
    started = time.perf_counter()
    with database(cfg) as (engine, _):
        result = scan_reviews(
            engine,
            routing(cfg),
            since=when(since),
            until=when(until),
            min_score=min_score,
            text_model=text_model,
        )
        recorded = None
        if not dry_run:
            recorded = record_findings(engine, routing(cfg), result.findings).as_dict()
    data = {
        **result.as_dict(),
        "cases": recorded,
        "dry_run": dry_run,
        "seconds": round(time.perf_counter() - started, 3),
        "top": [
            {"case_subject": f.subject_id, "score": round(f.score, 1), "title": f.title}
            for f in sorted(result.findings, key=lambda f: -f.score)[:10]
        ],
    }
    if as_json:
        _dump(data)
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    console.print(
        f"scanned {data['reviews']} reviews ({data['orders']} stored orders) in {data['seconds']}s; "
        f"text model: {data['text_model'] or 'none'}"
    )
    console.print(
        f"found {data['clusters']} copy-paste clusters, {data['bursts']} bursts, {data['rings']} collusion rings; "
        f"{data['findings']} findings over {data['flagged_reviews']} reviews "
        f"({data['uncorroborated']} uncorroborated clusters/rings and {data['below_min_score']} findings "
        f"below --min-score {min_score:g} left out, {data['concluded']} already concluded)"
    )
    if recorded is not None:
        console.print(
            f"cases: {recorded['opened']} opened, {recorded['joined']} joined, "
            f"{recorded['unchanged']} unchanged"
        )
    else:
        console.print("dry run: no case changed")
    if data["top"]:
        table = Table(title="findings (highest score first)")
        for col in ("score", "subject", "finding"):
            table.add_column(col, justify="right" if col == "score" else "left")
        for row in data["top"]:
            table.add_row(f"{row['score']:.1f}", escape(row["case_subject"]), escape(row["title"]))
        console.print(table)


# -- train ---------------------------------------------------------------------------------
def train_reviews(
    labels_path: Path | None, text_col: str, label_col: str, min_rows: int, quiet: bool = False
) -> dict[str, Any]:
    """Fit the review text model on a CSV (or on moderator outcomes) and make it live."""
    from riskctl.review_text import (
        TextModelStore,
        check_trainable,
        moderator_texts,
        read_labelled_csv,
        train_text_model,
    )

    cfg = settings()
    if labels_path is not None:
        try:
            data = read_labelled_csv(labels_path, text_col, label_col)
        except (ValueError, UnicodeDecodeError) as exc:
            raise click.ClickException(str(exc)) from None
        source = str(labels_path)
    else:
        with database(cfg) as (engine, _):
            data = moderator_texts(engine)
        source = "moderator outcomes (resolved review cases)"
    try:
        check_trainable(data, min_rows)
    except ValueError as exc:
        raise click.ClickException(f"{source}: {exc}") from None
    started = time.perf_counter()
    model = train_text_model(data)
    path = TextModelStore(cfg.instance / "models").save(model)
    return {
        "detector": "review_text",
        "source": source,
        "rows": len(data.texts),
        "positives": data.positives,
        "skipped": data.skipped,
        "version": model.version,
        "features": len(model.coef_),
        "seconds": round(time.perf_counter() - started, 2),
        "path": str(path),
        "status": "live",
    }


# -- eval ----------------------------------------------------------------------------------
@evaluate.command("reviews")
@click.option(
    "--csv",
    "csv_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="labelled reviews",
)
@click.option("--text-col", default="text", show_default=True)
@click.option("--label-col", default="label", show_default=True, help="1/0, true/false, abuse/legit")
@click.option(
    "--group-col",
    default=None,
    help="rows sharing a value (e.g. the reviewer) never straddle train and test; default: each row alone",
)
@click.option("--folds", default=5, show_default=True, type=click.IntRange(2, 50))
@click.option("--seed", default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
def eval_reviews(
    csv_path: Path, text_col: str, label_col: str, group_col: str | None, folds: int, seed: int, as_json: bool
) -> None:
    """Grouped k-fold ROC AUC and average precision of the supervised review text model."""
    from detectors.text_model import grouped_cv
    from riskctl.review_text import read_labelled_csv

    try:
        data = read_labelled_csv(csv_path, text_col, label_col, group_col)
    except (ValueError, UnicodeDecodeError) as exc:
        raise click.ClickException(str(exc)) from None
    started = time.perf_counter()
    try:
        result = grouped_cv(data.texts, data.labels, data.groups, folds=folds, seed=seed)
    except ValueError as exc:
        raise click.ClickException(f"{csv_path}: {exc}") from None
    out = {
        "csv": str(csv_path),
        "rows": len(data.texts),
        "positives": data.positives,
        "prevalence": data.positives / len(data.texts),
        "groups": len(set(data.groups)),
        "group_col": group_col,
        "skipped": data.skipped,
        **result,
        "seconds": round(time.perf_counter() - started, 2),
    }
    if as_json:
        _dump(out)
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    console.print(
        f"{escape(str(csv_path))}: {out['rows']} labelled texts, {out['positives']} abusive "
        f"(prevalence {out['prevalence']:.3f}), {out['groups']} groups"
        + (f" by {escape(group_col)}" if group_col else " (one row each)")
        + f", {out['skipped']} rows skipped"
    )
    table = Table(title=f"{folds}-fold {out['splitter']} (seed {seed})")
    for col in ("fold", "train", "test", "test abusive", "AUC", "AP"):
        table.add_column(col, justify="right")
    for f in out["per_fold"]:
        table.add_row(
            str(f["fold"]),
            str(f["n_train"]),
            str(f["n_test"]),
            str(f["n_test_positive"]),
            _fmt(f["auc"]),
            _fmt(f["ap"]),
        )
    console.print(table)
    console.print(
        f"ROC AUC {_fmt(out['auc'])} ± {_fmt(out['auc_std'])}   "
        f"average precision {_fmt(out['ap'])} ± {_fmt(out['ap_std'])} (mean ± sd over folds; "
        f"AP of a random score = prevalence {out['prevalence']:.3f})"
    )
    console.print(
        f"pooled out-of-fold: AUC {_fmt(out['oof_auc'])}, AP {_fmt(out['oof_ap'])}; {out['seconds']}s"
    )


@evaluate.command("yelpchi")
@click.option(
    "--data",
    "data_dir",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="folder with metadata.gz and the speagle_priors_*.csv.gz files",
)
@click.option(
    "--out",
    "out_png",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="precision-recall plot (PNG); default <instance>/eval/yelpchi_pr.png",
)
@click.option("--seed", default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
def eval_yelpchi(data_dir: Path, out_png: Path | None, seed: int, as_json: bool) -> None:
    """AUC/AP of riskctl's unsupervised scoring on YelpChi, next to the SpEagle prior."""
    from detectors.yelpchi import evaluate_yelpchi

    for name in ("metadata.gz", "speagle_priors_review.csv.gz", "speagle_priors_user.csv.gz"):
        if not (data_dir / name).is_file():
            raise click.ClickException(f"{data_dir}: {name} is missing")
    out_png = out_png or settings().instance / "eval" / "yelpchi_pr.png"
    try:
        result = evaluate_yelpchi(data_dir, out_png, seed=seed)
    except ValueError as exc:
        raise click.ClickException(f"{data_dir}: {exc}") from None
    if as_json:
        _dump(result)
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    d = result["data"]
    console.print(
        f"YelpChi: {d['reviews']} reviews ({d['spam_reviews']} filtered, {d['review_prevalence']:.4f}), "
        f"{d['users']} users ({d['spam_users']} with a filtered review, {d['user_prevalence']:.4f}), "
        f"{d['products']} products"
    )
    table = Table(title="riskctl (graph only, no labels) vs the SpEagle prior")
    for col in ("level", "score", "AUC", "AP", "AP of random"):
        table.add_column(col, justify="left" if col in ("level", "score") else "right")
    for level, prevalence in (("review", d["review_prevalence"]), ("user", d["user_prevalence"])):
        for name in ("riskctl", "speagle_prior"):
            m = result[level][name]
            table.add_row(level, name, _fmt(m["auc"]), _fmt(m["ap"]), _fmt(prevalence))
    console.print(table)
    signals = Table(title="every structural signal computed (label-free)")
    for col in ("signal", "review AUC", "review AP", "user AUC", "user AP"):
        signals.add_column(col, justify="left" if col == "signal" else "right")
    for name in result["signals"]["review"]:
        r, u = result["signals"]["review"][name], result["signals"]["user"][name]
        signals.add_row(name, _fmt(r["auc"]), _fmt(r["ap"]), _fmt(u["auc"]), _fmt(u["ap"]))
    console.print(signals)
    console.print(f"precision-recall plot: {escape(result['png'])} ({result['seconds']:.1f}s)")
