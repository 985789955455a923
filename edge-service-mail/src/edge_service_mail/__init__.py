"""The mail edge service (``gatepass-mail``, port 8001): inbox, send, read, delete.

Every route but ``/about`` and the probes needs an access token from the gatepass auth service,
verified locally by the ``gatepass`` library; the messages live in the service's own database.
Build the app with :func:`edge_service_mail.app.create_app`.
"""
