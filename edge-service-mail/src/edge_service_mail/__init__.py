"""The mail edge service (port 8001): inbox, send, read, delete, behind local token verification.

Not built yet: its routes arrive with the edge-verification work; the package exists so the
workspace has its final shape.
"""
