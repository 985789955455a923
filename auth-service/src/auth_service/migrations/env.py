"""Alembic environment of the auth service: runs on the connection its start-up (or
``gatepass db upgrade``) hands over."""

from auth_service.models import Base
from gatepass.alembic_env import run_migrations

run_migrations(Base.metadata)
