"""`make bench` keeps working: the throughput benchmark and the RESULTS.md writer, run small.

Timing is not asserted here (speed is measured by the benchmarks themselves, on a quiet
machine); what is asserted is that a run completes real journeys, that every case it made
ends signed and validates, that the case queries run at a (small) catalog size, and that
``write_results.py`` turns what the run wrote into the tables of RESULTS.md.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_small_benchmark_run_signs_for_real_and_fills_the_results_tables(tmp_path):
    out = tmp_path / "bench"
    out.mkdir()
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "bench_throughput.py"),
            *("--concurrency", "1,2", "--journeys", "2"),
            *("--cases", "200", "--repeat", "2", "--officer-cases", "10"),
            *("--json", str(out / "journeys.json")),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    results = json.loads((out / "journeys.json").read_text())
    for n in (1, 2):
        assert results[f"journeys.n{n}.completed"] == 2 and results[f"journeys.n{n}.failed"] == 0
        assert results[f"journeys.n{n}.cases_signed"] == "3/3"
        assert results[f"journeys.n{n}.signatures_per_s"] > 0
    assert results["queries.200.catalog_cases"] >= 200
    assert results["queries.200.dashboard.p50_ms"] > 0
    assert "last case validates: True" in run.stdout

    shutil.copy(out / "journeys.json", out / "queries.json")  # the same run measured both
    page = tmp_path / "RESULTS.md"
    shutil.copy(ROOT / "benchmarks" / "RESULTS.md", page)
    subprocess.run(
        [sys.executable, str(ROOT / "bench" / "write_results.py"), str(out), "--results", str(page)],
        check=True,
        timeout=60,
    )
    text = page.read_text()
    journeys = re.search(r"<!-- results:journeys -->\n(.*?)<!-- /results:journeys -->", text, re.DOTALL)
    assert journeys and "| | N = 1 | N = 2 |" in journeys.group(1)
    assert f"**{results['journeys.n1.signatures_per_s']:.2f}**" in journeys.group(1)
    queries = re.search(r"<!-- results:queries -->\n(.*?)<!-- /results:queries -->", text, re.DOTALL)
    assert queries and "200 cases p50 / p95" in queries.group(1)
    assert "Plone / Zope" in text
