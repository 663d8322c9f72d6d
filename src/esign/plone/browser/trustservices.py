"""The site CA's publication points: TSA, OCSP responder, CRLs and CA certificates.

``<site>/esign-pki/tsa``          POST application/timestamp-query → timestamp-reply (RFC 3161)
``<site>/esign-pki/ocsp``         POST application/ocsp-request, or GET ``/ocsp/<base64>`` (RFC 6960)
``<site>/esign-pki/root-ocsp``    the same for certificates the root signs (the TSA's)
``<site>/esign-pki/issuing.crl``  the issuing CA's CRL (DER)
``<site>/esign-pki/root.crl``     the root CA's CRL (DER)
``<site>/esign-pki/root.crt``, ``issuing.crt``, ``tsa.crt``  the certificates (DER)

Public and read-only: these addresses are written into every certificate the CA
issues, for any validator to use. Each door is a thin wrapper: bytes in, bytes out,
the answers come from :mod:`esign.plone.signing`.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from Products.Five.browser import BrowserView
from zExceptions import NotFound
from zope.interface import implementer
from zope.publisher.interfaces import IPublishTraverse

from esign.plone import logger
from esign.plone.errors import PKIError
from esign.plone.sitepki import site_pki

#: Largest request body a TSA or OCSP request may have (real ones are a few hundred bytes).
MAX_REQUEST = 64 * 1024

_DER = serialization.Encoding.DER


@implementer(IPublishTraverse)
class TrustServices(BrowserView):
    """``esign-pki``: one view, the last path segment names the service."""

    service: str | None = None
    argument: str | None = None

    def publishTraverse(self, request, name):
        if self.service is None:
            self.service = name
        elif self.service in ("ocsp", "root-ocsp"):
            # Base64 may contain "/", which the publisher splits into path segments.
            self.argument = name if self.argument is None else f"{self.argument}/{name}"
        else:
            raise NotFound(name)
        return self

    def __call__(self) -> bytes:
        handler = {
            "tsa": self._tsa,
            "ocsp": self._ocsp,
            "root-ocsp": self._root_ocsp,
            "issuing.crl": self._issuing_crl,
            "root.crl": self._root_crl,
            "root.crt": self._root_certificate,
            "issuing.crt": self._issuing_certificate,
            "tsa.crt": self._tsa_certificate,
        }.get(self.service or "")
        if handler is None:
            raise NotFound(self.service or "esign-pki")
        try:
            return handler()
        except PKIError as exc:
            logger.warning("Trust service %s failed: %s", self.service, exc)
            return self._answer(b"", "text/plain", status=503)

    # -- helpers -------------------------------------------------------------------

    def _answer(self, body: bytes, content_type: str, *, status: int = 200, max_age: int = 0) -> bytes:
        response = self.request.response
        response.setStatus(status)
        response.setHeader("Content-Type", content_type)
        response.setHeader("Cache-Control", f"public, max-age={max_age}" if max_age else "no-store")
        response.setHeader("X-Content-Type-Options", "nosniff")
        return body

    def _body(self) -> bytes | None:
        if self.request.get("REQUEST_METHOD", "GET") != "POST":
            return None
        body = self.request.get("BODY") or b""
        if isinstance(body, str):
            body = body.encode("latin-1")
        return body if 0 < len(body) <= MAX_REQUEST else None

    def _refuse(self, message: str, status: int = 400) -> bytes:
        return self._answer(message.encode(), "text/plain; charset=utf-8", status=status)

    # -- the services --------------------------------------------------------------

    def _tsa(self) -> bytes:
        from esign.plone.signing.tsa import TIMESTAMP_REPLY

        body = self._body()
        if body is None:
            self.request.response.setHeader("Allow", "POST")
            return self._refuse("POST an RFC 3161 timestamp request (application/timestamp-query).", 405)
        pki = site_pki()
        if pki.tsa_certificate is None:
            raise PKIError("The site has no TSA certificate.")
        return self._answer(pki.timestamp_authority().respond(body), TIMESTAMP_REPLY)

    def _root_ocsp(self) -> bytes:
        responder = site_pki().root_ocsp_responder()
        if responder is None:
            raise NotFound("root-ocsp")
        return self._ocsp(responder, "root-ocsp")

    def _ocsp(self, responder=None, name: str = "ocsp") -> bytes:
        from esign.plone.signing.revocation import OCSP_RESPONSE

        responder = responder or site_pki().ocsp_responder()
        if self.argument is not None:
            # The publisher drops empty path segments, and base64 may hold "//": read the
            # whole request path rather than the traversed names.
            path = self.request.get("PATH_INFO", "") or ""
            marker = f"/esign-pki/{name}/"
            encoded = path[path.index(marker) + len(marker) :] if marker in path else self.argument
            return self._answer(responder.respond_to_get(encoded), OCSP_RESPONSE)
        else:
            body = self._body()
            if body is None:
                self.request.response.setHeader("Allow", "GET, POST")
                return self._refuse(
                    "POST an OCSP request (application/ocsp-request) or GET /ocsp/<base64>.", 405
                )
        return self._answer(responder.respond(body), OCSP_RESPONSE)

    def _issuing_crl(self) -> bytes:
        return self._answer(site_pki().issuing_crl(), "application/pkix-crl", max_age=300)

    def _root_crl(self) -> bytes:
        crl = site_pki().root_crl()
        if crl is None:
            raise NotFound("root.crl")
        return self._answer(crl, "application/pkix-crl", max_age=3600)

    def _root_certificate(self) -> bytes:
        return self._answer(
            site_pki().root_certificate.public_bytes(_DER), "application/pkix-cert", max_age=86400
        )

    def _issuing_certificate(self) -> bytes:
        certificate = site_pki().issuing_certificate.public_bytes(_DER)
        return self._answer(certificate, "application/pkix-cert", max_age=86400)

    def _tsa_certificate(self) -> bytes:
        certificate = site_pki().tsa_certificate
        if certificate is None:
            raise NotFound("tsa.crt")
        return self._answer(certificate.public_bytes(_DER), "application/pkix-cert", max_age=86400)
