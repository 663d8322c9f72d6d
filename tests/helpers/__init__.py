"""Shared test helpers: real test documents and independent validators (pdfsig, qpdf)."""
