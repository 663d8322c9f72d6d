"""Benchmark: PAdES B-T and B-LTA through the esign.plone engine vs. raw pyHanko.

    python bench/bench_levels.py [--sizes 1page,10MB] [--repeat N]

For each size, in a subprocess of its own, one site PKI (root, issuing CA, TSA, a register of
issued certificates) is served over real HTTP on 127.0.0.1 by ``tests/helpers/trustserver.py``:
``/tsa``, the OCSP responders and the CRLs. Every variant talks to that same server; the
variants are interleaved within each round (the order rotates from round to round):

* ``engine-BB``   - ``sign_pdf`` at B-B (key generation and certificate issue included);
* ``raw-BB``      - pyHanko ``PdfSigner`` with a ready key and certificate, same settings;
* ``engine-BT``   - ``sign_pdf`` at B-T with the engine's HTTP client (``ltv.http_timestamper``);
* ``raw-BT``      - ``PdfSigner`` with pyHanko's ``HTTPTimeStamper`` on the same ``/tsa``;
* ``engine-BLTA`` - ``sign_pdf`` at B-LT, then ``ltv.add_document_timestamp``: what the add-on
  does for a one-signer case at completion;
* ``raw-BLTA``    - ``PdfSigner`` with ``embed_validation_info`` and ``use_pades_lta``; pyHanko
  fetches the OCSP responses and CRLs from the server over HTTP, where the engine makes its
  own in process (the same responder and CRL code the server runs).

Every variant writes to a file and uses the engine's fixed signature reservation. Each
variant's output is validated once, outside the timing, with ``reports.assess_pdf`` against
the site root: it must be TOTAL-PASSED at the variant's level, or the benchmark fails.
The table shows medians, ``engine/raw`` per level, and the bytes each level adds to the
input. The last lines read ``ratio B-T <size>: X.XX`` and ``ratio B-LTA <size>: X.XX``.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "src"))

LEVELS = {"B-B": "BB", "B-T": "BT", "B-LTA": "BLTA"}
VARIANTS = tuple(f"{side}-{short}" for short in LEVELS.values() for side in ("engine", "raw"))
PASSPHRASE = b"bench"

if TYPE_CHECKING:
    from esign.plone.signing import SitePKI, VerifiedIdentity


def _parse_size(label: str) -> int | None:
    if label == "1page":
        return None
    match = re.fullmatch(r"(\d+)\s*([KMG]B)", label, re.IGNORECASE)
    if not match:
        raise SystemExit(f"unknown size {label!r}: use 1page or e.g. 10MB")
    factor = {"KB": 10**3, "MB": 10**6, "GB": 10**9}[match.group(2).upper()]
    return int(match.group(1)) * factor


def _worker(label: str, repeat: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="esign-bench-levels-") as work:
        return _measure(Path(work), label, repeat)


def _measure(work: Path, label: str, repeat: int) -> dict:
    import datetime as dt

    from esign.plone.signing import AuthenticationContext, SitePKI, VerifiedIdentity
    from esign.plone.signing.revocation import MemoryRegistry
    from esign.plone.signing.values import PublicationPoints
    from helpers.pdfs import TestDocuments
    from helpers.trustserver import TrustServer

    documents = TestDocuments(work / "docs")
    size = _parse_size(label)
    source_path = documents.path("reportlab") if size is None else documents.big(size)
    identity = VerifiedIdentity(
        given_name="Tolvan",
        surname="Tolvansson",
        personal_number="191212121212",
        context=AuthenticationContext(
            method="bankid", identity_provider="http://idp.example", authenticated_at=dt.datetime.now(dt.UTC)
        ),
    )

    server = TrustServer().start()
    try:
        # The port is known before the services exist, so the certificates can name it.
        publication = PublicationPoints.under(server.url)
        pki = SitePKI.create(
            work / "pki", passphrase=PASSPHRASE, organisation="Bench", publication=publication
        )
        pki = pki.bound(registry=MemoryRegistry(), publication=publication)
        pki = pki.issue_tsa(work / "pki", passphrase=PASSPHRASE, years=6)
        server.tsa = pki.timestamp_authority()
        server.ocsp = pki.ocsp_responder()
        server.root_ocsp = pki.root_ocsp_responder()
        server.crls = {"issuing.crl": lambda: pki.issuing_crl(), "root.crl": lambda: pki.root_crl()}
        return _run_variants(
            work, label, repeat, source_path=source_path, pki=pki, identity=identity, url=server.url
        )
    finally:
        server.stop()


def _run_variants(
    work: Path,
    label: str,
    repeat: int,
    *,
    source_path: Path,
    pki: SitePKI,
    identity: VerifiedIdentity,
    url: str,
) -> dict:
    import datetime as dt

    from asn1crypto import keys as asn1_keys
    from asn1crypto import x509 as asn1_x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign import fields, signers, timestamps
    from pyhanko_certvalidator import ValidationContext
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    from esign.plone.signing import ltv
    from esign.plone.signing.pades import SIGNATURE_BYTES_RESERVED, sign_pdf
    from esign.plone.signing.reports import assess_pdf
    from esign.plone.signing.values import SigningProfile

    tsa_url = url + "/tsa"
    engine_timestamper = ltv.http_timestamper(tsa_url)
    raw_timestamper = timestamps.HTTPTimeStamper(tsa_url)

    # Raw pyHanko gets its key and certificate ready-made (issued by the same CA, recorded
    # in the register, so the OCSP responder vouches for it), outside the timing.
    der = serialization.Encoding.DER
    raw_key = ec.generate_private_key(ec.SECP256R1())
    raw_cert = pki.issue_one_time_certificate(identity, raw_key.public_key(), validity=dt.timedelta(hours=1))
    asn1_root = asn1_x509.Certificate.load(pki.root_certificate.public_bytes(der))
    raw_signer = signers.SimpleSigner(
        signing_cert=asn1_x509.Certificate.load(raw_cert.public_bytes(der)),
        signing_key=asn1_keys.PrivateKeyInfo.load(
            raw_key.private_bytes(der, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        ),
        cert_registry=SimpleCertificateStore.from_certs(
            [asn1_x509.Certificate.load(c.public_bytes(der)) for c in pki.chain]
        ),
    )

    def raw_context() -> ValidationContext:
        # The issuing CA certificate names no CRL address (see SitePKI.create), so pyHanko
        # could not find the root CRL that covers it: the raw run downloads it from the
        # server itself and hands it in; everything else pyHanko fetches as the
        # certificates point it (OCSP for the signer and the TSA). A new context per
        # signature, as the engine makes one: a context caches what it fetched.
        with urllib.request.urlopen(pki.publication.root_crl_url, timeout=10) as response:  # noqa: S310
            root_crl = response.read()
        return ValidationContext(trust_roots=[asn1_root], crls=[root_crl], allow_fetching=True)

    def raw_metadata(level: str) -> signers.PdfSignatureMetadata:
        lta = level == "B-LTA"
        return signers.PdfSignatureMetadata(
            field_name="Signature1",
            md_algorithm="sha256",
            subfilter=fields.SigSeedSubFilter.PADES,
            embed_validation_info=lta,
            use_pades_lta=lta,
            validation_context=raw_context() if lta else None,
        )

    out = {name: work / f"{name}.pdf" for name in VARIANTS}
    intermediate = work / "engine-BLT.pdf"

    def engine(level: str) -> Callable[[], None]:
        target = out[f"engine-{LEVELS[level]}"]

        def run() -> None:
            signed_level = "B-LT" if level == "B-LTA" else level
            first = intermediate if level == "B-LTA" else target
            with source_path.open("rb") as source, first.open("w+b") as output:
                sign_pdf(
                    source,
                    output,
                    identity=identity,
                    pki=pki,
                    profile=SigningProfile(level=signed_level),
                    timestamper=None if level == "B-B" else engine_timestamper,
                )
            if level == "B-LTA":
                with intermediate.open("rb") as signed, target.open("w+b") as output:
                    ltv.add_document_timestamp(signed, output, pki=pki, timestamper=engine_timestamper)

        return run

    def raw(level: str) -> Callable[[], None]:
        target = out[f"raw-{LEVELS[level]}"]

        def run() -> None:
            with source_path.open("rb") as source, target.open("w+b") as output:
                writer = IncrementalPdfFileWriter(source, strict=False)
                signers.PdfSigner(
                    raw_metadata(level),
                    signer=raw_signer,
                    timestamper=None if level == "B-B" else raw_timestamper,
                ).sign_pdf(writer, output=output, bytes_reserved=SIGNATURE_BYTES_RESERVED)

        return run

    runs = {}
    for level, short in LEVELS.items():
        runs[f"engine-{short}"] = engine(level)
        runs[f"raw-{short}"] = raw(level)

    # Warm-up (imports, the timestampers' sample tokens, the page cache), then the check
    # of what each variant makes: the numbers mean nothing if a variant falls short.
    added, cms_bytes, updates = {}, {}, {}
    input_bytes = source_path.stat().st_size
    for name, run in runs.items():
        run()
        level = next(level for level, short in LEVELS.items() if name.endswith("-" + short))
        data = out[name].read_bytes()
        # B-LTA must pass with nothing but what the file carries; B-B and B-T are checked
        # now, the validator fetching the current status from the server as any would.
        report = assess_pdf(data, trust_roots=[pki.root_certificate], allow_fetching=level != "B-LTA")
        got = [(s.indication, s.sub_indication, s.level) for s in report.signatures]
        if got != [("TOTAL-PASSED", None, level)]:
            raise SystemExit(f"{name} ({label}): expected [TOTAL-PASSED at {level}], validation gave {got}")
        if level == "B-LTA" and [s.indication for s in report.document_timestamps] != ["TOTAL-PASSED"]:
            raise SystemExit(f"{name} ({label}): the document timestamp does not validate")
        added[name] = len(data) - input_bytes
        reader = PdfFileReader(io.BytesIO(data), strict=False)
        # What the signatures really hold, inside their fixed /Contents reservations.
        cms_bytes[name] = sum(len(s.signed_data.dump()) for s in reader.embedded_signatures)
        updates[name] = reader.xrefs.total_revisions - 1

    names = list(runs)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_number in range(repeat):
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            runs[name]()
            times[name].append(time.perf_counter() - start)
    return {
        "label": label,
        "bytes": input_bytes,
        "median": {name: statistics.median(values) for name, values in times.items()},
        "added": added,
        "cms": cms_bytes,
        "updates": updates,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1page,10MB")
    parser.add_argument("--repeat", type=int, default=15, help="rounds per size (default 15)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help="also write the measurements to this file")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.worker:
        print(json.dumps(_worker(args.worker, args.repeat)))
        return

    results = []
    for label in args.sizes.split(","):
        _parse_size(label)
        completed = subprocess.run(
            [sys.executable, __file__, "--worker", label, "--repeat", str(args.repeat)],
            capture_output=True,
            text=True,
            check=False,
        )
        if completed.returncode:
            sys.stderr.write(completed.stderr)
            raise SystemExit(f"level benchmark for {label} failed")
        results.append(json.loads(completed.stdout.strip().splitlines()[-1]))

    columns = " ".join(f"{v:>12}" for v in VARIANTS)
    header = f"{'size':>8} {'bytes':>11} {'n':>3} {columns}"
    print(header)
    print("-" * len(header))
    for result in results:
        medians = result["median"]
        cells = " ".join(f"{medians[v] * 1000:10.1f}ms" for v in VARIANTS)
        print(f"{result['label']:>8} {result['bytes']:>11} {args.repeat:>3} {cells}")
        added = " ".join(f"{result['added'][v]:>+12}" for v in VARIANTS)
        print(f"{'':>8} {'':>11} {'':>3} {added}   (bytes added to the input)")
        cms = " ".join(f"{result['cms'][v]:>12}" for v in VARIANTS)
        print(f"{'':>8} {'':>11} {'':>3} {cms}   (CMS bytes in the signature + document timestamp)")
        updates = " ".join(f"{result['updates'][v]:>12}" for v in VARIANTS)
        print(f"{'':>8} {'':>11} {'':>3} {updates}   (incremental updates)")
    print()
    print(f"{'size':>8} {'level':>6} {'engine':>10} {'raw':>10} {'engine/raw':>10}", end="")
    print(f" {'engine +bytes':>14} {'raw +bytes':>11}")
    for result in results:
        medians, added = result["median"], result["added"]
        for level, short in LEVELS.items():
            engine, raw = medians[f"engine-{short}"], medians[f"raw-{short}"]
            print(
                f"{result['label']:>8} {level:>6} {engine * 1000:8.1f}ms {raw * 1000:8.1f}ms"
                f" {engine / raw:10.2f} {added[f'engine-{short}']:>+14} {added[f'raw-{short}']:>+11}"
            )
    print()
    notes = (
        "One local trust server (TSA, OCSP, CRLs over HTTP on 127.0.0.1, in a thread of the benchmark",
        "process) for every variant. engine = sign_pdf: one-time key + certificate per signature,",
        "1 MiB I/O chunks; raw = pyHanko PdfSigner with a ready key, its default 4 KiB chunks.",
        "B-T: both get the signature timestamp from /tsa over HTTP (pyHanko's HTTPTimeStamper).",
        "B-LTA: the engine signs at B-LT with the OCSP response and CRLs made in process, then adds",
        "the document timestamp (ltv.add_document_timestamp); raw pyHanko fetches OCSP over HTTP as",
        "the certificates point it, plus one GET of the root CRL (the issuing CA names no CRL address).",
        "+bytes: B-B and B-T add the same, the fixed /Contents reservation of 12 KiB (the timestamp",
        "token, ~1.8 KB of CMS, fits inside). B-LTA adds a DSS and the document timestamp; the engine's",
        "has one more DSS update (the TSA chain's status after the timestamp, ready for renewal) and",
        "a fixed 8 KiB timestamp reservation where raw pyHanko sizes it from a sample token.",
        "Each output was validated once (reports.assess_pdf): TOTAL-PASSED at its level.",
    )
    print("\n".join(notes))
    for result in results:
        medians = result["median"]
        for level in ("B-T", "B-LTA"):
            short = LEVELS[level]
            print(
                f"ratio {level} {result['label']}: {medians[f'engine-{short}'] / medians[f'raw-{short}']:.2f}"
            )
    if args.json:
        args.json.write_text(json.dumps([{**result, "repeat": args.repeat} for result in results], indent=1))


if __name__ == "__main__":
    main()
