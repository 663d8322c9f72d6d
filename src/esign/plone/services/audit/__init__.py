"""@esign-audit: the case's audit trail and whether its hash chain holds."""
