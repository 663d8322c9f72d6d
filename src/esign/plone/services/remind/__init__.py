"""@esign-remind: mail pending signers a fresh link."""
