"""The officer's and administrator's doors beside the journey: copies, CA import."""

import datetime as dt
import re
import uuid

import requests
import transaction
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID
from plone import api
from plone.app.testing import SITE_OWNER_NAME, SITE_OWNER_PASSWORD
from plone.namedfile.file import NamedBlobFile

from esign.plone import api as esign
from esign.plone.sitepki import ensure_site_pki, site_pki
from helpers.site import ANNA, MAIL, identity_of
from helpers.smtp import text_of

OFFICER = ("officer", "officer-secret-1")
MANAGER = (SITE_OWNER_NAME, SITE_OWNER_PASSWORD)


def _session(auth, url):
    session = requests.Session()
    session.auth = auth
    page = session.get(url, timeout=30).text
    tag = re.search(r'<input[^>]*name="_authenticator"[^>]*>', page).group(0)
    return session, re.search(r'value="([^"]+)"', tag).group(1)


def test_the_officer_sends_every_party_a_digital_copy(functional_portal, pdf_bytes):
    user = api.user.create(email="officer@regionen.se", username="officer", password=OFFICER[1])
    api.user.grant_roles(user=user, roles=["SigningOfficer"])
    title = f"Avtal {uuid.uuid4().hex[:6]}"
    with api.env.adopt_user(username="officer"):
        case = api.content.create(
            container=functional_portal,
            type="SigningCase",
            title=title,
            information_class="K2",
            document=NamedBlobFile(pdf_bytes, filename="a.pdf", contentType="application/pdf"),
            signers=[dict(ANNA)],
        )
        esign.send_case(case)
    esign.sign_case(case, signer_id=case.signer_records[0].signer_id, identity=identity_of(ANNA))
    transaction.commit()
    session, token = _session(OFFICER, case.absolute_url())
    response = session.post(
        f"{case.absolute_url()}/@@esign-send-copy", data={"_authenticator": token}, timeout=30
    )
    assert "En digital kopia skickades till 1 parter" in response.text
    copy = MAIL.wait_for(
        lambda m: (
            ANNA["email"] in m["To"]
            and title in text_of(m)
            and "kopia" in (m["Subject"] + text_of(m)).lower()
        ),
        timeout=15,
    )
    assert "@@esign-download?case=" in text_of(copy)
    forged = requests.post(f"{case.absolute_url()}/@@esign-send-copy", auth=OFFICER, timeout=30)
    assert forged.status_code in (403, 401)


def _foreign_ca_p12(password: bytes) -> tuple[bytes, x509.Certificate]:
    now = dt.datetime.now(dt.UTC)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Regionen Root CA")])
    root = (
        x509.CertificateBuilder()
        .subject_name(root_name)
        .issuer_name(root_name)
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(root_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    issuing = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Regionen Underskrift CA")]))
        .issuer_name(root_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1825))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(root_key, hashes.SHA256())
    )
    data = pkcs12.serialize_key_and_certificates(
        b"regionen", key, issuing, [root], serialization.BestAvailableEncryption(password)
    )
    return data, root


def test_an_administrator_imports_the_organisations_ca_and_signatures_chain_to_it(
    functional_portal, pdf_bytes
):
    # This test gets a PKI folder of its own, so the import does not touch the other tests' CA.
    api.portal.set_registry_record("esign.internal.pki_id", uuid.uuid4().hex)
    ensure_site_pki(organisation="Test")
    transaction.commit()
    data, root = _foreign_ca_p12(b"hemligt")
    url = functional_portal.absolute_url()
    session, token = _session(MANAGER, f"{url}/@@esign-controlpanel")
    wrong = session.post(
        f"{url}/@@esign-import-ca",
        data={"_authenticator": token, "password": "fel"},
        files={"pkcs12": ("ca.p12", data, "application/x-pkcs12")},
        timeout=30,
    )
    assert "Regionen Underskrift CA" not in wrong.text
    page = session.post(
        f"{url}/@@esign-import-ca",
        data={"_authenticator": token, "password": "hemligt"},
        files={"pkcs12": ("ca.p12", data, "application/x-pkcs12")},
        timeout=30,
    )
    assert "Certifikatutfärdaren importerades." in page.text, re.findall(
        r"statusmessage[^>]*>(.*?)</div>", page.text, re.S
    )
    assert "Regionen Underskrift CA" in page.text
    assert site_pki().root_certificate == root

    officer = api.user.create(email="o@regionen.se", username="officer", password=OFFICER[1])
    api.user.grant_roles(user=officer, roles=["SigningOfficer"])
    with api.env.adopt_user(username="officer"):
        case = api.content.create(
            container=functional_portal,
            type="SigningCase",
            title="Avtal",
            information_class="K2",
            document=NamedBlobFile(pdf_bytes, filename="a.pdf", contentType="application/pdf"),
            signers=[dict(ANNA)],
        )
        esign.send_case(case)
    esign.sign_case(case, signer_id=case.signer_records[0].signer_id, identity=identity_of(ANNA))
    report = esign.validate_case(case)
    assert report.all_valid
    assert "Regionen Underskrift CA" in report.signatures[0].issuer_subject


def test_the_officers_download_is_noted_in_the_audit_trail(functional_portal, pdf_bytes):
    from esign.plone import audit

    user = api.user.create(email="officer@regionen.se", username="officer", password=OFFICER[1])
    api.user.grant_roles(user=user, roles=["SigningOfficer"])
    with api.env.adopt_user(username="officer"):
        case = api.content.create(
            container=functional_portal,
            type="SigningCase",
            title="Avtal",
            information_class="K2",
            document=NamedBlobFile(pdf_bytes, filename="a.pdf", contentType="application/pdf"),
            signers=[dict(ANNA)],
        )
        esign.send_case(case)
    esign.sign_case(case, signer_id=case.signer_records[0].signer_id, identity=identity_of(ANNA))
    transaction.commit()
    # A plain GET by a logged-in officer: plone.protect must not drop the note.
    response = requests.get(f"{case.absolute_url()}/@@signed-document", auth=OFFICER, timeout=30)
    assert response.content.startswith(b"%PDF")
    case._p_jar.sync()
    last = audit.entries(case)[-1]
    assert (last.event, last.actor) == ("downloaded", "user:officer")
    assert audit.verify(case).ok
