"""@esign-login: a signer session through BankID, for a REST client."""
