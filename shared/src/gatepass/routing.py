"""Check the token at the door: a route class that authenticates before FastAPI does any work.

    router = APIRouter(route_class=GatepassRoute)

    @router.get("/inbox")
    async def inbox(user: Annotated[AccessPrincipal, Depends(require_scopes("mail:read"))]): ...

The routes are written exactly as without it, and answer a caller with a good token the same.
What changes is when the token is checked: as soon as the route matched, before FastAPI reads and
parses the body and before any other dependency runs (a database session, say). An
unauthenticated request costs nothing more than its refusal, and never learns from a 422 what
the route expects. A 403 names every scope the route needs, not only those of the first
dependency that failed.

How: ``GatepassRoute`` overrides ``get_route_handler``, FastAPI's extension point for route
classes. It reads the route's dependant for gatepass's dependencies (``Principal``,
``require_scopes(...)``) among the endpoint's parameters and the route's ``dependencies=``,
checks the union of their scopes, and leaves the principal in the request's ASGI scope. FastAPI
then resolves every dependency as usual: gatepass's find the principal there (so do those nested
in other dependencies, or given to ``include_router``) and verify nothing a second time. So the
route class buys the order, not speed: a request costs about the same with it as without it.

``app.dependency_overrides`` (tests): when one of the route's gatepass dependencies is
overridden, the door stands aside, and FastAPI resolves everything, the overrides included,
exactly as without the route class.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from gatepass.fastapi import PRINCIPAL_SCOPE_KEY, edge_auth, gatepass_scopes

__all__ = ["GatepassRoute"]

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class GatepassRoute(APIRoute):
    """An ``APIRoute`` that authenticates at the door (see the module's documentation)."""

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()
        checked = _gatepass_dependencies(self.dependant)
        if not checked:
            return handler
        required = frozenset[str]().union(*checked.values())

        async def check_at_the_door(request: Request) -> Response:
            if not _overridden(request, checked):
                principal = await edge_auth(request).authorize(request, required)
                request.scope[PRINCIPAL_SCOPE_KEY] = principal
            return await handler(request)

        return check_at_the_door


def _gatepass_dependencies(dependant: Dependant) -> dict[Callable[..., Any], frozenset[str]]:
    """gatepass's dependencies among the route's own, each with the scopes it requires."""
    found = {}
    for dependency in dependant.dependencies:
        scopes = gatepass_scopes(dependency.call)
        if dependency.call is not None and scopes is not None:
            found[dependency.call] = scopes
    return found


def _overridden(request: Request, dependencies: Mapping[Callable[..., Any], object]) -> bool:
    """Whether the app overrides one of ``dependencies`` (``app.dependency_overrides``)."""
    overrides = getattr(request.app, "dependency_overrides", None)
    return overrides is not None and not overrides.keys().isdisjoint(dependencies)
