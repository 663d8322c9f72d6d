"""make demo: one two-signer case signed through the signer journey, over real sockets, in a throwaway site.

    .venv/bin/python scripts/demo.py [--out var/demo] [--keep]

Everything runs in this process, on free loopback ports, with its data in a
temporary folder (a zope.conf with its own FileStorage and blobs,
``ESIGN_PKI_DIR``, the BankID test PKI, the mail queue and the caught mails), so
the data of ``make start`` is never touched:

* the project's BankID RP API v6.0 test server (mutual TLS) and its tester page,
  found by esign.plone through ``ESIGN_BANKID_*``;
* the project's mail catcher, a real SMTP server: esign.plone's install points
  MailHost and its queue at it (``ESIGN_SMTP_HOST``/``_PORT``, ``ESIGN_MAIL_QUEUE``);
* Zope, started from the temporary zope.conf and served by waitress, so the
  site's absolute URLs (and the links in its mails) are ``http://127.0.0.1:<port>/Plone``.

The script creates a Classic UI Plone site, installs esign.plone (the site's root
and issuing CA), adds the officer and, as that officer, a case with a reportlab
PDF and two signers, and sends it (direct API calls, committed). Then each signer
does what their browser would, with ``requests`` (``tests/helpers/journey.py``):
reads the invitation in the mail catcher, opens "Hantera ärendet", logs in with
BankID (approving the auth order on the test server's page as that person) and
presses "Skriv under" (approving the sign order). Nothing in the add-on is
bypassed. When the case is ``signed``, the download link in Anna's completion
mail gives the signed PDF, with her session; it must be the case's document and
validate against the site's root.

Writes the signed PDF and the site's root certificate to ``var/demo/`` (check
with ``pdfsig`` after trusting the root in an NSS database), prints a summary
and, as the very last line of stdout, the absolute path of the signed PDF.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

from cryptography.hazmat.primitives import serialization

SCRIPTS = Path(__file__).resolve().parent
ROOT = SCRIPTS.parent
sys.path.insert(0, str(SCRIPTS))
sys.path.insert(1, str(ROOT / "tests"))

import esign_site  # noqa: E402

LOOPBACK = "127.0.0.1"
MAIL_TIMEOUT = 15.0

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


class WSGIServer:
    """Zope's WSGI application on a free loopback port, served by waitress in a background thread."""

    def __init__(self, app, *, threads: int = 4, ident: str = "esign-demo", **options) -> None:
        import waitress

        self.server = waitress.create_server(
            app, host=LOOPBACK, port=0, threads=threads, ident=ident, **options
        )
        self.port = int(self.server.effective_port)
        self.thread = threading.Thread(target=self.server.run, name=f"{ident}-wsgi", daemon=True)

    def start(self) -> WSGIServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        from waitress import wasyncore

        # Close the sockets in the server's own loop thread; the loop ends when none is left.
        self.server.trigger.pull_trigger(lambda: wasyncore.close_all(self.server._map, ignore_all=True))
        self.thread.join(timeout=5)
        self.server.task_dispatcher.shutdown(timeout=5)


def text_of(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def mail_to(catcher, address: str, *, containing: str):
    return catcher.wait_for(
        lambda m: address in str(m["To"]) and containing in text_of(m), timeout=MAIL_TIMEOUT
    )


def download_link_in(mail_text: str) -> str:
    match = re.search(r"(https?://\S+/@@esign-download\?case=[\w-]+)", mail_text)
    if not match:
        raise SystemExit("demo: no download link in the completion mail")
    return match.group(1)


def set_environment(home: Path, bankid, catcher) -> None:
    """Point esign.plone at the test servers, before Zope starts and the site is made."""
    os.environ.update(bankid.environment())
    os.environ["ESIGN_SMTP_HOST"] = LOOPBACK
    os.environ["ESIGN_SMTP_PORT"] = str(catcher.smtp_port)
    os.environ["ESIGN_MAIL_QUEUE"] = str(home / "mail-queue")
    os.environ.pop("MAILHOST_QUEUE_ONLY", None)
    # The browsers talk to loopback servers only: never through a proxy from the environment.
    for name in ("no_proxy", "NO_PROXY"):
        os.environ[name] = ",".join(filter(None, (os.environ.get(name), LOOPBACK, "localhost")))


def sign_as(signer: dict, *, case_uid: str, portal_url: str, catcher, tester):
    """One signer's journey, as their browser: mail link, BankID login, "Skriv under". Returns
    ``(browser, sign order)``."""
    from helpers.journey import SignerBrowser, link_in

    browser = SignerBrowser(portal_url)
    invitation = mail_to(catcher, signer["email"], containing="Hantera ärendet")
    landing = browser.get(link_in(text_of(invitation)))
    if not landing.url.endswith("/@@esign-login"):
        raise SystemExit(f"demo: the invitation link led to {landing.url}, not to the login page")
    logged_in = browser.login_with_bankid(tester, personal_number=signer["personal_number"])
    if logged_in.get("status") != "complete":
        raise SystemExit(f"demo: BankID login of {signer['name']} ended with {logged_in}")
    signed = browser.sign_with_bankid(tester, case_uid, personal_number=signer["personal_number"])
    if signed.get("status") != "complete":
        raise SystemExit(f"demo: the signature of {signer['name']} ended with {signed}")
    return browser, signed["order"]


def run(home: Path, out: Path, stack: ExitStack) -> Path:
    started = time.monotonic()

    from esign.plone.testservers.bankid import BankIDTestServer
    from esign.plone.testservers.mail import MailCatcher
    from helpers.journey import BankIDTester

    bankid = BankIDTestServer(home / "bankid").start()
    stack.callback(bankid.stop)
    catcher = MailCatcher(home / "mail").start()
    stack.callback(catcher.stop)
    set_environment(home, bankid, catcher)

    app = esign_site.open_zope_app(str(write_zope_conf(home)))
    db = app._p_jar.db()
    stack.callback(db.close)

    import transaction
    from plone import api
    from ZPublisher.WSGIPublisher import publish_module

    from esign.plone import api as esign
    from esign.plone.notify import stop_queue_processor

    stack.callback(transaction.abort)
    web = WSGIServer(publish_module).start()
    stack.callback(web.stop)
    # What the officer's calls below make (the links in the invitations) must point at that server.
    app.REQUEST.setServerURL(protocol="http", hostname=LOOPBACK, port=web.port)

    site, _ = esign_site.ensure_site(app, site_id="Plone")
    esign_site.ensure_installed(site)  # also points MailHost and its queue at the mail catcher
    stack.callback(stop_queue_processor, site.MailHost)
    esign_site.ensure_officer()
    case = esign_site.create_demo_case(site)
    transaction.commit()
    with api.env.adopt_user(username=esign_site.OFFICER_ID):
        esign.send_case(case)
    transaction.commit()
    uid, portal_url = case.UID(), site.absolute_url()
    print(
        f"Site {portal_url} with the case ready and sent in {time.monotonic() - started:.1f} s "
        f"(BankID test server {bankid.api_url}, mail catcher SMTP {LOOPBACK}:{catcher.smtp_port})"
    )

    tester = BankIDTester(bankid.page_url)
    browsers, orders = {}, {}
    for signer in esign_site.SIGNERS:
        browser, order = sign_as(signer, case_uid=uid, portal_url=portal_url, catcher=catcher, tester=tester)
        stack.callback(browser.http.close)
        browsers[signer["personal_number"]], orders[signer["personal_number"]] = browser, order

    transaction.abort()  # see what the signers' requests committed
    state = esign.state_of(case)
    if state != "signed":
        raise SystemExit(f"demo: the case ended in state {state!r}, expected 'signed'")

    anna = esign_site.SIGNERS[0]
    completed = mail_to(catcher, anna["email"], containing="esign-download")
    download = browsers[anna["personal_number"]].get(download_link_in(text_of(completed)))
    if download.status_code != 200 or not download.content.startswith(b"%PDF"):
        raise SystemExit(f"demo: downloading the signed PDF gave {download.status_code}")
    if download.content != case.signed_document.data:
        raise SystemExit("demo: the downloaded PDF is not the case's signed document")
    report = esign.validate_case(case)
    mail_to(catcher, esign_site.OFFICER_EMAIL, containing=case.Title())  # the officer is told, too

    out.mkdir(parents=True, exist_ok=True)
    pdf_path = (out / "demo-signed.pdf").resolve()
    root_path = (out / "esign-root-ca.pem").resolve()
    pdf_path.write_bytes(download.content)
    pki = esign.site_pki()
    root_path.write_bytes(pki.root_pem())
    (out / "esign-issuing-ca.pem").write_bytes(
        pki.issuing_certificate.public_bytes(serialization.Encoding.PEM)
    )
    long_term = check_long_term(pdf_path, pki, out)

    print(f"Case: {case.Title()} ({case.information_class}), state {state}")
    for record in esign.signer_records(case):
        order_ref = orders[record.personal_number]["orderRef"]
        if record.evidence.get("order_ref") != order_ref:
            raise SystemExit(f"demo: {record.name}'s signature does not record BankID order {order_ref}")
        print(
            f"  {record.position}. {record.name}: BankID order {order_ref}, signed "
            f"{record.signed_at:%Y-%m-%d %H:%M:%S %Z} in {record.field_name}, "
            f"certificate serial {record.certificate_serial}"
        )
        print(f"     subject {record.certificate_subject}")
    verdict = "all valid" if report and report.all_valid else "NOT valid"
    print(
        f"Validation against the site root: {len(report.signatures) if report else 0} signatures, {verdict}"
    )
    mails = catcher.messages()
    print(f"Mails caught by the mail catcher: {len(mails)}")
    for message in mails:
        print(f"  to {message['To']}: {message['Subject']}")
    for line in long_term:
        print(line)
    print(f"Root certificate: {root_path}")
    print(f"Done in {time.monotonic() - started:.1f} s.")
    if not (report and report.all_valid):
        raise SystemExit("demo: the signed document did not validate")
    return pdf_path


def check_long_term(pdf_path: Path, pki, out: Path) -> list[str]:
    """pdfsig (asking the site's OCSP responder, which is up), the page text and the ETSI report.

    :raises SystemExit: when any of them is not what a B-LTA document with a signature page
        and two visible stamps must give.
    """
    import subprocess

    from esign.plone.signing.reports import assess_pdf
    from helpers.validators import pdfsig

    lines = ["pdfsig (root trusted, site OCSP responder asked over HTTP):"]
    people = [
        s
        for s in pdfsig(pdf_path, pki.root_certificate)
        if not str(s.get("field", "")).startswith("Timestamp")
    ]
    for signature in people:
        verdict = f"{signature['signature']} {signature['certificate']}"
        lines.append(f"  {signature['field']}: {signature['signer']} — {verdict}")
    if len(people) != 2 or any(
        s["signature"] != "Signature is Valid." or s["certificate"] != "Certificate is Trusted."
        for s in people
    ):
        raise SystemExit("demo: pdfsig does not report two valid, trusted signatures\n" + "\n".join(lines))
    pages = subprocess.run(["pdfinfo", str(pdf_path)], capture_output=True, text=True).stdout
    last = next(line.split()[-1] for line in pages.splitlines() if line.startswith("Pages:"))
    text = subprocess.run(
        ["pdftotext", "-f", last, "-l", last, str(pdf_path), "-"], capture_output=True, text=True
    ).stdout
    stamps = text.count("Signerat med BankID")
    found = "found" if "Underskriftssida" in text else "MISSING"
    lines.append(f"Signature page (page {last}): {found}, {stamps} stamps")
    if "Underskriftssida" not in text or stamps != 2:
        raise SystemExit("demo: the signature page with two visible stamps is missing")
    report = assess_pdf(pdf_path.read_bytes(), trust_roots=[pki.root_certificate])
    (out / "demo-validation-report.xml").write_bytes(report.etsi_xml)
    lines.append("ETSI EN 319 102-1 (pyHanko AdES, offline):")
    for signature in report.signatures:
        lines.append(f"  {signature.signer_name}: {signature.indication} at {signature.level}")
    for stamp in report.document_timestamps:
        lines.append(f"  document timestamp by {stamp.signer_name}: {stamp.indication}")
    lines.append(f"ETSI TS 119 102-2 report: {(out / 'demo-validation-report.xml').resolve()}")
    if [(s.indication, s.level) for s in report.signatures] != [("TOTAL-PASSED", "B-LTA")] * 2:
        raise SystemExit(
            "demo: the ETSI report does not say TOTAL-PASSED at B-LTA for both\n" + "\n".join(lines)
        )
    return lines


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
        # The servers, the mail queue and the database are closed in reverse order, whatever happened.
        with ExitStack() as stack:
            pdf_path = run(home, args.out, stack)
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
