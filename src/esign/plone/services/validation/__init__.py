"""@esign-validation: the signed document's validation report."""
