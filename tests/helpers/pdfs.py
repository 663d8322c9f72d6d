"""A factory of real test documents, made by several independent PDF producers.

Every document is generated once per test session and cached as a file in the
factory's directory; :meth:`TestDocuments.path` returns the file, :meth:`TestDocuments.data`
its bytes. The kinds:

* ``reportlab`` - one page from reportlab
* ``fpdf2`` - five pages from fpdf2 (a second, independent producer)
* ``form`` - reportlab AcroForm with text field and checkbox
* ``xref-streams`` - the fpdf2 document rewritten by qpdf with object and xref streams
* ``presigned`` - the reportlab document signed (adbe.pkcs7.detached, RSA) under a foreign throwaway CA
* ``encrypted`` - qpdf ``--encrypt`` with a user password
* ``truncated`` - the fpdf2 document cut in half
* ``zero-pages`` - a hand-written PDF whose page tree has ``/Count 0``
* ``not-a-pdf`` - a PNG image
* :meth:`TestDocuments.big` - a one-page PDF with an incompressible embedded file of a given size
"""

from __future__ import annotations

import datetime as dt
import io
import os
import struct
import subprocess
import zlib
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

GOOD_KINDS = ("reportlab", "fpdf2", "form", "xref-streams", "presigned")
BAD_KINDS = ("encrypted", "truncated", "zero-pages", "not-a-pdf")
#: The text drawn on the reportlab page; tests look for it in uncompressed output.
PAGE_TEXT = "Beslut om bygglov"
FOREIGN_SIGNER = "Foreign Tool Signer"


def one_page_pdf(text: str = "Avtal om vårdtjänster mellan Regionen och Vårdgivaren AB") -> bytes:
    """A one-page PDF (reportlab) with one line of text."""
    from reportlab.pdfgen import canvas

    buffer = io.BytesIO()
    page = canvas.Canvas(buffer)
    page.drawString(72, 760, text)
    page.showPage()
    page.save()
    return buffer.getvalue()


def build_pdf(
    objects: Sequence[bytes],
    *,
    root: int = 1,
    trailer: bytes = b"",
    version: bytes = b"1.7",
) -> bytes:
    """A classic-xref PDF of numbered object bodies (object *n* is ``objects[n - 1]``).

    :param trailer: extra trailer entries, e.g. ``b"/Info 5 0 R"``.
    """
    out = io.BytesIO()
    out.write(b"%PDF-" + version + b"\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(
        b"trailer\n<< /Size %d /Root %d 0 R %s>>\nstartxref\n%d\n%%%%EOF\n"
        % (len(objects) + 1, root, trailer + b" " if trailer else b"", xref)
    )
    return out.getvalue()


def _png() -> bytes:
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00\x00"))
        + chunk(b"IEND", b"")
    )


def _foreign_ca_and_signer() -> tuple[x509.Certificate, x509.Certificate, rsa.RSAPrivateKey]:
    """A throwaway CA of "another tool" and an RSA signer certificate valid for a year."""
    now = dt.datetime.now(dt.UTC)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Foreign Tool CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, FOREIGN_SIGNER)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(
            x509.KeyUsage(True, True, False, False, False, False, False, False, False), critical=True
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return ca, cert, key


class TestDocuments:
    """Makes and caches test PDFs in ``directory``.

    :param directory: where generated files are kept for the session.
    """

    __test__ = False  # not a pytest test class despite the name

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        #: The foreign CA certificate the ``presigned`` document chains to (set once made).
        self.foreign_root: x509.Certificate | None = None

    def path(self, kind: str) -> Path:
        """The file of a document kind, generating it on first use."""
        target = self.directory / f"{kind}.{'png' if kind == 'not-a-pdf' else 'pdf'}"
        if not target.exists():
            maker = getattr(self, "_make_" + kind.replace("-", "_"))
            data = maker()
            target.write_bytes(data)
        return target

    def data(self, kind: str) -> bytes:
        """The bytes of a document kind."""
        return self.path(kind).read_bytes()

    def big(self, size: int) -> Path:
        """A valid one-page PDF of about ``size`` bytes, most of it an incompressible attachment.

        :param size: the wanted size in bytes (the result is a few hundred bytes larger).
        """
        target = self.directory / f"big-{size}.pdf"
        if target.exists():
            return target
        page_stream = b"BT /F1 24 Tf 72 720 Td (Large document) Tj ET"
        with open(target, "wb") as out:
            out.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
            offsets = []

            def obj(body: bytes) -> None:
                offsets.append(out.tell())
                out.write(b"%d 0 obj\n" % (len(offsets)) + body + b"\nendobj\n")

            obj(
                b"<< /Type /Catalog /Pages 2 0 R "
                b"/Names << /EmbeddedFiles << /Names [(data.bin) 6 0 R] >> >> >>"
            )
            obj(b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>")
            obj(
                b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
                b"/Resources << /Font << /F1 5 0 R >> >> >>"
            )
            obj(b"<< /Length %d >>\nstream\n" % len(page_stream) + page_stream + b"\nendstream")
            obj(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
            obj(b"<< /Type /Filespec /F (data.bin) /UF (data.bin) /EF << /F 7 0 R >> >>")
            offsets.append(out.tell())
            out.write(b"7 0 obj\n<< /Type /EmbeddedFile /Length %d >>\nstream\n" % size)
            remaining = size
            while remaining:
                # os.urandom is incompressible and fast enough (~1 GB/s) for 100 MB.
                block = os.urandom(min(remaining, 8 * 1024 * 1024))
                out.write(block)
                remaining -= len(block)
            out.write(b"\nendstream\nendobj\n")
            xref = out.tell()
            out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(offsets) + 1))
            for offset in offsets:
                out.write(b"%010d 00000 n \n" % offset)
            out.write(
                b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(offsets) + 1, xref)
            )
        return target

    # -- producers --------------------------------------------------------------

    def _make_reportlab(self) -> bytes:
        from reportlab.pdfgen import canvas

        buffer = io.BytesIO()
        # Uncompressed page content so tampering tests can find and change the text.
        page = canvas.Canvas(buffer, pageCompression=0)
        page.setTitle("Test document (reportlab)")
        page.drawString(72, 720, PAGE_TEXT)
        page.showPage()
        page.save()
        return buffer.getvalue()

    def _make_fpdf2(self) -> bytes:
        from fpdf import FPDF

        pdf = FPDF()
        pdf.set_font("helvetica", size=14)
        for number in range(1, 6):
            pdf.add_page()
            pdf.cell(text=f"Page {number} of the fpdf2 test document")
        return bytes(pdf.output())

    def _make_form(self) -> bytes:
        from reportlab.pdfgen import canvas

        buffer = io.BytesIO()
        page = canvas.Canvas(buffer)
        page.drawString(72, 760, "Application form")
        page.acroForm.textfield(
            name="applicant", value="Tolvan Tolvansson", x=72, y=700, width=300, height=20
        )
        page.acroForm.checkbox(name="consent", checked=True, x=72, y=660, size=16)
        page.showPage()
        page.save()
        return buffer.getvalue()

    def _make_xref_streams(self) -> bytes:
        target = self.directory / "xref-streams.tmp.pdf"
        subprocess.run(
            ["qpdf", "--object-streams=generate", str(self.path("fpdf2")), str(target)], check=True
        )
        data = target.read_bytes()
        target.unlink()
        assert b"/Type /XRef" in data or b"/Type/XRef" in data, "qpdf did not write an xref stream"
        return data

    def _make_presigned(self) -> bytes:
        # endesive 3.0.1 was the plan for a second signing tool, but it fails against the
        # installed pypdf (DictionaryObject.write_to_stream() signature changed) and its
        # verifier needs oscrypto, which cannot read this OpenSSL's version. So the
        # "other tool" is pyHanko used the way other software uses it: an RSA key from a
        # foreign CA, the older adbe.pkcs7.detached format, a visible-less field of its own.
        from asn1crypto import keys as asn1_keys
        from asn1crypto import x509 as asn1_x509
        from cryptography.hazmat.primitives import serialization
        from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
        from pyhanko.sign import fields, signers
        from pyhanko_certvalidator.registry import SimpleCertificateStore

        ca, cert, key = self._foreign()
        der = serialization.Encoding.DER
        signer = signers.SimpleSigner(
            signing_cert=asn1_x509.Certificate.load(cert.public_bytes(der)),
            signing_key=asn1_keys.PrivateKeyInfo.load(
                key.private_bytes(der, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
            ),
            cert_registry=SimpleCertificateStore.from_certs(
                [asn1_x509.Certificate.load(ca.public_bytes(der))]
            ),
        )
        writer = IncrementalPdfFileWriter(io.BytesIO(self.data("reportlab")))
        output = io.BytesIO()
        signers.PdfSigner(
            signers.PdfSignatureMetadata(
                field_name="ForeignSignature",
                subfilter=fields.SigSeedSubFilter.ADOBE_PKCS7_DETACHED,
                reason="Signed by another tool",
                location="Elsewhere",
            ),
            signer=signer,
        ).sign_pdf(writer, output=output)
        return output.getvalue()

    def _foreign(self) -> tuple[x509.Certificate, x509.Certificate, rsa.RSAPrivateKey]:
        ca, cert, key = _foreign_ca_and_signer()
        self.foreign_root = ca
        return ca, cert, key

    def _make_encrypted(self) -> bytes:
        target = self.directory / "encrypted.tmp.pdf"
        subprocess.run(
            [
                "qpdf",
                "--encrypt",
                "user-pw",
                "owner-pw",
                "256",
                "--",
                str(self.path("reportlab")),
                str(target),
            ],
            check=True,
        )
        data = target.read_bytes()
        target.unlink()
        return data

    def _make_truncated(self) -> bytes:
        data = self.data("fpdf2")
        return data[: len(data) // 2]

    def _make_zero_pages(self) -> bytes:
        return build_pdf([b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [] /Count 0 >>"])

    def _make_not_a_pdf(self) -> bytes:
        return _png()
