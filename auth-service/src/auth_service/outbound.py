"""The TLS context of the auth service's outbound calls: a registered client's ``jwks_uri``, and
the web page's calls to other services.

Made once per process and shared by every client: loading the CA certificates takes about 50 ms,
which each new ``httpx.AsyncClient`` would otherwise pay again, at every start of the service and
at every call the page makes. httpx's own defaults (certifi, or ``SSL_CERT_FILE`` and
``SSL_CERT_DIR`` when set), verification on.
"""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def tls_context() -> ssl.SSLContext:
    return httpx.create_ssl_context()
