"""Issue 20's targets section: judged from the benchmarks' results files, never by hand."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import run_all
import targets
from _common import figure, results_path, save_results
from targets import TARGETS, Results, Target, judge, read_results

WHEN = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
CPU = next(t for t in TARGETS if t.name == "cpu_s_per_100k_leads")
ACHIEVED = next(t for t in TARGETS if t.name == "hubspot_limited_achieved_share")
SHARE_429 = next(t for t in TARGETS if t.name == "hubspot_limited_429_share")


def results(section: str, *figures: dict[str, Any]) -> Results:
    return Results(section, f"bench/{section}.py", WHEN, tuple(figures))


def test_a_figure_within_its_target_is_met() -> None:
    row = judge(CPU, results(CPU.section, figure(CPU.name, 58.0, unit="s", leads=100_000)))
    assert (row.met, row.verdict, row.today) == (True, "**met**", "58.0 s")
    assert row.measured == "2026-12-04 12:00 UTC, 100,000 leads per CRM"


def test_a_figure_over_its_target_is_not_met_with_the_gap() -> None:
    row = judge(CPU, results(CPU.section, figure(CPU.name, 315.0, unit="s", leads=100_000)))
    assert row.met is False
    assert row.verdict == "**not met**: 255 s over, 5.2× the target"


def test_a_rate_under_its_floor_is_short_by_points() -> None:
    def rate(value: float) -> Results:
        return results(ACHIEVED.section, figure(ACHIEVED.name, value, unit="%", leads=10_000))

    short, enough = judge(ACHIEVED, rate(39.3)), judge(ACHIEVED, rate(90.0))
    assert (short.met, short.verdict) == (False, "**not met**: 50.7 points short")
    assert enough.met is True  # "≥ 90 %": the limit itself meets it


def test_a_strict_target_is_not_met_at_its_limit() -> None:
    def share(value: float) -> Results:
        return results(SHARE_429.section, figure(SHARE_429.name, value, unit="%", leads=10_000))

    at, under = judge(SHARE_429, share(1.0)), judge(SHARE_429, share(0.0))
    assert (at.met, under.met) == (False, True)
    assert SHARE_429.wanted == "< 1.00 %"


def test_no_results_file_is_not_measured() -> None:
    row = judge(CPU, None)
    assert (row.met, row.today) == (None, "not measured")
    assert "not measured since results files began" in row.verdict


def test_a_results_file_without_the_figure_is_not_measured() -> None:
    # A run without --limited-leads saves no rate: the target is not judged on nothing.
    row = judge(ACHIEVED, results(ACHIEVED.section, figure(CPU.name, 58.0, unit="s")))
    assert (row.met, row.today) == (None, "not measured")
    assert "has no such figure" in row.verdict


def test_a_figure_at_another_scale_is_shown_not_judged() -> None:
    quick = figure(CPU.name, 20.0, unit="s", leads=2_000)  # a --quick run: under 60, yet...
    row = judge(CPU, results(CPU.section, quick))
    assert row.met is None
    assert row.today == "20.0 s at 2,000 leads per CRM"
    assert row.verdict.startswith("not judged: measured at 2,000 leads per CRM, not 100,000")


def test_a_target_set_at_no_scale_judges_the_largest_measured() -> None:
    anywhere = Target("store per lead", "full-reconcile", "store_kb_per_lead", 3, "KB", "12 KB")
    small = figure(anywhere.name, 2.0, unit="KB", leads=10_000)
    large = figure(anywhere.name, 12.0, unit="KB", leads=100_000)
    row = judge(anywhere, results(anywhere.section, small, large))
    assert (row.met, row.today) == (False, "12.0 KB")


def test_every_target_is_set_at_the_scale_a_full_run_measures() -> None:
    # Unscaled, a --quick run's figures (2,000 leads) would be judged as if they were the
    # full run's.
    assert all(target.scale for target in TARGETS)


def test_every_target_reads_a_figure_its_benchmark_saves() -> None:
    sources = {
        "full-reconcile": Path(targets.__file__).with_name("full_reconcile.py"),
        "incremental-cost": Path(targets.__file__).with_name("incremental_cost.py"),
        "incremental-1pct-1m": Path(targets.__file__).with_name("incremental_cost.py"),
    }
    for target in TARGETS:
        assert f'"{target.name}"' in sources[target.section].read_text(), target.name


def test_the_section_is_assembled_from_the_saved_results(tmp_path: Path) -> None:
    markdown = tmp_path / "BENCHMARKS.md"
    markdown.write_text("# Benchmarks\n\n<!-- targets:start -->\nSTALE ROW\n<!-- targets:end -->\n")
    save_results(
        "full-reconcile",
        [figure("cpu_s_per_100k_leads", 45.0, unit="s", leads=100_000)],
        command="bench/full_reconcile.py",
        markdown=markdown,
        measured_at=WHEN,
    )
    assert results_path("full-reconcile", markdown).is_file()
    assert run_all.main(["--targets", "--output", str(markdown)]) == 0
    text = markdown.read_text()
    assert "STALE ROW" not in text
    assert text.count("<!-- targets:start -->") == 1
    cpu_row = next(line for line in text.splitlines() if line.startswith(f"| {CPU.label}"))
    assert "| 45.0 s | 2026-12-04 12:00 UTC, 100,000 leads per CRM | ≤ 60.0 s | **met** |" in (
        cpu_row
    )
    # The others have no results yet: said so, not filled in.
    assert text.count("| not measured |") == len(TARGETS) - 1


def test_a_broken_results_file_stops_the_assembly(tmp_path: Path) -> None:
    folder = tmp_path / "bench-results"
    folder.mkdir()
    (folder / "full-reconcile.json").write_text('{"section": "full-reconcile"}')
    with pytest.raises(KeyError):
        read_results(folder)


def test_targets_are_as_issue_20_sets_them() -> None:
    wanted = {t.name: t.wanted for t in TARGETS}
    assert wanted == {
        "cpu_s_per_100k_leads": "≤ 60.0 s",
        "peak_rss_mb": "≤ 300 MB",
        "peak_traced_mb": "≤ 300 MB",
        "store_kb_per_lead": "≤ 3.00 KB",
        "all_calls_over_floor": "≤ ×1.15",
        "hubspot_limited_achieved_share": "≥ 90.0 %",
        "hubspot_limited_429_share": "< 1.00 %",
        "incremental_growth": "≤ ×1.50",
    }
    assert all(isinstance(t, Target) for t in TARGETS)
