"""make demo: one complete two-signer case through esign.plone's real code paths, in a throwaway site.

    .venv/bin/python scripts/demo.py [--out var/demo] [--keep]

Starts Zope in this process from a temporary zope.conf (its own FileStorage and
blob directory, and ``ESIGN_PKI_DIR`` in the same temporary folder, so the data
of ``make start`` is never touched), creates a Classic UI Plone site, installs
esign.plone (which makes the site's root and issuing CA), adds the officer and,
as that officer, a case with a reportlab PDF and two signers. Then it calls
``esign.plone.api.send_case`` and, for each signer, ``esign.plone.api.sign_case``,
commits, checks that the case is ``signed`` and validates it. Mail goes to a
mock mail host (nothing leaves the machine); the summary counts the messages.

The identities are handed to the signing engine directly, as
``VerifiedIdentity`` values with ``AuthenticationContext(method="direct",
identity_provider="urn:esign:demo")``: there is no BankID login in the demo
until the BankID integration lands; everything after the authentication (the
identity check against the signer, one-time key and certificate, PAdES
signature, workflow, lock) is the production path.

Writes the signed PDF and the site's root certificate to ``var/demo/`` (check
with ``pdfsig`` after trusting the root in an NSS database), prints a summary
and, as the very last line of stdout, the absolute path of the signed PDF.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
ROOT = SCRIPTS.parent
sys.path.insert(0, str(SCRIPTS))

import esign_site  # noqa: E402

ZOPE_CONF = """\
%define INSTANCE {home}
instancehome $INSTANCE
<zodb_db main>
  <filestorage>
    path $INSTANCE/var/Data.fs
    blob-dir $INSTANCE/var/blobstorage
  </filestorage>
  mount-point /
</zodb_db>
"""


def write_zope_conf(home: Path) -> Path:
    (home / "var").mkdir(parents=True)
    (home / "var" / "blobstorage").mkdir(mode=0o700)
    conf = home / "zope.conf"
    conf.write_text(ZOPE_CONF.format(home=home), encoding="utf-8")
    return conf


def identity_for(record):
    """The verified identity of a signer, as an identity provider would hand it over."""
    from esign.plone.signing.values import AuthenticationContext, VerifiedIdentity

    row = next(s for s in esign_site.SIGNERS if s["personal_number"] == record.personal_number)
    given, _, surname = row["name"].partition(" ")
    return VerifiedIdentity(
        given_name=given,
        surname=surname,
        personal_number=row["personal_number"],
        email=row["email"],
        context=AuthenticationContext(
            method="direct",
            identity_provider="urn:esign:demo",
            authenticated_at=dt.datetime.now(dt.UTC),
            transaction_ref=f"demo-{uuid.uuid4().hex[:12]}",
        ),
    )


def run(home: Path, out: Path) -> Path:
    started = time.monotonic()
    app = esign_site.open_zope_app(str(write_zope_conf(home)))

    import transaction
    from plone import api

    from esign.plone import api as esign

    try:
        site, _ = esign_site.ensure_site(app, site_id="Plone")
        esign_site.ensure_installed(site)
        # Invitation mails are kept in a mock mail host: the demo sends nothing anywhere.
        mailhost = esign_site.capture_mail(site)
        esign_site.ensure_officer()
        case = esign_site.create_demo_case(site)
        transaction.commit()
        print(
            f"Site and case ready in {time.monotonic() - started:.1f} s: {case.absolute_url_path()} "
            f"(owner {case.getOwner().getId()}, state {esign.state_of(case)})"
        )

        with api.env.adopt_user(username=esign_site.OFFICER_ID):
            esign.send_case(case)
        transaction.commit()

        results = []
        for record in esign.signer_records(case):
            result = esign.sign_case(case, signer_id=record.signer_id, identity=identity_for(record))
            transaction.commit()
            results.append((record, result))

        state = esign.state_of(case)
        if state != "signed":
            raise SystemExit(f"demo: the case ended in state {state!r}, expected 'signed'")
        report = esign.validate_case(case)

        out.mkdir(parents=True, exist_ok=True)
        pdf_path = (out / "demo-signed.pdf").resolve()
        root_path = (out / "esign-root-ca.pem").resolve()
        pdf_path.write_bytes(case.signed_document.data)
        root_path.write_bytes(esign.site_pki().root_pem())

        print(f"Case: {case.Title()} ({case.information_class}), state {state}")
        for record, result in results:
            print(
                f"  {record.position}. {record.name}: signed {result.signed_at:%Y-%m-%d %H:%M:%S %Z} "
                f"in {result.field_name}, certificate serial {result.certificate_serial}"
            )
            print(f"     subject {result.certificate_subject}")
        verdict = "all valid" if report and report.all_valid else "NOT valid"
        print(
            f"Validation against the site root: {len(report.signatures) if report else 0} signatures, "
            f"{verdict}"
        )
        print(f"Mails captured (not sent): {len(mailhost.messages)}")
        print(f"Root certificate: {root_path}")
        print(f"Done in {time.monotonic() - started:.1f} s.")
        if not (report and report.all_valid):
            raise SystemExit("demo: the signed document did not validate")
        return pdf_path
    finally:
        transaction.abort()
        app._p_jar.db().close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "demo", help="where to write the results")
    parser.add_argument("--keep", action="store_true", help="keep the temporary site folder")
    args = parser.parse_args(argv)

    home = Path(tempfile.mkdtemp(prefix="esign-demo-"))
    # Before esign.plone is imported: the throwaway site's CA goes to the temporary folder.
    os.environ["ESIGN_PKI_DIR"] = str(home / "esign-pki")
    os.environ.pop("ESIGN_CA_PASSPHRASE", None)
    try:
        pdf_path = run(home, args.out)
    finally:
        if args.keep:
            print(f"Temporary site kept in {home}", file=sys.stderr)
        else:
            shutil.rmtree(home, ignore_errors=True)
    sys.stdout.flush()
    print(pdf_path, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
