"""Building blocks shared by ``create_site.py`` (``make start``) and ``demo.py`` (``make demo``).

Everything here runs inside a Zope process that has loaded Plone's ZCML (through
``zconsole run`` or :func:`open_zope_app`) and works on the ZODB of that process.
Nothing here commits: the callers decide when a transaction is done.
"""

from __future__ import annotations

import io
import os
import secrets

SITE_ID = "Plone"
SITE_TITLE = "E-underskrift (demo)"
SITE_LANGUAGE = "sv"
#: Classic UI: Barceloneta and the default content types; no Volto.
CLASSIC_EXTENSIONS = ("plonetheme.barceloneta:default", "plone.app.contenttypes:default")

OFFICER_ID = "officer"
OFFICER_EMAIL = "officer@example.se"
OFFICER_ROLES = ("SigningOfficer", "Member")

CASE_ID = "avtal-om-vardtjanster-demo"
CASE_TITLE = "Avtal om vårdtjänster (demo)"
CASE_FILENAME = "avtal-om-vardtjanster.pdf"
SIGNERS = (
    {"name": "Anna Andersson", "personal_number": "191212121212", "email": "anna@example.se"},
    {"name": "Bertil Berg", "personal_number": "194911172296", "email": "bertil@example.se"},
)

CONTRACT_PARAGRAPHS = (
    (
        "1. Parter",
        "Detta avtal ingås mellan Regionen (beställaren) och Vårdgivaren AB (leverantören). "
        "Parterna benämns nedan gemensamt parterna.",
    ),
    (
        "2. Avtalets omfattning",
        "Leverantören åtar sig att utföra öppenvårdstjänster inom primärvård "
        "enligt bilagd tjänstebeskrivning, med den kvalitet och tillgänglighet som där anges.",
    ),
    (
        "3. Avtalstid",
        "Avtalet gäller från och med den 1 januari till och med den 31 december. "
        "Därefter förlängs det med ett år i taget om det inte sägs upp senast tre månader före utgången.",
    ),
    (
        "4. Ersättning",
        "Beställaren betalar ersättning per besök enligt prisbilagan. Fakturering sker "
        "månadsvis i efterskott med 30 dagars betalningsvillkor.",
    ),
    (
        "5. Personuppgifter och sekretess",
        "Leverantören behandlar personuppgifter för beställarens räkning "
        "enligt personuppgiftsbiträdesavtalet och iakttar sekretess enligt offentlighets- och "
        "sekretesslagen samt patientdatalagen.",
    ),
    (
        "6. Ändringar",
        "Ändringar av och tillägg till detta avtal ska vara skriftliga och undertecknade "
        "av båda parter för att vara giltiga.",
    ),
    (
        "7. Underskrifter",
        "Avtalet undertecknas elektroniskt av parterna. Varje underskrift gäller "
        "dokumentet i den lydelse det hade när underskriften gjordes.",
    ),
)


def contract_pdf(title: str = "Avtal om vårdtjänster") -> bytes:
    """One A4 page of Swedish contract text, made with reportlab."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import cm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer

    styles = getSampleStyleSheet()
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        title=title,
        author="E-underskrift (demo)",
        leftMargin=2.5 * cm,
        rightMargin=2.5 * cm,
        topMargin=2.5 * cm,
        bottomMargin=2.5 * cm,
    )
    story = [
        Paragraph(title, styles["Title"]),
        Paragraph("mellan Regionen och Vårdgivaren AB", styles["Heading3"]),
        Spacer(1, 0.5 * cm),
    ]
    for heading, text in CONTRACT_PARAGRAPHS:
        story.append(Paragraph(heading, styles["Heading4"]))
        story.append(Paragraph(text, styles["BodyText"]))
    story.append(Spacer(1, 1 * cm))
    story.append(
        Paragraph(
            "Undertecknare: Anna Andersson (för Regionen) och Bertil Berg (för Vårdgivaren AB).",
            styles["Italic"],
        )
    )
    doc.build(story)
    return buffer.getvalue()


def open_zope_app(zope_conf: str):
    """Start Zope from ``zope_conf`` in this process, as ``zconsole run`` does; return the app."""
    import Zope2
    from AccessControl.SecurityManagement import newSecurityManager
    from AccessControl.users import system
    from Testing.makerequest import makerequest
    from zope.globalrequest import setRequest
    from Zope2.Startup.run import make_wsgi_app

    make_wsgi_app({}, zope_conf)
    app = makerequest(Zope2.app())
    app.REQUEST["PARENTS"] = [app]
    setRequest(app.REQUEST)
    newSecurityManager(None, system)
    return app


def ensure_site(app, *, site_id: str = SITE_ID, title: str = SITE_TITLE, language: str = SITE_LANGUAGE):
    """The Classic UI Plone site ``site_id``, created if missing. Returns ``(site, created)``.

    Swedish is tried first; if the site cannot be made in that language, the
    half-made site is thrown away and Plone's default is used.
    """
    import transaction
    from Products.CMFPlone.factory import addPloneSite
    from zope.component.hooks import setSite

    if site_id in app.objectIds():
        site = app[site_id]
        setSite(site)
        return site, False
    for lang in dict.fromkeys((language, "en")):
        try:
            site = addPloneSite(
                app,
                site_id,
                title=title,
                default_language=lang,
                extension_ids=CLASSIC_EXTENSIONS,
            )
        except Exception as exc:
            if lang == "en":
                raise
            print(f"Could not create the site in language {lang!r} ({exc!r}); using the default.")
            transaction.abort()
            setSite(None)
            continue
        setSite(site)
        return site, True
    raise AssertionError("unreachable")


MAIL_FROM_ADDRESS = "e-underskrift@localhost"


def ensure_mail_sender(site) -> list[str]:
    """A sender address and name for the invitations esign.plone mails (Plone refuses to mail
    without an address). Only fills what is empty. Returns the names of the records it set."""
    from plone import api

    changed = []
    if not api.portal.get_registry_record("plone.email_from_address", default=None):
        api.portal.set_registry_record("plone.email_from_address", MAIL_FROM_ADDRESS)
        changed.append("plone.email_from_address")
    if not api.portal.get_registry_record("plone.email_from_name", default=None):
        api.portal.set_registry_record("plone.email_from_name", SITE_TITLE)
        changed.append("plone.email_from_name")
    return changed


def ensure_language(site, language: str = SITE_LANGUAGE) -> bool:
    """Make ``language`` the site's default language (and an available one) unless it is.

    A site made by ``ensure_site`` already is Swedish, unless creating it in Swedish
    failed. Returns True when it changed something.
    """
    from plone import api

    changed = False
    available = list(api.portal.get_registry_record("plone.available_languages", default=None) or [])
    if language not in available:
        api.portal.set_registry_record("plone.available_languages", [*available, language])
        changed = True
    if api.portal.get_registry_record("plone.default_language", default=None) != language:
        api.portal.set_registry_record("plone.default_language", language)
        changed = True
    if changed and hasattr(site, "setLanguage"):
        site.setLanguage(language)
    return changed


def ensure_registry_records(site) -> list[str]:
    """Add esign.plone settings a site installed by an older esign.plone lacks; keep every value.

    esign.plone has no upgrade steps yet, so a site made before a setting existed
    (say ``esign.link_validity_days`` or the BankID/OIDC fields) would miss its record
    and the control panel would fail. Returns the names of the records added.
    """
    from plone import api
    from zope.schema import getFieldsInOrder

    from esign.plone.interfaces import IESignInternal, IESignSettings

    registry = api.portal.get_tool("portal_registry")
    added = []
    for interface, prefix in ((IESignSettings, "esign"), (IESignInternal, "esign.internal")):
        names = [f"{prefix}.{name}" for name, field in getFieldsInOrder(interface) if not field.readonly]
        missing = [name for name in names if name not in registry.records]
        if missing:
            registry.registerInterface(interface, prefix=prefix)  # keeps the existing values
            added.extend(missing)
    return added


def ensure_installed(site) -> bool:
    """Install esign.plone unless it is installed. Returns True when it installed it now."""
    from plone.base.utils import get_installer

    installer = get_installer(site, site.REQUEST)
    if installer.is_product_installed("esign.plone"):
        return False
    if not installer.install_product("esign.plone"):
        raise RuntimeError("installing esign.plone failed; see the log above")
    return True


def ensure_upgraded(site) -> str | None:
    """Run esign.plone's pending upgrade steps (a site made by an older checkout). Returns the new version."""
    from plone.base.utils import get_installer

    installer = get_installer(site, site.REQUEST)
    info = installer.upgrade_info("esign.plone")
    if not info or not info.get("required"):
        return None
    installer.upgrade_product("esign.plone")
    return installer.upgrade_info("esign.plone").get("installedVersion")


def ensure_officer(password: str | None = None):
    """The demo handläggare ``officer`` with the SigningOfficer and Member roles. Returns the user."""
    from plone import api

    password = password or os.environ.get("ESIGN_OFFICER_PASSWORD") or "officer"
    user = api.user.get(username=OFFICER_ID)
    if user is None:
        # Plone's password policy wants 8+ characters; the demo password may be shorter
        # ("officer"), so create the user with a long random one and set the demo one directly.
        user = api.user.create(email=OFFICER_EMAIL, username=OFFICER_ID, password=secrets.token_urlsafe(24))
        acl = api.portal.get_tool("acl_users")
        acl.source_users.doChangeUser(OFFICER_ID, password)
        user.setMemberProperties({"fullname": "Hanna Handläggare"})
    api.user.grant_roles(username=OFFICER_ID, roles=list(OFFICER_ROLES))
    return api.user.get(username=OFFICER_ID)


def create_demo_case(site, *, case_id: str = CASE_ID, title: str = CASE_TITLE):
    """The demo case, created as the officer (who becomes its owner), still a draft."""
    from plone import api
    from plone.namedfile.file import NamedBlobFile

    with api.env.adopt_user(username=OFFICER_ID):
        return api.content.create(
            container=site,
            type="SigningCase",
            id=case_id,
            title=title,
            information_class="K2",
            document=NamedBlobFile(contract_pdf(), filename=CASE_FILENAME, contentType="application/pdf"),
            signers=[dict(s) for s in SIGNERS],
        )


def ensure_demo_case(site):
    """The demo case, created if missing. Returns ``(case, created)``."""
    if CASE_ID in site.objectIds():
        return site[CASE_ID], False
    return create_demo_case(site), True
