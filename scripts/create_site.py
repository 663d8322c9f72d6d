"""Create the ``make start`` site, unless it exists: run with ``zconsole run``, before ``runwsgi``.

    ESIGN_PKI_DIR=var/esign-pki zconsole run instance/etc/zope.conf scripts/create_site.py

Makes (each step only when missing) the Classic UI Plone site ``/Plone`` titled
"E-underskrift (demo)" in Swedish, installs esign.plone (which creates the site
PKI under ``$ESIGN_PKI_DIR``), adds the officer ``officer`` (password from
``ESIGN_OFFICER_PASSWORD``, default ``officer``) with the SigningOfficer role and
one demo case owned by that officer, and commits. Running it again changes nothing.

``zconsole run`` binds the Zope application as ``app`` and does not set ``__file__``.
"""

import os
import sys
from pathlib import Path

import transaction


def _scripts_dir() -> Path:
    here = globals().get("__file__") or next(a for a in sys.argv if a.endswith("create_site.py"))
    return Path(here).resolve().parent


sys.path.insert(0, str(_scripts_dir()))

import esign_site  # noqa: E402


def main(app) -> None:
    if not os.environ.get("ESIGN_PKI_DIR"):
        raise SystemExit("create_site.py: set ESIGN_PKI_DIR (make start sets it to var/esign-pki)")
    site, created = esign_site.ensure_site(app)
    print(
        f"Site /{site.getId()}: {'created' if created else 'exists'} "
        f"(title {site.Title()!r}, language {site.Language()!r})"
    )
    if esign_site.ensure_installed(site):
        print("esign.plone: installed")
    esign_site.ensure_mail_sender(site)
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
