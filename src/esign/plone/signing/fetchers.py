"""Revocation data for pyHanko when it may fetch: the site CA's in process, the rest over HTTP.

With an external TSA, pyHanko has to fetch the status of the TSA's chain, which only its
CA publishes. Once fetching is on, pyHanko asks every certificate's OCSP responder, even
when it was handed a response already — for the site's own certificates that would be
``<site>/esign-pki/ocsp``: a worker thread calling its own server, which waits on its own
thread pool under load and fails where the site cannot reach its public address.
:class:`SiteFetcherBackend` answers for the site CA's certificates from the
:class:`.pki.SitePKI` itself (the same responders and CRLs the site publishes) and hands
everything else to certvalidator's HTTP fetchers. What it answers counts as fetched, so
pyHanko puts it into the DSS like anything it downloaded.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncGenerator, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from asn1crypto import cms, crl, ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pyhanko_certvalidator.authority import Authority
from pyhanko_certvalidator.fetchers import (
    CertificateFetcher,
    CRLFetcher,
    FetcherBackend,
    Fetchers,
    OCSPFetcher,
)
from pyhanko_certvalidator.fetchers.requests_fetchers import RequestsFetcherBackend

from esign.plone.signing.pki import SitePKI
from esign.plone.signing.revocation import key_identifier

__all__ = ["SiteFetcherBackend"]

#: What pyHanko asks revocation data for.
Certificate: TypeAlias = asn1_x509.Certificate | cms.AttributeCertificateV2


def _asn1(certificate: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))


@dataclass(frozen=True)
class _SiteCA:
    """One CA of the site: how it answers, in process, for what it issued."""

    certificate: asn1_x509.Certificate
    key_id: bytes
    #: The OCSP response about a certificate it issued; ``None`` when it has no responder
    #: (no registry; an imported root, whose key the site does not hold).
    ocsp: Callable[[x509.Certificate], bytes | None]
    #: Its current CRL; ``None`` when the site has no key to sign it (an imported root).
    crl: Callable[[], bytes | None]

    def issued(self, certificate: Any) -> bool:
        if not isinstance(certificate, asn1_x509.Certificate) or certificate.self_signed != "no":
            return False
        if certificate.issuer.hashable != self.certificate.subject.hashable:
            return False
        # The same name is not enough: an outside CA may be called the same.
        aki = certificate.authority_key_identifier
        return aki is None or aki == self.key_id


class _Site:
    """The site CA's answers, made in process at ``moment`` (default: now), each when first asked."""

    def __init__(self, pki: SitePKI, *, moment: dt.datetime | None, ocsps: Sequence[bytes]) -> None:
        clock = (lambda: moment) if moment is not None else None

        def issuing_ocsp(certificate: x509.Certificate) -> bytes | None:
            if pki.registry is None:
                return None
            return pki.ocsp_responder(clock=clock).response_for(certificate)

        def root_ocsp(certificate: x509.Certificate) -> bytes | None:
            responder = pki.root_ocsp_responder(clock=clock)
            return responder.response_for(certificate) if responder is not None else None

        self.cas = (
            _SiteCA(
                _asn1(pki.issuing_certificate),
                key_identifier(pki.issuing_certificate),
                issuing_ocsp,
                lambda: pki.issuing_crl(now=moment),
            ),
            _SiteCA(
                _asn1(pki.root_certificate),
                key_identifier(pki.root_certificate),
                root_ocsp,
                lambda: pki.root_crl(now=moment),
            ),
        )
        self.certificates = {c.certificate.subject.hashable: c.certificate for c in self.cas}
        # Responses made already (the one-time certificate's, the site TSA's): given again
        # rather than signed anew, so the DSS holds one answer per certificate.
        self.known: dict[tuple[bytes, int], ocsp.OCSPResponse] = {}
        for der in ocsps:
            response = ocsp.OCSPResponse.load(der)
            if response["response_status"].native != "successful":
                continue
            for single in response.basic_ocsp_response["tbs_response_data"]["responses"]:
                cert_id = single["cert_id"]
                if cert_id["hash_algorithm"]["algorithm"].native == "sha1":
                    key = (cert_id["issuer_key_hash"].native, cert_id["serial_number"].native)
                    self.known[key] = response

    def ca_of(self, certificate: Any) -> _SiteCA | None:
        return next((ca for ca in self.cas if ca.issued(certificate)), None)


class _SiteOCSPFetcher(OCSPFetcher):
    def __init__(self, site: _Site, outside: OCSPFetcher) -> None:
        self._site = site
        self._outside = outside
        self._answers: dict[Any, ocsp.OCSPResponse] = {}

    async def fetch(self, cert: Certificate, authority: Authority) -> ocsp.OCSPResponse:
        key = cert.issuer_serial
        if key in self._answers:
            return self._answers[key]
        ca = self._site.ca_of(cert)
        if ca is not None:
            answer = self._site.known.get((authority.public_key.sha1, cert.serial_number))
            if answer is None:
                der = ca.ocsp(x509.load_der_x509_certificate(cert.dump()))
                answer = ocsp.OCSPResponse.load(der) if der is not None else None
            if answer is not None:
                self._answers[key] = answer
                return answer
        return await self._outside.fetch(cert, authority)

    def fetched_responses(self) -> Iterable[ocsp.OCSPResponse]:
        return [*self._answers.values(), *self._outside.fetched_responses()]

    def fetched_responses_for_cert(self, cert: Certificate) -> Iterable[ocsp.OCSPResponse]:
        answer = self._answers.get(cert.issuer_serial)
        if answer is not None:
            return [answer]
        return self._outside.fetched_responses_for_cert(cert)


class _SiteCRLFetcher(CRLFetcher):
    def __init__(self, site: _Site, outside: CRLFetcher) -> None:
        self._site = site
        self._outside = outside
        self._lists: dict[Any, crl.CertificateList] = {}
        self._by_cert: dict[Any, list[crl.CertificateList]] = {}

    async def fetch(self, cert: Certificate, *, use_deltas: Any = None) -> Iterable[crl.CertificateList]:
        key = cert.issuer_serial
        if key in self._by_cert:
            return self._by_cert[key]
        ca = self._site.ca_of(cert)
        if ca is not None:
            name = ca.certificate.subject.hashable
            if name not in self._lists:
                der = ca.crl()
                if der is not None:
                    self._lists[name] = crl.CertificateList.load(der)
            if name in self._lists:
                self._by_cert[key] = [self._lists[name]]
                return self._by_cert[key]
        return await self._outside.fetch(cert, use_deltas=use_deltas)

    def fetched_crls(self) -> Iterable[crl.CertificateList]:
        return [*self._lists.values(), *self._outside.fetched_crls()]

    def fetched_crls_for_cert(self, cert: Certificate) -> Iterable[crl.CertificateList]:
        # KeyError when nothing was fetched for it yet, as the API wants.
        if cert.issuer_serial in self._by_cert:
            return self._by_cert[cert.issuer_serial]
        return self._outside.fetched_crls_for_cert(cert)


class _SiteCertificateFetcher(CertificateFetcher):
    def __init__(self, site: _Site, outside: CertificateFetcher) -> None:
        self._site = site
        self._outside = outside

    async def fetch_cert_issuers(self, cert: Certificate) -> AsyncGenerator[asn1_x509.Certificate, None]:
        ca = self._site.ca_of(cert)
        if ca is not None:
            yield ca.certificate
            return
        async for issuer in self._outside.fetch_cert_issuers(cert):
            yield issuer

    async def fetch_crl_issuers(self, certificate_list: Any) -> AsyncGenerator[asn1_x509.Certificate, None]:
        issuer = self._site.certificates.get(certificate_list.issuer.hashable)
        if issuer is not None:
            yield issuer
            return
        async for found in self._outside.fetch_crl_issuers(certificate_list):
            yield found

    def fetched_certs(self) -> Iterable[asn1_x509.Certificate]:
        return self._outside.fetched_certs()


class SiteFetcherBackend(FetcherBackend):
    """pyHanko's fetchers, with the site CA's OCSP responses and CRLs made in process.

    Certificates the site's issuing CA or its root issued (one-time certificates, the
    issuing CA, the site TSA) get their status from the :class:`.pki.SitePKI`; any other
    certificate (an external TSA's chain) from its CA over HTTP.

    :param pki: the site PKI (bound to its registry, for OCSP).
    :param moment: the time the answers are made for (default: now).
    :param ocsps: DER OCSP responses made already for site certificates; given instead of
        new ones.
    :param outside: the backend for everything else (default: certvalidator's ``requests``
        backend, which needs no closing).
    :param timeout: seconds per HTTP request of the default outside backend.
    """

    def __init__(
        self,
        pki: SitePKI,
        *,
        moment: dt.datetime | None = None,
        ocsps: Sequence[bytes] = (),
        outside: FetcherBackend | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._pki = pki
        self._moment = moment
        self._ocsps = tuple(ocsps)
        self._outside = outside or RequestsFetcherBackend(per_request_timeout=timeout)

    def get_fetchers(self) -> Fetchers:
        site = _Site(self._pki, moment=self._moment, ocsps=self._ocsps)
        outside = self._outside.get_fetchers()
        return Fetchers(
            ocsp_fetcher=_SiteOCSPFetcher(site, outside.ocsp_fetcher),
            crl_fetcher=_SiteCRLFetcher(site, outside.crl_fetcher),
            cert_fetcher=_SiteCertificateFetcher(site, outside.cert_fetcher),
        )
