from esign.plone.services.base import ESignService
from esign.plone.workflow import lifecycle


class TickPost(ESignService):
    """``POST <site>/@esign-tick``: expire the cases past their last day, send the due reminders.

    The same work as the ``esign-tick`` console script and the ``@@esign-tick`` view, for a
    scheduler that speaks REST. Idempotent: a second call finds nothing to do. There is no
    ``now`` to pass: the clock of the server decides what is due.
    """

    #: cmf.ManagePortal (Manager), as the ``@@esign-tick`` view: the scheduler's account.
    permission = "Manage portal"

    def reply(self):
        return lifecycle.tick()
