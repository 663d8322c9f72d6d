"""esign.plone: legally sound electronic signing (PAdES, BankID, SITHS) for Plone."""

import logging

from zope.i18nmessageid import MessageFactory

PACKAGE_NAME = "esign.plone"

_ = MessageFactory(PACKAGE_NAME)

logger = logging.getLogger(PACKAGE_NAME)
