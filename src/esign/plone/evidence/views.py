"""Download of a case's evidence document."""

from __future__ import annotations

from plone.namedfile.utils import set_headers, stream_data
from Products.Five.browser import BrowserView
from zExceptions import NotFound

from esign.plone.evidence.document import ATTRIBUTE


class EvidenceDownload(BrowserView):
    """The sealed "Signeringsbevis" PDF (View permission, like the signed document)."""

    def __call__(self):
        evidence = getattr(self.context, ATTRIBUTE, None)
        if evidence is None:
            raise NotFound("Inget signeringsbevis ännu.")
        set_headers(evidence, self.request.response, filename=evidence.filename)
        # Names, masked identity numbers and certificate details: no shared cache keeps a copy.
        self.request.response.setHeader("Cache-Control", "private, no-store")
        return stream_data(evidence)
