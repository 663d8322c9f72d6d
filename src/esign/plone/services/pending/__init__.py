"""@esign-pending: the logged-in signer's pending cases."""
