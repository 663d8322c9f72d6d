"""Over a thousand hostile PDFs through the upload check and the signing engine.

Each input either is refused at upload with an :class:`~esign.plone.errors.ESignError`
that carries a message, or is accepted and then signed, and the signed file reopens,
the new signature validates and ``qpdf --check`` finds no damage the input did not
already have. Nothing may raise anything else, run past the per-input time bound or
grow the worker's memory past the bound. Inputs come from :mod:`helpers.mutations`:
seeded mutations of the real test documents, hand-built attacks (bombs, 10 000-level
nesting, cycles, lying page trees, broken encryption, looping ``/Prev`` chains) and
hypothesis-generated PDFs.

Failures are saved under ``test-output/fuzz/`` (the input as ``<name>.pdf``, what
happened as ``<name>.txt``) with a ``summary.json`` of every run.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

import pytest

from esign.plone.errors import ESignError
from esign.plone.signing import SitePKI, inspect_pdf, sign_pdf_bytes, validate_pdf
from helpers.mutations import (
    HostilePdf,
    Outcome,
    WatchedPool,
    crafted,
    hypothesis_examples,
    mutants,
    plausible_pdfs,
)
from helpers.pdfs import BAD_KINDS, GOOD_KINDS, TestDocuments
from helpers.people import PASSPHRASE, make_identity

OUTPUT = Path(__file__).resolve().parents[2] / "test-output" / "fuzz"
#: The upload limit the fuzz inputs are checked against (the site default).
MAX_SIZE = 50 * 1024 * 1024
#: Per-input wall-clock bound; a small input that takes longer is a hang.
TIME_BOUND = 10.0
#: Bound on a worker's peak resident memory above its idle baseline.
MEMORY_BOUND_MIB = 128
MUTANTS_PER_DOCUMENT = 90
HYPOTHESIS_EXAMPLES = 250

# -- what a worker does with one input ------------------------------------------------------------

_WORKER: dict = {}


def _load_worker(pki_dir: str) -> None:
    # pyHanko logs a warning per oddity it repairs; thousands of them would bury the report.
    logging.getLogger("pyhanko").setLevel(logging.CRITICAL)
    logging.getLogger("pyhanko_certvalidator").setLevel(logging.CRITICAL)
    _WORKER["pki"] = SitePKI.load(pki_dir, passphrase=PASSPHRASE)
    _WORKER["identity"] = make_identity("Tolvan", "Tolvansson", "191212121212")
    # Uploads are checked from a blob file, not from bytes: read through a real file here too.
    _WORKER["upload"] = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the worker


def _as_upload(data: bytes):
    upload = _WORKER["upload"]
    upload.seek(0)
    upload.truncate()
    upload.write(data)
    upload.seek(0)
    return upload


def _qpdf_is_clean(data: bytes) -> tuple[bool, str]:
    with tempfile.NamedTemporaryFile(suffix=".pdf") as handle:
        handle.write(data)
        handle.flush()
        completed = subprocess.run(["qpdf", "--check", handle.name], capture_output=True, timeout=30)
    # qpdf quotes the file's own bytes in its warnings.
    return completed.returncode == 0, (completed.stdout + completed.stderr).decode(errors="replace")


def upload_then_sign(data: bytes) -> tuple[str, str, str]:
    """Upload check, signing and re-validation of one input: ``(verdict, kind, message)``.

    Verdicts: ``refused`` (fine, with the error's class and message), ``signed`` (fine),
    anything else is a failure the test reports.
    """
    try:
        inspect_pdf(_as_upload(data), max_size=MAX_SIZE)
    except ESignError as exc:
        return "refused", type(exc).__name__, exc.message
    except Exception as exc:
        return "crash-at-upload", type(exc).__name__, traceback.format_exc()
    pki = _WORKER["pki"]
    try:
        signed, result = sign_pdf_bytes(data, identity=_WORKER["identity"], pki=pki)
    except ESignError as exc:
        return "accepted-but-unsignable", type(exc).__name__, exc.message
    except Exception as exc:
        return "crash-at-signing", type(exc).__name__, traceback.format_exc()
    try:
        report = validate_pdf(signed, trust_roots=[pki.root_certificate])
    except Exception as exc:
        return "signed-but-unreadable", type(exc).__name__, traceback.format_exc()
    ours = [s for s in report.signatures if s.field_name == result.field_name]
    if not ours or not ours[-1].bottom_line:
        problems = ours[-1].problems if ours else ("the new signature is not found",)
        return "signed-but-invalid", "ValidationReport", "; ".join(problems)
    before, _ = _qpdf_is_clean(data)
    after, output = _qpdf_is_clean(signed)
    if before and not after:
        return "signing-damaged-the-file", "qpdf", output
    return "signed", "", ""


def _misbehave(data: bytes) -> tuple[str, str, str]:
    """A check that does, on request, each thing the watchdog is there to catch."""
    if data == b"hang":
        time.sleep(600)
    elif data == b"die":
        os._exit(3)
    elif data == b"raise":
        raise ValueError("boom")
    elif data == b"hog":
        hog = bytearray(3 * MEMORY_BOUND_MIB * 1024 * 1024)
        return "signed", "", str(len(hog))
    return "signed", "", ""


# -- the run ------------------------------------------------------------------------------------------

FINE = {"refused", "signed"}


@pytest.fixture(scope="module")
def corpus(documents: TestDocuments) -> list[HostilePdf]:
    originals = {kind: documents.data(kind) for kind in GOOD_KINDS + BAD_KINDS if kind != "not-a-pdf"}
    inputs = [HostilePdf("original", f"original-{kind}", data) for kind, data in originals.items()]
    inputs += mutants(originals, per_original=MUTANTS_PER_DOCUMENT)
    inputs += crafted()
    inputs += [
        HostilePdf("hypothesis", f"hypothesis-{number:03d}", data)
        for number, data in enumerate(hypothesis_examples(plausible_pdfs(), HYPOTHESIS_EXAMPLES))
    ]
    return inputs


@pytest.fixture(scope="module")
def outcomes(corpus: list[HostilePdf], pki_dir: Path) -> dict[str, Outcome]:
    pool = WatchedPool(
        upload_then_sign, initializer=_load_worker, initargs=(str(pki_dir),), timeout=TIME_BOUND
    )
    started = time.perf_counter()
    results = pool.run(corpus)
    elapsed = time.perf_counter() - started
    _write_summary(corpus, results, elapsed=elapsed, pool=pool)
    return {outcome.name: outcome for outcome in results}


def _write_summary(
    corpus: list[HostilePdf], results: list[Outcome], *, elapsed: float, pool: WatchedPool
) -> None:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    for stale in OUTPUT.glob("*"):
        stale.unlink()
    by_family: dict[str, Counter] = {}
    for item, outcome in zip(corpus, results, strict=True):
        label = outcome.verdict if outcome.verdict != "refused" else f"refused:{outcome.kind}"
        by_family.setdefault(item.family, Counter())[label] += 1
        if outcome.verdict not in FINE or (item.must_refuse and outcome.verdict != "refused"):
            (OUTPUT / f"{item.name}.pdf").write_bytes(item.data)
            (OUTPUT / f"{item.name}.txt").write_text(
                f"{outcome.verdict} ({outcome.kind}) after {outcome.seconds:.2f} s, "
                f"+{outcome.peak_mib:.0f} MiB\n\n{outcome.message}\n",
                encoding="utf-8",
            )
    slowest = sorted(results, key=lambda o: -o.seconds)[:10]
    summary = {
        "inputs": len(results),
        "seconds": round(elapsed, 1),
        "verdicts": Counter(o.verdict for o in results),
        "refusals": Counter(o.kind for o in results if o.verdict == "refused"),
        "families": {family: dict(counts) for family, counts in sorted(by_family.items())},
        "worker_baseline_mib": [round(b) for b in pool.baselines],
        "worker_restarts": pool.restarts,
        "peak_growth_mib": round(max(o.peak_mib for o in results), 1),
        "slowest": [(o.name, round(o.seconds, 2)) for o in slowest],
        "crafted_refusals": {
            item.name: f"{o.kind}: {o.message}"
            for item, o in zip(corpus, results, strict=True)
            if item.must_refuse
        },
    }
    (OUTPUT / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True), encoding="utf-8")


def _describe(outcomes: list[Outcome]) -> str:
    return "\n".join(
        f"{o.name}: {o.verdict} {o.kind} {o.message.strip().splitlines()[-1:]}" for o in outcomes
    )


def test_the_watchdog_reports_hangs_deaths_crashes_and_memory_hogs() -> None:
    pool = WatchedPool(_misbehave, workers=2, timeout=2)
    probes = [HostilePdf("probe", name, name.encode()) for name in ("hang", "die", "raise", "hog", "fine")]
    results = {outcome.name: outcome for outcome in pool.run(probes)}
    assert results["hang"].verdict == "hang"
    assert results["die"].verdict == "died"
    assert results["raise"].verdict == "crash" and "boom" in results["raise"].message
    assert results["hog"].peak_mib > MEMORY_BOUND_MIB
    assert (results["fine"].verdict, pool.restarts) == ("signed", 2)


def test_more_than_a_thousand_hostile_pdfs_are_tried(corpus: list[HostilePdf]) -> None:
    assert len(corpus) >= 1000
    assert len({item.name for item in corpus}) == len(corpus)


def test_every_input_is_either_refused_with_a_message_or_signed_and_valid(
    corpus: list[HostilePdf], outcomes: dict[str, Outcome]
) -> None:
    failures = [outcomes[item.name] for item in corpus if outcomes[item.name].verdict not in FINE]
    assert not failures, f"{len(failures)} inputs failed (saved in {OUTPUT}):\n" + _describe(failures)
    refused = [o for o in outcomes.values() if o.verdict == "refused"]
    assert all(o.message.strip() for o in refused)


def test_no_input_runs_long_or_grows_memory_past_the_bound(outcomes: dict[str, Outcome]) -> None:
    hogs = [o for o in outcomes.values() if o.peak_mib > MEMORY_BOUND_MIB]
    assert not hogs, _describe(hogs)
    assert max(o.seconds for o in outcomes.values()) < TIME_BOUND


def test_bombs_deep_nesting_and_lying_page_trees_are_refused_at_upload(
    corpus: list[HostilePdf], outcomes: dict[str, Outcome]
) -> None:
    must = [item for item in corpus if item.must_refuse]
    assert len(must) >= 60
    accepted = [outcomes[item.name] for item in must if outcomes[item.name].verdict != "refused"]
    assert not accepted, _describe(accepted)


#: What the refusal of each kind of crafted attack must say, so the officer knows why.
CAUSES = {
    "flate-bomb": "compression bomb",
    "deep-array": "too deeply",
    "deep-dict": "too deeply",
    "deep-page-tree": "too deeply",
    "xref-size": "declares",
    "page-count": "pages",
    "cycle": "refer back",
    "encryption": "encrypted",
    "end-of-file": "end-of-file marker",
    "stream-count": "streams",
}


def test_each_crafted_attack_is_refused_with_its_cause_named(
    corpus: list[HostilePdf], outcomes: dict[str, Outcome]
) -> None:
    vague = {
        item.name: outcomes[item.name].message
        for item in corpus
        if item.must_refuse
        and not any(word in outcomes[item.name].message for word in (CAUSES[item.family], "page tree"))
    }
    assert not vague


def test_the_real_documents_still_pass(corpus: list[HostilePdf], outcomes: dict[str, Outcome]) -> None:
    verdicts = {kind: outcomes[f"original-{kind}"].verdict for kind in GOOD_KINDS}
    assert verdicts == dict.fromkeys(GOOD_KINDS, "signed")
    assert {kind: outcomes[f"original-{kind}"].kind for kind in BAD_KINDS if kind != "not-a-pdf"} == {
        "encrypted": "EncryptedPdf",
        "truncated": "CorruptPdf",
        "zero-pages": "EmptyPdf",
    }


def test_the_mutations_are_the_same_on_every_run(documents: TestDocuments) -> None:
    originals = {"fpdf2": documents.data("fpdf2"), "reportlab": documents.data("reportlab")}
    first = mutants(originals, per_original=30)
    assert first == mutants(originals, per_original=30)
    assert len({m.data for m in first}) == len(first)
