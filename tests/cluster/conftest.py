"""A throwaway cluster for the tests in this folder: PostgreSQL, two Zope instances on one RelStorage
database, the BankID test server and the mail catcher, each its own OS process (``scripts/cluster.py``).

Nothing here imports Plone into the test process's Zope: the tests are HTTP clients of the
instances, as browsers and the officer's REST client would be. Everything lives in a folder under
the temp dir, removed afterwards; the logs of every process are copied to ``test-output/cluster/``
first, where the summary of the run (timings, conflict retries) is written too.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "test-output" / "cluster"
OFFICER_PASSWORD = "officer-secret-1"


def _load_cluster_module():
    """``scripts/cluster.py``, under a name no test folder can shadow."""
    if "esign_cluster" in sys.modules:
        return sys.modules["esign_cluster"]
    spec = importlib.util.spec_from_file_location("esign_cluster", ROOT / "scripts" / "cluster.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["esign_cluster"] = module
    spec.loader.exec_module(module)
    return module


esign_cluster = _load_cluster_module()


@pytest.fixture(scope="module")
def cluster():
    """Two instances on a fresh database; the site with esign.plone and the officer made by instance 1."""
    for name in ("no_proxy", "NO_PROXY"):  # our clients talk to loopback servers only
        os.environ[name] = ",".join(filter(None, (os.environ.get(name), "127.0.0.1", "localhost")))
    base = Path(tempfile.mkdtemp(prefix="esign-cluster-"))
    settings = esign_cluster.ClusterSettings(
        base=base,
        instances=2,
        durable=False,
        officer_password=OFFICER_PASSWORD,
        isolated=True,
        # Every test signer comes from 127.0.0.1: the BankID rate limit per client address
        # (10 starts per 5 minutes by default) would throttle the test itself.
        extra_env={"ESIGN_BANKID_RATE": "10000/300"},
    )
    running = esign_cluster.Cluster(settings)
    try:
        running.start()
    except esign_cluster.ClusterError as exc:
        _keep_logs(running)
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(f"the cluster did not start: {exc}", pytrace=False)
    try:
        yield running
    finally:
        running.stop()
        _keep_logs(running)
        shutil.rmtree(base, ignore_errors=True)


def _keep_logs(running) -> None:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    for log in running.log_dir.glob("*.log*"):  # *.log.1: a restarted process's earlier log
        shutil.copyfile(log, OUTPUT / log.name)


@pytest.fixture()
def write_summary():
    """``write_summary(name, data)``: ``test-output/cluster/<name>.json``, for the report of a run."""

    def write(name: str, data: dict) -> Path:
        OUTPUT.mkdir(parents=True, exist_ok=True)
        path = OUTPUT / f"{name}.json"
        path.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
        return path

    return write


@pytest.fixture()
def pdf_bytes() -> bytes:
    """A one-page contract, as an officer would upload it."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    buffer = io.BytesIO()
    page = canvas.Canvas(buffer, pagesize=A4)
    page.drawString(72, 760, "Samverkansavtal mellan tio parter")
    page.showPage()
    page.save()
    return buffer.getvalue()
