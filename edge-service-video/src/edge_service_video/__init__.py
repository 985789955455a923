"""The video edge service (``gatepass-video``, port 8002): catalogue, upload, delete.

Every route but ``/about`` and the probes needs an access token from the gatepass auth service,
verified locally by the ``gatepass`` library; the catalogue lives in the service's own database.
Build the app with :func:`edge_service_video.app.create_app`.
"""
