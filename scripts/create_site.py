"""Create the ``make start`` site, unless it exists: run with ``zconsole run``, before ``runwsgi``.

    ESIGN_PKI_DIR=var/esign-pki zconsole run instance/etc/zope.conf scripts/create_site.py

Makes (each step only when missing) the Classic UI Plone site ``/Plone`` titled
"E-underskrift (demo)" in Swedish (language ``sv``, mail sender
``e-underskrift@localhost``), installs esign.plone (which creates the site PKI
under ``$ESIGN_PKI_DIR`` and points the MailHost at ``$ESIGN_SMTP_HOST``/``_PORT``),
adds the esign.plone settings an older install lacks, adds the officer ``officer`` (password from
``ESIGN_OFFICER_PASSWORD``, default ``officer``) with the SigningOfficer role and
one demo case owned by that officer, and commits. Running it again changes nothing.

``zconsole run`` binds the Zope application as ``app`` and does not set ``__file__``.
"""

import os
import sys
from pathlib import Path

import transaction
from plone import api


def _scripts_dir() -> Path:
    here = globals().get("__file__") or next(a for a in sys.argv if a.endswith("create_site.py"))
    return Path(here).resolve().parent


sys.path.insert(0, str(_scripts_dir()))

import esign_site  # noqa: E402


def main(app) -> None:
    if not os.environ.get("ESIGN_PKI_DIR"):
        raise SystemExit("create_site.py: set ESIGN_PKI_DIR (make start sets it to var/esign-pki)")
    # The site's address as make start serves it: the CA's certificates (the TSA's, made on
    # install) name the OCSP/CRL addresses below it, so it must not be "http://nohost".
    request = getattr(app, "REQUEST", None)
    if request is not None:
        request.setServerURL(protocol="http", hostname="localhost", port=8080)
    site, created = esign_site.ensure_site(app)
    print(
        f"Site /{site.getId()}: {'created' if created else 'exists'} "
        f"(title {site.Title()!r}, language {site.Language()!r})"
    )
    # Before the install, so that esign.plone's own fallback sender does not win.
    for name in esign_site.ensure_mail_sender(site):
        print(f"{name}: set to {api.portal.get_registry_record(name)!r}")
    if esign_site.ensure_language(site):
        print(f"Site language: set to {esign_site.SITE_LANGUAGE!r}")
    if esign_site.ensure_installed(site):
        print("esign.plone: installed")
    upgraded = esign_site.ensure_upgraded(site)
    if upgraded:
        print(f"esign.plone: upgraded to profile version {upgraded}")
    added = esign_site.ensure_registry_records(site)
    if added:
        print(f"esign.plone settings added (made by an older esign.plone): {', '.join(added)}")
    # esign.plone points the MailHost at ESIGN_SMTP_HOST/_PORT when installed and, for an
    # existing site, at every process start (this one included); show what is in force.
    mailhost = api.portal.get_tool("MailHost")
    queue = f"queue {mailhost.smtp_queue_directory}" if mailhost.smtp_queue else "no queue"
    print(f"Mail: to {mailhost.smtp_host}:{mailhost.smtp_port}, {queue}")
    officer = esign_site.ensure_officer()
    print(f"Officer {officer.getId()!r}: roles {sorted(officer.getRoles())}")
    case, case_created = esign_site.ensure_demo_case(site)
    print(
        f"Demo case {case.absolute_url_path()}: {'created' if case_created else 'exists'} "
        f"(owner {case.getOwner().getId()})"
    )
    transaction.commit()
    app._p_jar.db().close()


main(globals()["app"])
