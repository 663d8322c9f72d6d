"""Write the measured numbers of ``make bench`` into benchmarks/RESULTS.md.

    .venv/bin/python bench/write_results.py [var/bench] [--results benchmarks/RESULTS.md]

Reads what the benchmarks wrote with ``--json`` into the folder (``signing.json``,
``levels.json``, ``journeys.json``, ``cluster1.json`` (one instance on RelStorage),
``cluster.json`` (two), ``queries.json``; a missing file leaves its
tables as they are) and replaces, in RESULTS.md, each block between ``<!-- results:NAME -->`` and
``<!-- /results:NAME -->`` with a fresh table. The text around the blocks (what the numbers
mean, what limits them) is written by people and stays.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

STEPS = (("journey", "whole journey"), ("sign", '"Skriv under" → signed'), ("collect", "signing collect"))
QUERIES = (
    ("pending_query", "`cases_for_identity` (5 pending), in process"),
    ("pending_page", "`GET @@esign-pending` as the signer, HTTP"),
    ("dashboard_catalog", "the dashboard's catalog query alone"),
    ("dashboard", "`GET @@esign-my-cases`, officer ({officer_cases} cases)"),
    ("dashboard_awaiting", "`GET @@esign-my-cases?state=awaiting_signature`, same officer"),
    ("dashboard_all", "`GET @@esign-my-cases?all=1`, manager, every case"),
)


LIBRARIES = ("pyHanko", "cryptography", "ZODB", "RelStorage", "psycopg2-binary", "waitress")


def _version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "–"


def _os_name() -> str:
    import platform

    try:
        release = dict(
            line.split("=", 1) for line in Path("/etc/os-release").read_text().splitlines() if "=" in line
        )
        name = release.get("PRETTY_NAME", "").strip('"')
    except OSError:
        name = platform.system()
    return f"{name}, Linux {platform.release()}"


def _grouped(number: int) -> str:
    return f"{number:,}".replace(",", "\u202f")


def _ms(value: float) -> str:
    return f"{value / 1000:.2f} s" if value >= 10_000 else f"{value:.1f} ms"


def machine_table(results: dict) -> str:
    from bench_throughput import machine

    facts = machine()
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    loads = sorted({v for k, v in results.items() if k.endswith(".load")})
    rows = [
        ("measured", f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, commit `{commit or '?'}`"),
        ("CPUs", f"{facts['cpus']} × {facts['cpu']}"),
        ("RAM", f"{facts['ram_gb']} GiB"),
        ("Python", facts["python"]),
        ("OS", _os_name()),
        ("Plone / Zope", f"{facts['plone']} / {facts['zope']}"),
        ("libraries", ", ".join(f"{name} {_version(name)}" for name in LIBRARIES)),
        ("load average during the runs", ", ".join(loads) if loads else facts["load"]),
    ]
    return "\n".join(["| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)])


def levels_table(signing: list[dict] | None, levels: list[dict] | None) -> str:
    lines = ["| document | level | engine | raw pyHanko | engine / raw | bytes added (engine / raw) |"]
    lines.append("|---|---|---|---|---|---|")
    for result in signing or ():
        median = result["median"]
        engine, raw = median["engine-blob"], median["raw-file"]
        lines.append(
            f"| {result['label']} | B-B, into a blob + commit | {engine * 1000:.1f} ms"
            f" | {raw * 1000:.1f} ms | **{engine / raw:.2f}** | |"
        )
    for result in levels or ():
        median, added = result["median"], result["added"]
        for level, short in (("B-B", "BB"), ("B-T", "BT"), ("B-LTA", "BLTA")):
            engine, raw = median[f"engine-{short}"], median[f"raw-{short}"]
            grown = f"+{_grouped(added[f'engine-{short}'])} / +{_grouped(added[f'raw-{short}'])}"
            lines.append(
                f"| {result['label']} | {level} | {engine * 1000:.1f} ms | {raw * 1000:.1f} ms"
                f" | **{engine / raw:.2f}** | {grown} |"
            )
    return "\n".join(lines)


def journeys_table(results: dict, prefix: str) -> str:
    levels = sorted({int(m.group(1)) for k in results if (m := re.match(rf"{prefix}\.n(\d+)\.", k))})
    if not levels:
        return "(not measured)"

    def row(title: str, cell: Callable[[str], str]) -> str:
        return f"| {title} | " + " | ".join(cell(f"{prefix}.n{n}") for n in levels) + " |"

    lines = ["| | " + " | ".join(f"N = {n}" for n in levels) + " |", "|---" * (len(levels) + 1) + "|"]
    lines.append(row("signatures/s", lambda k: f"**{results[k + '.signatures_per_s']:.2f}**"))
    for step, title in STEPS:
        lines.append(
            row(
                f"{title}, p50 / p95",
                lambda k, s=step: (
                    f"{_ms(results[f'{k}.{s}.p50_ms'])} / {_ms(results[f'{k}.{s}.p95_ms'])}"
                    if f"{k}.{s}.p50_ms" in results
                    else "–"
                ),
            )
        )
    lines.append(
        row(
            "journeys completed / failed", lambda k: f"{results[k + '.completed']} / {results[k + '.failed']}"
        )
    )
    lines.append(row("cases signed", lambda k: str(results.get(k + ".cases_signed", "–"))))
    from bench_throughput import CONFLICT_LABELS

    for name, title in CONFLICT_LABELS.items():
        if any(f"{prefix}.n{n}.{name}" in results for n in levels):
            lines.append(row(title, lambda k, nm=name: str(results.get(f"{k}.{nm}", 0))))
    lines.append(row("load average at the end", lambda k: str(results.get(k + ".load", "–"))))
    return "\n".join(lines)


def queries_table(results: dict) -> str:
    sizes = sorted({int(m.group(1)) for k in results if (m := re.match(r"queries\.(\d+)\.", k))})
    if not sizes:
        return "(not measured)"
    officer = results.get(f"queries.{sizes[-1]}.officer_cases", "?")
    lines = ["| query | " + " | ".join(f"{_grouped(s)} cases p50 / p95" for s in sizes) + " |"]
    lines.append("|---" * (len(sizes) + 1) + "|")
    for key, title in QUERIES:
        cells = []
        for size in sizes:
            base = f"queries.{size}.{key}"
            cells.append(
                f"{_ms(results[base + '.p50_ms'])} / {_ms(results[base + '.p95_ms'])}"
                if base + ".p50_ms" in results
                else "–"
            )
        lines.append(f"| {title.format(officer_cases=officer)} | " + " | ".join(cells) + " |")
    rates = [str(results.get(f"queries.{s}.create_cases_per_s", "–")) for s in sizes]
    lines.append("| (cases created per second while growing the catalog) | " + " | ".join(rates) + " |")
    return "\n".join(lines)


def replace_block(text: str, name: str, body: str) -> str:
    pattern = re.compile(rf"(<!-- results:{name} -->\n)(?:.*?\n)?(<!-- /results:{name} -->)", re.DOTALL)
    if not pattern.search(text):
        raise SystemExit(f"RESULTS.md has no block <!-- results:{name} -->")
    return pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(2), text)


def _load(path: Path):
    return json.loads(path.read_text()) if path.exists() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folder", nargs="?", type=Path, default=ROOT / "var" / "bench")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    args = parser.parse_args(argv)
    signing, levels = _load(args.folder / "signing.json"), _load(args.folder / "levels.json")
    journeys, cluster = _load(args.folder / "journeys.json"), _load(args.folder / "cluster.json")
    cluster_one = _load(args.folder / "cluster1.json")
    queries = _load(args.folder / "queries.json")
    merged = {**(journeys or {}), **(cluster_one or {}), **(cluster or {}), **(queries or {})}
    text = args.results.read_text()
    text = replace_block(text, "machine", machine_table(merged))
    if signing or levels:
        text = replace_block(text, "levels", levels_table(signing, levels))
    if journeys:
        text = replace_block(text, "journeys", journeys_table(journeys, "journeys"))
    if cluster_one:
        text = replace_block(text, "cluster-one", journeys_table(cluster_one, "cluster"))
    if cluster:
        text = replace_block(text, "cluster", journeys_table(cluster, "cluster"))
    if queries:
        text = replace_block(text, "queries", queries_table(queries))
    args.results.write_text(text)
    print(f"wrote {args.results.relative_to(ROOT) if args.results.is_relative_to(ROOT) else args.results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
