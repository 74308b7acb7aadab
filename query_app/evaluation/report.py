"""``tving eval --report DIR``: an HTML page with matplotlib charts (recall@k per signal and
language, per-stage indexing time, query latency) and the failed queries with the thumbnails of
their top results. Korean text is drawn with Noto CJK (Debian's fonts-noto-cjk) when installed."""

from __future__ import annotations

import html
import shutil
from pathlib import Path

from query_app.evaluation.evaluate import Evaluation

CJK_FONTS = ("Noto Sans CJK KR", "Noto Sans CJK JP", "Noto Sans CJK SC")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    plt.rcParams["font.family"] = [f for f in CJK_FONTS if f in installed] + ["DejaVu Sans"]
    return plt


def write_report(evaluation: Evaluation, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    plt = _pyplot()
    methods = evaluation.methods
    charts = []

    fig, ax = plt.subplots(figsize=(8, 3.6))
    names = list(methods)
    width = 0.26
    for j, k in enumerate((1, 5, 10)):
        ax.bar([i + (j - 1) * width for i in range(len(names))], [methods[n].overall.recall[k] for n in names], width,
               label=f"recall@{k}")  # fmt: skip
    ax.set_xticks(range(len(names)), names, rotation=20, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_title("Recall@k per signal (each alone) and fused: test half")
    ax.legend(loc="lower right")
    charts.append(_save(fig, folder / "recall_by_signal.png", plt))

    languages = sorted({lang for m in methods.values() for lang in m.by_language})
    fig, ax = plt.subplots(figsize=(8, 3.4))
    for j, lang in enumerate(languages):
        values = [methods[n].by_language.get(lang).recall[5] if lang in methods[n].by_language else 0 for n in names]
        ax.bar(
            [i + (j - 0.5) * 0.38 for i in range(len(names))], values, 0.38, label={"ko": "한국어 (ko)"}.get(lang, lang)
        )
    ax.set_xticks(range(len(names)), names, rotation=20, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_title("Recall@5 per query language")
    ax.legend(loc="lower right")
    charts.append(_save(fig, folder / "recall_by_language.png", plt))

    if evaluation.indexing_seconds:
        stages = evaluation.indexing_seconds
        fig, ax = plt.subplots(figsize=(8, 3))
        ax.barh(list(stages), list(stages.values()), color="#5b7db1")
        ax.set_xlabel("seconds (whole set)")
        ax.set_title("Indexing time per stage")
        charts.append(_save(fig, folder / "indexing_time.png", plt))

    fused = methods.get("fused (max)") or next(iter(methods.values()))
    if fused.latencies_ms:
        fig, ax = plt.subplots(figsize=(8, 3))
        ax.hist(fused.latencies_ms, bins=20, color="#b15b7d")
        ax.set_xlabel("ms per query (fused, one client)")
        ax.set_title("Query latency")
        charts.append(_save(fig, folder / "latency.png", plt))

    page = folder / "index.html"
    page.write_text(_html(evaluation, charts, _failed(fused, folder)), encoding="utf-8")
    return page


def _save(fig, path: Path, plt) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def _failed(report, folder: Path) -> list[dict]:
    """Queries whose target is not in the top 5, with their top results' thumbnails copied here."""
    thumbs = folder / "thumbs"
    thumbs.mkdir(exist_ok=True)
    failed = []
    for n, outcome in enumerate(o for o in report.outcomes if o.rank is None or o.rank > 5):
        images = []
        for j, top in enumerate(outcome.top):
            source = Path(top["thumbnail"]) if top.get("thumbnail") else None
            if source and source.is_file():
                target = thumbs / f"q{n}_{j}{source.suffix}"
                shutil.copyfile(source, target)
                images.append((f"thumbs/{target.name}", f"{top['video']} #{top['scene']} ({top['score']})"))
        failed.append({"query": outcome.query, "rank": outcome.rank, "images": images})
    return failed


def _html(evaluation: Evaluation, charts: list[str], failed: list[dict]) -> str:
    esc = html.escape
    rows = "".join(
        f"<tr><td>{esc(name)}</td><td>{m.overall.queries}</td>"
        + "".join(f"<td>{m.overall.recall[k]:.3f}</td>" for k in (1, 5, 10))
        + f"<td>{m.overall.mrr:.3f}</td></tr>"
        for name, m in evaluation.methods.items()
    )
    failures = (
        "".join(
            f"<tr><td lang='{esc(f['query'].language)}'>{esc(f['query'].query)}</td><td>{esc(f['query'].kind)}</td>"
            f"<td>{f['rank'] or 'not found'}</td><td>"
            + "".join(
                f"<figure><img src='{esc(src)}' alt=''><figcaption>{esc(cap)}</figcaption></figure>"
                for src, cap in f["images"]
            )
            + "</td></tr>"
            for f in failed
        )
        or "<tr><td colspan=4>none: every query found its scene in the top 5</td></tr>"
    )
    extra = []
    if evaluation.cuts:
        c = evaluation.cuts
        extra.append(
            f"Scene cuts at {c['tolerance_s']} s: precision {c['precision']}, recall {c['recall']}, F1 {c['f1']}."
        )
    if evaluation.speech:
        extra.append(
            f"Speech: word error rate {evaluation.speech['wer']} over {evaluation.speech['sentences']} sentences."
        )
    if evaluation.korean_full_text:
        k = evaluation.korean_full_text
        words, grams = k["words"]["recall@5"], k["n-grams"]["recall@5"]
        extra.append(f"Korean queries, full-text alone (R@5): word tokens {words}, n-grams {grams}.")
    images = "".join(f"<img class='chart' src='{esc(c)}' alt='{esc(c)}'>" for c in charts)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tving search quality</title>
<style>
body {{ font-family: "Noto Sans CJK KR", "Noto Sans", sans-serif; margin: 2rem; max-width: 70rem; }}
table {{ border-collapse: collapse; margin: 1rem 0; }} td, th {{ border: 1px solid #ccc; padding: 0.3rem 0.6rem; }}
.chart {{ display: block; margin: 1rem 0; max-width: 100%; }} figure {{ display: inline-block; margin: 0.2rem; }}
figure img {{ height: 70px; }} figcaption {{ font-size: 0.75rem; }}
</style></head><body>
<h1>Search quality</h1>
<p>Fusion weights tuned on the tuning half: {esc(str(evaluation.weights.__dict__))}
(MRR {evaluation.tune_mrr:.3f} there). Figures below are on the test half.</p>
<table><tr><th>method</th><th>queries</th><th>R@1</th><th>R@5</th><th>R@10</th><th>MRR</th></tr>{rows}</table>
<p>{"<br>".join(esc(e) for e in extra)}</p>
{images}
<h2>Queries not found in the top 5</h2>
<table id="failed"><tr><th>query</th><th>kind</th><th>rank</th><th>its top results</th></tr>{failures}</table>
</body></html>
"""
