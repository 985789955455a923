"""Alembic environment of the video service: runs on the connection its start-up hands over."""

from edge_service_video.models import Base
from gatepass.alembic_env import run_migrations

run_migrations(Base.metadata)
