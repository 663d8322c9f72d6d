"""Mail to signers and officers: built here, queued in Plone's MailHost, sent after commit."""

from esign.plone.notify.mail import (
    MailSettings,
    configure_mailhost,
    ensure_queue_processor,
    send_completed,
    send_copy,
    send_declined,
    send_invitation,
    send_officer_completed,
    stop_queue_processor,
)

__all__ = [
    "MailSettings",
    "configure_mailhost",
    "ensure_queue_processor",
    "send_completed",
    "send_copy",
    "send_declined",
    "send_invitation",
    "send_officer_completed",
    "stop_queue_processor",
]
