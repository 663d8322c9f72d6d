"""Benchmark: one signature through the esign.plone engine vs. raw pyHanko.

    python bench/bench_signing.py [--sizes 1page,10MB,100MB] [--repeat N]

For each size, in a subprocess of its own (so peak RSS is per size), the same
input is signed repeatedly, the variants interleaved within each round:

* ``engine-file``  - ``sign_pdf`` incl. key generation and certificate issue, into a file;
* ``engine-blob``  - the same, writing into a ZODB blob (FileStorage + blob dir) and committing,
  as the add-on stores a signed document; the blob is opened ``"r+"`` so pyHanko writes into
  it directly;
* ``engine-blob-w`` - a blob opened ``"w"`` (write-only: pyHanko renders into memory, then copies);
* ``raw-file``     - pyHanko ``PdfSigner`` with a ready key and certificate, same settings (incl. the
  engine's fixed signature reservation, which spares pyHanko a size-estimation pass), into a file;
* ``raw-tuned``    - as ``raw-file`` plus the engine's 1 MiB I/O chunks (pyHanko's default is 4 KiB),
  to show how much of the difference is that tuning rather than the engine's own work.

The table shows medians, each variant's ratio to ``raw-file``, tracemalloc peak of one extra
run per variant, and the subprocess's max RSS. The last lines read ``ratio <size>: X.XX``
(engine-file / raw-file).
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "src"))

VARIANTS = ("engine-file", "engine-blob", "engine-blob-w", "raw-file", "raw-tuned")


def _parse_size(label: str) -> int | None:
    if label == "1page":
        return None
    match = re.fullmatch(r"(\d+)\s*([KMG]B)", label, re.IGNORECASE)
    if not match:
        raise SystemExit(f"unknown size {label!r}: use 1page or e.g. 10MB")
    factor = {"KB": 10**3, "MB": 10**6, "GB": 10**9}[match.group(2).upper()]
    return int(match.group(1)) * factor


def _worker(label: str, repeat: int) -> dict:
    # A 100 MB run leaves about a gigabyte of blobs and copies behind; remove it all.
    with tempfile.TemporaryDirectory(prefix="esign-bench-") as work:
        return _measure(Path(work), label, repeat)


def _measure(work: Path, label: str, repeat: int) -> dict:
    import datetime as dt

    import transaction
    from asn1crypto import keys as asn1_keys
    from asn1crypto import x509 as asn1_x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers
    from pyhanko_certvalidator.registry import SimpleCertificateStore
    from ZODB import DB
    from ZODB.blob import Blob
    from ZODB.FileStorage import FileStorage

    from esign.plone.signing import AuthenticationContext, SitePKI, VerifiedIdentity, sign_pdf
    from esign.plone.signing.pades import SIGNATURE_BYTES_RESERVED
    from helpers.pdfs import TestDocuments

    documents = TestDocuments(work / "docs")
    size = _parse_size(label)
    source_path = documents.path("reportlab") if size is None else documents.big(size)
    pki = SitePKI.create(work / "pki", passphrase=b"bench", organisation="Bench")
    identity = VerifiedIdentity(
        given_name="Tolvan",
        surname="Tolvansson",
        personal_number="191212121212",
        context=AuthenticationContext(
            method="bankid", identity_provider="http://idp.example", authenticated_at=dt.datetime.now(dt.UTC)
        ),
    )

    # Raw pyHanko gets its key and certificate ready-made, outside the timing.
    der = serialization.Encoding.DER
    raw_key = ec.generate_private_key(ec.SECP256R1())
    raw_cert = pki.issue_one_time_certificate(identity, raw_key.public_key(), validity=dt.timedelta(hours=1))
    raw_signer = signers.SimpleSigner(
        signing_cert=asn1_x509.Certificate.load(raw_cert.public_bytes(der)),
        signing_key=asn1_keys.PrivateKeyInfo.load(
            raw_key.private_bytes(der, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        ),
        cert_registry=SimpleCertificateStore.from_certs(
            [asn1_x509.Certificate.load(c.public_bytes(der)) for c in pki.chain]
        ),
    )
    raw_meta = signers.PdfSignatureMetadata(
        field_name="Signature1", md_algorithm="sha256", subfilter=fields.SigSeedSubFilter.PADES
    )

    storage = FileStorage(str(work / "Data.fs"), blob_dir=str(work / "blobs"))
    db = DB(storage)
    connection = db.open()
    zroot = connection.root()
    out_path = work / "out.pdf"

    def engine_file() -> None:
        with source_path.open("rb") as source, out_path.open("w+b") as output:
            sign_pdf(source, output, identity=identity, pki=pki)

    def engine_blob(mode: str) -> Callable[[], None]:
        def run() -> None:
            transaction.begin()
            blob = Blob()
            zroot["signed"] = blob
            with source_path.open("rb") as source, blob.open(mode) as output:
                sign_pdf(source, output, identity=identity, pki=pki)
            transaction.commit()

        return run

    def raw_file() -> None:
        with source_path.open("rb") as source, out_path.open("w+b") as output:
            writer = IncrementalPdfFileWriter(source, strict=False)
            signers.PdfSigner(raw_meta, signer=raw_signer).sign_pdf(
                writer, output=output, bytes_reserved=SIGNATURE_BYTES_RESERVED
            )

    def raw_tuned() -> None:
        with source_path.open("rb") as source, out_path.open("w+b") as output:
            writer = IncrementalPdfFileWriter(source, strict=False)
            writer.IO_CHUNK_SIZE = 1024 * 1024
            signers.PdfSigner(raw_meta, signer=raw_signer).sign_pdf(
                writer, output=output, bytes_reserved=SIGNATURE_BYTES_RESERVED, chunk_size=1024 * 1024
            )

    runs = {
        "engine-file": engine_file,
        "engine-blob": engine_blob("r+"),
        "engine-blob-w": engine_blob("w"),
        "raw-file": raw_file,
        "raw-tuned": raw_tuned,
    }
    for run in runs.values():  # warm-up: imports, caches, page cache of the input
        run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeat):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    peaks = {}
    for name, run in runs.items():
        tracemalloc.start()
        run()
        peaks[name] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    connection.close()
    db.close()
    return {
        "label": label,
        "bytes": source_path.stat().st_size,
        "median": {name: statistics.median(values) for name, values in times.items()},
        "peak": peaks,
        "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1page,10MB,100MB")
    parser.add_argument("--repeat", type=int, default=None, help="rounds per size (default 5, 3 from 50 MB)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help="also write the measurements to this file")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(_worker(args.worker, args.repeat)))
        return

    results = []
    for label in args.sizes.split(","):
        size = _parse_size(label)
        repeat = args.repeat or (3 if size and size >= 50 * 10**6 else 5)
        completed = subprocess.run(
            [sys.executable, __file__, "--worker", label, "--repeat", str(repeat)],
            capture_output=True,
            text=True,
            check=False,
        )
        if completed.returncode:
            sys.stderr.write(completed.stderr)
            raise SystemExit(f"benchmark for {label} failed")
        results.append((repeat, json.loads(completed.stdout.strip().splitlines()[-1])))

    columns = " ".join(f"{v:>15}" for v in VARIANTS)
    header = f"{'size':>8} {'bytes':>11} {'n':>2} {columns} {'maxRSS':>8}"
    print(header)
    print("-" * len(header))
    for repeat, result in results:
        medians = result["median"]
        raw = medians["raw-file"]
        cells = " ".join(f"{medians[v] * 1000:8.1f}ms {medians[v] / raw:4.2f}x" for v in VARIANTS)
        rss = result["maxrss_kb"] / 1024
        print(f"{result['label']:>8} {result['bytes']:>11} {repeat:>2} {cells} {rss:6.0f}MB")
        peaks = " ".join(f"{result['peak'][v] / 2**20:13.1f}MB" for v in VARIANTS)
        print(f"{'':>8} {'':>11} {'':>2} {peaks}   (tracemalloc peak)")
    print()
    print("engine-blob = what the add-on does per signature: one-time key + certificate + PAdES B-B,")
    print("streamed into a ZODB blob and committed; raw-file = pyHanko with a ready key, default settings.")
    for _repeat, result in results:
        medians, label = result["median"], result["label"]
        print(f"ratio engine-file/raw-file {label}: {medians['engine-file'] / medians['raw-file']:.2f}")
        print(f"ratio engine-file/raw-tuned {label}: {medians['engine-file'] / medians['raw-tuned']:.2f}")
    for _repeat, result in results:
        medians = result["median"]
        print(f"ratio {result['label']}: {medians['engine-blob'] / medians['raw-file']:.2f}")
    if args.json:
        args.json.write_text(
            json.dumps([{**result, "repeat": repeat} for repeat, result in results], indent=1)
        )


if __name__ == "__main__":
    main()
