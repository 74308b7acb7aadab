"""`tving eval` on the project's labelled set, built here from real media, indexed with the lite
models and measured on its test half: the quality targets, the report page (in Chromium, with
Korean glyphs), and the search_quality asset. The figures are written to TVING_EVAL_SUMMARY
(scripts/test.sh prints them)."""

import json
import os
import shutil
from pathlib import Path

import dagster as dg
import pytest
from click.testing import CliRunner

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    from tving_cli.main import main

    folder = tmp_path_factory.mktemp("eval")
    out = CliRunner().invoke(
        main, ["eval", "--build", str(folder / "set"), "--report", str(folder / "report"), "--json"]
    )
    assert out.exit_code == 0, out.output[-3000:]
    result = json.loads(out.output[out.output.index("{") :])
    summary = CliRunner().invoke(main, ["eval", str(folder / "set" / "labels.jsonl"), "--no-tune"],
                                 env={"TVING_HOME": str(folder / "set" / "home")})  # fmt: skip
    target = Path(os.environ.get("TVING_EVAL_SUMMARY", folder / "summary.txt"))
    target.write_text(_summary_text(result), encoding="utf-8")
    return {"result": result, "folder": folder, "labels_summary": summary}


def _summary_text(result: dict) -> str:
    lines = [f"tving eval --build (test half, lite profile); weights tuned on the tuning half: {result['weights']}"]
    for name, m in result["methods"].items():
        o = m["overall"]
        langs = " ".join(f"{k} {v['recall@5']:.2f}" for k, v in m["by_language"].items())
        kinds = " ".join(f"{k} {v['recall@5']:.2f}" for k, v in m["by_kind"].items())
        lines.append(f"  {name:<16} R@1 {o['recall@1']:.3f} R@5 {o['recall@5']:.3f} R@10 {o['recall@10']:.3f} "
                     f"MRR {o['mrr']:.3f} | R@5 {langs} | {kinds}")  # fmt: skip
    lines.append(f"  cuts {result['cuts']}")
    lines.append(f"  speech {result['speech']}")
    lines.append(f"  Korean full-text {result['korean_full_text']}")
    lines.append(f"  minimum score {result.get('min_score')}")
    return "\n".join(lines) + "\n"


def test_quality_targets_on_the_test_half(evaluated):
    methods = evaluated["result"]["methods"]
    fused = methods["fused (max)"]
    assert fused["by_language"]["en"]["recall@5"] >= 0.85, fused
    assert fused["by_language"]["ko"]["recall@5"] >= 0.7, fused
    assert fused["by_kind"]["onscreen"]["recall@5"] >= 0.8, fused
    best_single = max(m["overall"]["recall@5"] for name, m in methods.items() if name.endswith("alone"))
    assert fused["overall"]["recall@5"] > best_single, methods
    assert evaluated["result"]["cuts"]["f1"] >= 0.95
    assert evaluated["result"]["speech"]["wer"] <= 0.2
    ko = evaluated["result"]["korean_full_text"]
    assert ko["n-grams"]["recall@5"] >= ko["words"]["recall@5"]  # particles and compounds
    assert evaluated["labels_summary"].exit_code == 0 and "fused (max)" in evaluated["labels_summary"].output


@pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (scripts/test.sh installs it)"
)
def test_report_page_renders_charts_and_korean(evaluated):
    from playwright.sync_api import sync_playwright
    from test_browser import CHROMIUM_ARGS

    report = evaluated["folder"] / "report"
    assert {p.name for p in report.glob("*.png")} >= {"recall_by_signal.png", "recall_by_language.png", "latency.png"}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto((report / "index.html").as_uri())
            assert page.locator("img.chart").count() >= 3
            assert page.evaluate("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
            page.set_content(
                page.content().replace("</body>", "<p id='ko' style='display:inline'>한국어 검색</p></body>")
            )
            assert page.evaluate("document.fonts.check('16px \"Noto Sans CJK KR\"')")
            assert page.locator("#ko").bounding_box()["width"] > 40  # glyphs, not empty boxes of zero width
            page.screenshot(path=str(evaluated["folder"] / "report.png"), full_page=True)
        finally:
            browser.close()
    assert (evaluated["folder"] / "report.png").stat().st_size > 20_000


def test_search_quality_asset_records_the_figures(evaluated):
    from tving_assets.assets.search import search_quality
    from tving_assets.resources import TvingSettings

    folder = evaluated["folder"] / "set"
    result = dg.materialize(
        [search_quality],
        resources={"settings": TvingSettings(home=str(folder / "home"))},
        run_config={"ops": {"search_quality": {"config": {"labels": str(folder / "labels.jsonl")}}}},
        selection=[search_quality],
    )
    assert result.success
    (materialization,) = result.asset_materializations_for_node("search_quality")
    metadata = materialization.metadata
    assert metadata["fused_max/recall@5"].value >= 0.85 and "fused/recall@5/ko" in metadata


def test_calibrated_scores_and_the_default_minimum_score(evaluated):
    """The fitted calibration keeps the ranking, the shipped one (query_app.search.calibration)
    is what the tuning half gives, and the default minimum score answers queries about nothing
    indexed with "no good match" while keeping most relevant results of the test half."""
    from query_app.evaluation.labelled_set import NO_MATCH_QUERIES
    from query_app.search import SceneSearch
    from query_app.search.calibration import CALIBRATIONS
    from tving_resources.config import resolve_paths

    result = evaluated["result"]
    methods = result["methods"]
    assert methods["calibrated (max)"]["overall"] == methods["fused (max)"]["overall"]  # same order
    fitted = result["calibrations"]["calibrated (max)"]
    shipped = CALIBRATIONS["lite"]
    assert fitted["weights"] == pytest.approx(shipped.weights, rel=0.1), (fitted, shipped)
    assert fitted["min_score"]["test_relevant_kept"] >= 0.85
    assert fitted["min_score"]["nonsense_no_match"] == 1.0

    engine = SceneSearch(paths=resolve_paths(home=evaluated["folder"] / "set" / "home"))
    for query in NO_MATCH_QUERIES:  # the default minimum score is on
        assert engine.search(query).results == (), query
    cat = engine.search("a cat").results
    assert cat and cat[0].score > 0.3 and not cat[0].weak and cat[0].caption_kind == "labels"
    assert all(r.score >= 0.079 for r in cat)
