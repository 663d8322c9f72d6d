"""About a hundred hostile PDFs through the real upload door: a REST POST that creates a case.

A sample of the inputs :mod:`tests.signing.test_fuzz_pdfs` runs through the engine
(every kind of crafted attack, seeded mutations of the real documents, hypothesis-made
PDFs), sent as an officer would over HTTP to plone.restapi. Whatever arrives, the answer
is 201 with a case, or 400 with the JSON error the add-on promises; never a 500, never a
traceback, and a refused upload leaves nothing behind, neither object nor catalog entry.
Refused inputs are saved under ``test-output/fuzz-upload/``.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest
import requests
import transaction
from plone import api

from esign.plone.errors import ESignError
from esign.plone.signing import inspect_pdf
from helpers.mutations import HostilePdf, crafted, hypothesis_examples, mutants, plausible_pdfs
from helpers.pdfs import BAD_KINDS, GOOD_KINDS, TestDocuments
from helpers.site import ANNA

OFFICER = ("officer", "officer-secret-1")
OUTPUT = Path(__file__).resolve().parents[2] / "test-output" / "fuzz-upload"
#: Larger inputs (the 16 MiB end-of-file cases, the 1 GiB one-layer bomb) cost transfer time
#: and show nothing the engine test has not; the door is about the answer, not the size.
MAX_SAMPLE_SIZE = 2 * 1024 * 1024
REQUEST_TIMEOUT = 30


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> TestDocuments:
    return TestDocuments(tmp_path_factory.mktemp("fuzz-docs"))


@pytest.fixture(scope="module")
def sample(documents: TestDocuments) -> list[HostilePdf]:
    """About 100 inputs, the same on every run: every other crafted attack, every 20th mutant."""
    originals = {kind: documents.data(kind) for kind in GOOD_KINDS + BAD_KINDS if kind != "not-a-pdf"}
    chosen = [HostilePdf("original", f"original-{kind}", data) for kind, data in originals.items()]
    chosen += crafted()[::2]
    chosen += mutants(originals, per_original=90)[::20]
    chosen += [
        HostilePdf("hypothesis", f"hypothesis-{number:02d}", data)
        for number, data in enumerate(hypothesis_examples(plausible_pdfs(), 10))
    ]
    return [item for item in chosen if len(item.data) <= MAX_SAMPLE_SIZE]


@pytest.fixture()
def officer_site(functional_portal):
    user = api.user.create(email="officer@example.se", username="officer", password=OFFICER[1])
    api.user.grant_roles(user=user, roles=["SigningOfficer", "Member"])
    transaction.commit()
    return functional_portal


def _post_case(session: requests.Session, portal_url: str, item: HostilePdf) -> requests.Response:
    return session.post(
        portal_url + "/++api++/",
        json={
            "@type": "SigningCase",
            "title": f"Fuzz {item.name}",
            "information_class": "K2",
            "document": {
                "data": base64.b64encode(item.data).decode(),
                "encoding": "base64",
                "filename": f"{item.name}.pdf",
                "content-type": "application/pdf",
            },
            "signers": [dict(ANNA)],
        },
        timeout=REQUEST_TIMEOUT,
    )


def _stored_cases(portal) -> tuple[set[str], set[str]]:
    """Ids of the cases in the site, and paths of those in the catalog."""
    portal._p_jar.sync()
    objects = {o.getId() for o in portal.objectValues() if o.portal_type == "SigningCase"}
    brains = portal.portal_catalog.unrestrictedSearchResults(portal_type="SigningCase")
    return objects, {brain.getPath() for brain in brains}


def _error_of(response: requests.Response) -> dict:
    """The ``{"type", "message"}`` of a refusal, in either of the add-on's two shapes."""
    body = response.json()
    error = body.get("error", body)
    assert set(error) >= {"type", "message"}, body
    return error


def _engine_accepts(data: bytes) -> bool:
    try:
        inspect_pdf(data, max_size=50 * 1024 * 1024)
    except ESignError:
        return False
    return True


def test_a_hundred_hostile_uploads_get_a_case_or_a_json_refusal_and_never_a_500(officer_site, sample):
    assert 80 <= len(sample) <= 130
    portal_url = officer_site.absolute_url()
    session = requests.Session()
    session.auth = OFFICER
    session.headers["Accept"] = "application/json"
    OUTPUT.mkdir(parents=True, exist_ok=True)
    for stale in OUTPUT.glob("*"):
        stale.unlink()
    sound = {f"original-{kind}" for kind in GOOD_KINDS}
    problems, answers, slowest = [], {}, 0.0
    for item in sample:
        before = _stored_cases(officer_site)
        started = time.perf_counter()
        response = _post_case(session, portal_url, item)
        slowest = max(slowest, time.perf_counter() - started)
        after = _stored_cases(officer_site)
        answers[response.status_code] = answers.get(response.status_code, 0) + 1
        if response.status_code == 201:
            if len(after[0] - before[0]) != 1 or len(after[1] - before[1]) != 1:
                problems.append(f"{item.name}: 201, but not exactly one new case stored and catalogued")
            if item.must_refuse or not _engine_accepts(item.data):
                problems.append(f"{item.name}: a case was created although the upload check refuses the file")
        elif response.status_code == 400:
            error = _error_of(response)
            if not error["message"].strip() or "Traceback" in response.text:
                problems.append(f"{item.name}: a refusal without a message: {response.text[:300]}")
            if after != before:
                problems.append(f"{item.name}: refused, yet the site changed")
            if item.name in sound:
                problems.append(f"{item.name}: a sound document was refused: {error['message']}")
            (OUTPUT / f"{item.name}.txt").write_text(
                f"{error['type']}: {error['message']}\n", encoding="utf-8"
            )
        else:
            problems.append(f"{item.name}: HTTP {response.status_code}: {response.text[:300]}")
    summary = {"inputs": len(sample), "answers": answers, "slowest_seconds": round(slowest, 2)}
    (OUTPUT / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True), encoding="utf-8")
    assert not problems, "\n".join(problems)
    assert answers.get(201, 0) >= len(GOOD_KINDS)
    assert answers.get(400, 0) >= 50
    assert slowest < REQUEST_TIMEOUT
