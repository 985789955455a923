"""The video edge service (port 8002): catalogue, watch, upload, delete, behind local verification.

Not built yet: its routes arrive with the edge-verification work; the package exists so the
workspace has its final shape.
"""
