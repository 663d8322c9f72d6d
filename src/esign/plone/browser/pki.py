"""The site's root certificate, for validators (pdfsig, Adobe) to trust."""

from __future__ import annotations

from Products.Five.browser import BrowserView

from esign.plone.sitepki import site_pki


class RootCertificateDownload(BrowserView):
    def __call__(self) -> bytes:
        pem = site_pki().root_pem()
        response = self.request.response
        response.setHeader("Content-Type", "application/x-pem-file")
        response.setHeader("Content-Disposition", 'attachment; filename="esign-root-ca.pem"')
        return pem
