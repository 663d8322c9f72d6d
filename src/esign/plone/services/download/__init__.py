"""@esign-download: the signed PDF, to the officer (on the case) or a signer (on the site)."""
