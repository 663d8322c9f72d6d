"""@esign-status: a case's state and signers."""
