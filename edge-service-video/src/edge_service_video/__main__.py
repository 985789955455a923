"""``gatepass-video`` (or ``python -m edge_service_video``): run the video service."""

from __future__ import annotations

from edge_service_video.app import create_app
from edge_service_video.config import VideoSettings
from gatepass.runner import run_service


def main(argv: list[str] | None = None) -> None:
    run_service(create_app, VideoSettings, prog="gatepass-video", port=8002, argv=argv)


if __name__ == "__main__":
    main()
