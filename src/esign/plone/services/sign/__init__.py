"""@esign-sign: a BankID sign order for the logged-in signer."""
