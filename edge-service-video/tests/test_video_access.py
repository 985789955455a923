"""Who gets in: the video routes and their scopes, proved by the access tests every edge shares
(tokens and scopes on every route, the public routes, probes, limits: gatepass.edgetest)."""

from __future__ import annotations

from edge_service_video.app import create_app
from edge_service_video.config import VideoSettings
from gatepass.edgetest import EdgeAccessTests, EdgeKit, Route


class TestVideoAccess(EdgeAccessTests):
    kit = EdgeKit(
        create_app,
        VideoSettings,
        audience="video",
        scopes=frozenset({"video:read", "video:upload", "video:delete"}),
        public=("/about",),
        routes=(
            Route("GET", "/videos", "video:read"),
            Route("GET", "/videos/{video_id}", "video:read"),
            Route("POST", "/videos", "video:upload", body={"title": "t"}),
            # A moderator's video:delete, or the owner's video:upload: test_video_delete.py.
            Route("DELETE", "/videos/{video_id}", None),
        ),
    )
