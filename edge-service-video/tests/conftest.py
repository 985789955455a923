"""Fixtures for the video service's tests: ``video``, the app in-process on a fresh SQLite file,
taking tokens from ``issuer``, an issuer in a box (keys generated per test, never committed)."""

from __future__ import annotations

from edge_service_video.app import create_app
from edge_service_video.config import VideoSettings
from gatepass.edgetest import edge_fixtures

issuer, video = edge_fixtures(create_app, VideoSettings, name="video")
