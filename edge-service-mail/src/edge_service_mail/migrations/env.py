"""Alembic environment of the mail service: runs on the connection its start-up hands over."""

from edge_service_mail.models import Base
from gatepass.alembic_env import run_migrations

run_migrations(Base.metadata)
