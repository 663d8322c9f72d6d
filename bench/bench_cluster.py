"""Benchmark: signatures per second through the signer journey on two Zope instances (RelStorage).

    .venv/bin/python bench/bench_cluster.py [--concurrency 4,8] [--journeys 32] [--instances 2]

The journeys of ``bench_throughput.py`` (section 2 of benchmarks/RESULTS.md), walked against a
cluster as ``make start-cluster`` runs it (``scripts/cluster.py``'s :class:`Cluster`): our own
PostgreSQL, the BankID RP API test server and the mail catcher, and ``--instances`` Zope
processes (waitress, ``--server-threads`` each, 4 by default as a zope.conf instance has) on one
history-free RelStorage database with the blobs in PostgreSQL, everything in a temporary folder
on free ports. PostgreSQL runs durable (``fsync`` on, as FileStorage fsyncs its commits) unless
``--no-fsync``.

Before the first level, one signature is made through each instance alone (``warm_up`` of
``tests/cluster/test_cluster.py``): a fresh Zope compiles its templates on first use, and
Python 3.11 threads compiling at once can fail with "AST constructor recursion depth mismatch".
For each level the officer makes and sends the single-signer cases over REST through instance
1 (``++api++``, ``@workflow/send``) and the invitations are read from the mail catcher's folder.
The journey, its timings, the warm-up journey and the report are ``bench_throughput``'s
(``Signer``, ``run_journeys``), so the figures compare line by line with section 2. What
differs is where the requests go: journey ``i`` logs in through instance ``i mod n`` and
reviews, signs and sees "Tack!" through instance ``i + 1 mod n`` (the session, the login flow
and the BankID order are in the ZODB). Conflict retries are read from the instances' logs
(``scripts/cluster.py`` logs each request Zope runs again after a ConflictError, and each it
gives up on; esign.plone logs each signature that collided); the server counts as idle again
when the instances use no CPU. Afterwards every case's state comes from ``@esign-status`` and
the last one's ``@esign-validation`` must be all valid, both asked through instance 2.

The last lines are machine-readable ``RESULT cluster.nN.<name> <value>``; ``--json FILE``
writes them all. Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from importlib.metadata import version
from pathlib import Path

import bench_throughput as bench

ROOT = bench.ROOT
OFFICER_PASSWORD = "officer-bench-1"  # noqa: S105 - a throwaway cluster


def _load(name: str, path: Path):
    """A module from a file, under a name no folder on ``sys.path`` can shadow."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


esign_cluster = _load("esign_cluster", ROOT / "scripts" / "cluster.py")
cluster_test = _load("esign_cluster_test", ROOT / "tests" / "cluster" / "test_cluster.py")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used (``/proc/<pid>/stat``)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class ClusterWorld:
    """A running cluster, answering what ``bench_throughput.run_journeys`` asks of a world."""

    def __init__(self, base: Path, stack: ExitStack, *, instances: int, threads: int, durable: bool) -> None:
        import esign_site

        from helpers.journey import BankIDTester
        from helpers.rest import Officer

        settings = esign_cluster.ClusterSettings(
            base=base,
            instances=instances,
            threads=threads,
            durable=durable,
            officer_password=OFFICER_PASSWORD,
            isolated=True,
            # Every virtual signer comes from 127.0.0.1, as in bench_throughput's World.
            extra_env={"ESIGN_BANKID_RATE": "off"},
        )
        self.cluster = esign_cluster.Cluster(settings)
        stack.callback(self.cluster.stop)
        started = time.monotonic()
        self.cluster.start()
        steps = ", ".join(f"{name} {seconds} s" for name, seconds in self.cluster.timings.items())
        print(
            f"cluster ready in {time.monotonic() - started:.1f} s ({steps}): {self.cluster.urls}", flush=True
        )
        self.urls = list(self.cluster.urls)
        self.portal_url = self.urls[0]
        self.tester = BankIDTester(self.cluster.bankid_page_url)
        auth = (esign_site.OFFICER_ID, OFFICER_PASSWORD)
        self.sender = Officer(self.urls[0], auth=auth)
        self.reader = Officer(self.urls[-1], auth=auth)
        self.pdf = esign_site.contract_pdf()
        self.paths: dict[str, str] = {}
        began = time.monotonic()
        cluster_test.warm_up(self.cluster, self.pdf, self.urls)
        print(f"warm-up: one signature through each instance in {time.monotonic() - began:.1f} s", flush=True)

    def make_cases(self, people: list[dict], *, title: str) -> list[tuple[str, dict]]:
        from helpers.rest import create_case

        made = []
        for number, person in enumerate(people, start=1):
            created = create_case(self.sender, self.pdf, [person], title=f"{title} {number}")
            if created.status_code != 201:
                raise SystemExit(
                    f"bench: creating a case answered {created.status_code}: {created.text[:300]}"
                )
            uid, path = created.json()["UID"], created.json()["@id"].rsplit("/", 1)[1]
            sent = self.sender.post(f"{path}/@workflow/send")
            if sent.status_code != 200:
                raise SystemExit(f"bench: sending a case answered {sent.status_code}: {sent.text[:300]}")
            self.paths[uid] = path
            made.append((uid, person))
        return made

    def invitation_links(self, people: list[dict], *, timeout: float = 120) -> dict[str, str]:
        from helpers.journey import link_in

        wanted = {p["email"] for p in people}

        def invitation(message) -> bool:
            to = str(message["To"])
            return any(a in to for a in wanted) and cluster_test.INVITATION in cluster_test.text_of(message)

        mails = cluster_test.wait_for_mails(
            self.cluster.mail_dir, invitation, count=len(wanted), timeout=timeout
        )
        links = {}
        for message in mails:
            address = next(a for a in wanted if a in str(message["To"]))
            links[address] = link_in(cluster_test.text_of(message))
        if len(links) != len(wanted):
            raise SystemExit(f"bench: only {len(links)} of {len(wanted)} invitations arrived")
        return links

    def routes(self, index: int) -> tuple[str, str]:
        """Journey ``index`` logs in through one instance and signs through the next."""
        return self.urls[index % len(self.urls)], self.urls[(index + 1) % len(self.urls)]

    def conflict_counts(self) -> Counter:
        """Totals so far from the instances' logs: retries and give-ups per view, signatures redone."""
        logs = [child.log for child in self.cluster.instances]
        counts: Counter = Counter(conflict_retries=0, conflict_gave_up=0)
        for line, number in cluster_test.conflict_lines(logs).items():
            kind, _, view = line.partition(" ")
            if kind == "conflict-retry":
                counts["conflict_retries"] += number
                counts[f"retries {view}"] += number
            elif kind == "conflict-gave-up":
                counts["conflict_gave_up"] += number
                counts[f"gave up {view}"] += number
        counts["signatures_made_again"] = sum(
            len(
                re.findall(
                    r"Signature on case \S+ collided", log.read_text(encoding="utf-8", errors="replace")
                )
            )
            for log in logs
        )
        return counts

    def wait_until_idle(self, *, timeout: float = 600, quiet: float = 0.1) -> float:
        """Seconds until the instances used less than ``quiet`` s of CPU in each of two seconds.

        Requests whose signers gave up after 30 s run on in the instances; the next level must
        not pay for them.
        """
        pids = [child.popen.pid for child in self.cluster.instances]
        began = time.monotonic()
        used, calm = sum(cpu_seconds(p) for p in pids), 0
        while calm < 2 and time.monotonic() - began < timeout:
            time.sleep(1)
            now = sum(cpu_seconds(p) for p in pids)
            calm = calm + 1 if now - used < quiet else 0
            used = now
        return max(0.0, time.monotonic() - began - 2)

    def outcome(self, uids: list[str]) -> tuple[list[str], bool]:
        """Each case's state (``@esign-status``) and whether the last one validates (last instance)."""
        states = []
        for uid in uids:
            answer = self.reader.get(f"{self.paths[uid]}/@esign-status")
            states.append(answer.json().get("state", f"HTTP {answer.status_code}"))
        report = self.reader.get(f"{self.paths[uids[-1]]}/@esign-validation")
        return states, report.status_code == 200 and report.json().get("all_valid") is True


def postgres_version() -> str:
    try:
        postgres = esign_cluster.postgres_bindir() / "postgres"
        return subprocess.run([str(postgres), "--version"], capture_output=True, text=True).stdout.strip()
    except esign_cluster.ClusterError:
        return "missing"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Signatures per second through the signer journey on Zope instances sharing RelStorage.",
        epilog="Writes nothing outside a temporary folder unless --keep or --json is given.",
    )
    parser.add_argument("--concurrency", default="4,8", help="signer threads per run (default: %(default)s)")
    parser.add_argument(
        "--journeys", type=int, default=32, help="timed journeys per concurrency level (default: %(default)s)"
    )
    parser.add_argument("--instances", type=int, default=2, help="Zope instances (default: %(default)s)")
    parser.add_argument(
        "--server-threads", type=int, default=4, help="waitress threads per instance (default: %(default)s)"
    )
    parser.add_argument(
        "--no-fsync", action="store_true", help="PostgreSQL without fsync/synchronous_commit (as the tests)"
    )
    parser.add_argument("--verbose", action="store_true", help="print every journey's times")
    parser.add_argument("--json", type=Path, help="write the RESULT values to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, database)")
    args = parser.parse_args(argv)
    if args.instances < 1:
        parser.error("--instances must be at least 1")

    levels = [int(x) for x in args.concurrency.split(",") if x.strip()]
    for name in ("no_proxy", "NO_PROXY"):  # our clients talk to loopback servers only
        os.environ[name] = ",".join(filter(None, (os.environ.get(name), bench.LOOPBACK, "localhost")))
    home = Path(tempfile.mkdtemp(prefix="esign-bench-cluster-"))
    info = {
        **bench.machine(),
        "relstorage": version("RelStorage"),
        "psycopg2": version("psycopg2-binary"),
        "postgresql": postgres_version(),
    }
    print("machine: " + ", ".join(f"{k} {v}" for k, v in info.items()), flush=True)
    for key, value in info.items():
        bench.result(f"machine.{key}", value)
    bench.result("cluster.instances", args.instances)
    bench.result("cluster.server_threads", args.server_threads)
    bench.result("cluster.fsync", not args.no_fsync)
    try:
        with ExitStack() as stack:
            world = ClusterWorld(
                home, stack, instances=args.instances, threads=args.server_threads, durable=not args.no_fsync
            )
            offset = 0
            for level in levels:
                bench.run_journeys(
                    world,
                    concurrency=level,
                    journeys=args.journeys,
                    offset=offset,
                    verbose=args.verbose,
                    prefix="cluster",
                )
                offset += args.journeys + 1
    except esign_cluster.ClusterError as exc:
        bench.FAILURES.append(f"the cluster did not start: {exc}")
    finally:
        if args.keep:
            print(f"temporary cluster folder kept in {home}", file=sys.stderr)
        else:
            shutil.rmtree(home, ignore_errors=True)
    for name, value in bench.RESULTS.items():
        print(f"RESULT {name} {value}")
    if args.json:
        args.json.write_text(json.dumps(bench.RESULTS, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    for failure in bench.FAILURES:
        print(f"bench: {failure}", file=sys.stderr)
    return 1 if bench.FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
