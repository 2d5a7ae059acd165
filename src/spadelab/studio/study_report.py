"""``spadelab study report``: Table 2's format from a study's votes, beside the paper's numbers.

Per source of votes (people; scripted raters are reported apart and labelled as such):
% of votes preferring A with a 95% Wilson score interval, votes, raters, and inter-rater
agreement as Fleiss' kappa (generalised to a varying number of ratings per pair) and the raw
share of agreeing rater pairs.
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml

from spadelab.atomic import atomic_path
from spadelab.config import REPO_ROOT
from spadelab.studio.study_db import Study

PAPER_TABLES = REPO_ROOT / "experiments" / "reference" / "paper_tables.yaml"
PAPER_COLUMNS = {"vs_crn": "CRN", "vs_pix2pixhd": "pix2pixHD", "vs_sims": "SIMS"}
Z95 = 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion, as fractions in [0, 1]."""
    if n == 0:
        return (math.nan, math.nan)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


def agreement(votes: list[dict[str, Any]]) -> tuple[float, float, int]:
    """(Fleiss' kappa, observed agreement, pairs rated twice or more) over two categories.

    Pairs rated by fewer than two raters carry no agreement information and are left out.
    Kappa is nan when it is undefined (no such pair, or every vote for the same method).
    """
    by_pair: dict[int, list[str]] = defaultdict(list)
    for vote in votes:
        by_pair[vote["pair"]].append(vote["winner"])
    items = [winners for winners in by_pair.values() if len(winners) >= 2]
    if not items:
        return (math.nan, math.nan, 0)
    observed = []
    for winners in items:
        n = len(winners)
        counts = [winners.count(m) for m in ("a", "b")]
        observed.append(sum(c * (c - 1) for c in counts) / (n * (n - 1)))
    p_bar = sum(observed) / len(items)
    total = sum(len(w) for w in items)
    share_a = sum(w.count("a") for w in items) / total
    p_e = share_a**2 + (1 - share_a) ** 2
    kappa = math.nan if p_e == 1 else (p_bar - p_e) / (1 - p_e)
    return (kappa, p_bar, len(items))


def summarize(votes: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(votes)
    wins = sum(1 for v in votes if v["winner"] == "a")
    low, high = wilson_interval(wins, n)
    kappa, observed, multi = agreement(votes)
    return {
        "votes": n,
        "prefer_a": 100 * wins / n if n else math.nan,
        "ci_low": 100 * low,
        "ci_high": 100 * high,
        "raters": len({v["rater"] for v in votes}),
        "kappa": kappa,
        "observed_agreement": 100 * observed,
        "pairs_rated_twice": multi,
    }


def paper_rows(path: Path = PAPER_TABLES) -> list[dict[str, Any]]:
    """The paper's Table 2: % preferring SPADE over each method, per dataset."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; it holds the paper's Table 2 numbers")
    table = yaml.safe_load(path.read_text())["spade_table2"]
    rows = []
    for values in table["rows"]:
        record = dict(zip(table["columns"], values))
        for column, method in PAPER_COLUMNS.items():
            if record.get(column) is not None:
                rows.append(
                    {"dataset": record["dataset"], "b": method, "prefer_a": record[column]}
                )
    return rows


def _fmt(value: float, digits: int = 1) -> str:
    return (
        "—"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else (f"{value:.{digits}f}")
    )


def build_rows(study: Study) -> list[dict[str, Any]]:
    votes = study.votes()
    meta = study.meta
    rows = []
    for source, scripted in (("people", 0), ("SCRIPTED (not people)", 1)):
        subset = [v for v in votes if v["scripted"] == scripted]
        if not subset and not (scripted == 0 and not votes):
            continue
        rows.append(
            {
                "source": f"this study: {source}",
                "dataset": meta.get("dataset", ""),
                "a": meta.get("a_name", "A"),
                "b": meta.get("b_name", "B"),
                **summarize(subset),
            }
        )
    for paper in paper_rows():
        rows.append(
            {
                "source": "paper (Park et al. 2019, Table 2)",
                "dataset": paper["dataset"],
                "a": "SPADE",
                "b": paper["b"],
                "prefer_a": paper["prefer_a"],
            }
        )
    return rows


COLUMNS = (
    ("source", "source", None),
    ("dataset", "dataset", None),
    ("a", "A", None),
    ("b", "B", None),
    ("prefer_a", "% preferring A", 2),
    ("ci", "95% Wilson CI", None),
    ("votes", "votes", 0),
    ("raters", "raters", 0),
    ("kappa", "Fleiss' kappa", 3),
    ("observed_agreement", "rater-pair agreement %", 1),
    ("pairs_rated_twice", "pairs rated >= 2x", 0),
)


def _cell(row: dict[str, Any], key: str, digits: int | None) -> str:
    if key == "ci":
        if "ci_low" not in row:
            return "—"
        return f"[{_fmt(row['ci_low'])}, {_fmt(row['ci_high'])}]"
    value = row.get(key)
    if value is None:
        return "—"
    if digits is None:
        return str(value)
    return _fmt(float(value), digits) if digits else str(int(value))


def to_markdown(rows: list[dict[str, Any]], study: Study) -> str:
    scripted = any(r["source"].endswith("SCRIPTED (not people)") for r in rows)
    lines = [
        f"# Preference study {study.dir.name}: % of votes preferring A",
        "",
        f"A = {study.meta.get('a', '')}  ",
        f"B = {study.meta.get('b', '')}  ",
        f"{len(study.pairs)} pairs; question: {study.meta.get('question', '')}",
        "",
    ]
    if scripted:
        lines += [
            "**Scripted votes (automated raters, not people) are reported in their own row and "
            "say nothing about perceived realism.**",
            "",
        ]
    lines.append("| " + " | ".join(title for _, title, _ in COLUMNS) + " |")
    lines.append("|" + "|".join("---" if d is None else "---:" for _, _, d in COLUMNS) + "|")
    for row in rows:
        lines.append("| " + " | ".join(_cell(row, k, d) for k, _, d in COLUMNS) + " |")
    lines += [
        "",
        "Paper: % of Amazon Mechanical Turk votes preferring SPADE (A) over the method B; the "
        "paper gives no vote counts or intervals.",
    ]
    return "\n".join(lines) + "\n"


def to_csv(rows: list[dict[str, Any]]) -> str:
    keys = ["source", "dataset", "a", "b", "prefer_a", "ci_low", "ci_high", "votes", "raters"]
    keys += ["kappa", "observed_agreement", "pairs_rated_twice"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=keys, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k, "") for k in keys})
    return buffer.getvalue()


def report(study_dir: str | Path) -> dict[str, Any]:
    study = Study(study_dir)
    rows = build_rows(study)
    markdown, table_csv = to_markdown(rows, study), to_csv(rows)
    for name, text in (("report.md", markdown), ("report.csv", table_csv)):
        with atomic_path(study.dir / name) as tmp:
            tmp.write_text(text)
    print(markdown)
    print(table_csv)
    print(f"wrote {study.dir / 'report.md'} and {study.dir / 'report.csv'}")
    return {"rows": rows, "markdown": markdown, "csv": table_csv}
