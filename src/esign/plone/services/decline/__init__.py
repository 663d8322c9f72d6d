"""@esign-decline: the logged-in signer declines, with a reason."""
