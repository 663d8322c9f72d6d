"""The REST API of esign.plone, in plone.restapi's conventions.

One folder per endpoint, one module per verb. Every service is a few lines over
the same Python API the Classic UI views use (``esign.plone.api`` and
``workflow.journey``); ``base.ESignService`` maps errors to
``{"error": {"type", "message"}}`` and checks permissions and CSRF.
"""
