"""The evidence document ("Signeringsbevis") a completed case gets, sealed by the site."""

from esign.plone.evidence.document import create_evidence

__all__ = ["create_evidence"]
