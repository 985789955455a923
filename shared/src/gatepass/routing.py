"""Check the token at the door: a route class that authenticates before FastAPI does any work.

    router = APIRouter(route_class=GatepassRoute)

    @router.get("/inbox")
    async def inbox(user: Annotated[AccessPrincipal, Depends(require_scopes("mail:read"))]): ...

The routes are written exactly as without it, and answer a caller with a good token the same.
Two things change:

- When the token is checked: as soon as the route matched, before FastAPI reads and parses the
  body and before any other dependency runs (a database session, say). An unauthenticated
  request costs nothing more than its refusal, and never learns from a 422 what the route
  expects. A 403 names every scope the route needs, not only those of the first dependency that
  failed; a caller of the wrong kind (``require_user``, ``require_service``) gets its 403
  ``caller_not_allowed`` there too.
- What a request costs. FastAPI resolves each dependency with its general machinery, and for a
  token already verified that costs several times the verification (``./dev bench edge`` shows
  the same route with and without this class, scenarios (b) and (f)). So the endpoint's own
  gatepass parameters are handed the principal the door checked
  (:func:`_given_the_door_principal`) instead of being resolved.

How: ``GatepassRoute`` builds the route on a stand-in for the endpoint, the same function
without its gatepass parameters (``Principal``, ``require_scopes(...)``, ``require_user(...)``,
``require_service(...)``) and with the request instead; it passes the door's principal in their
place. It overrides ``get_route_handler``, FastAPI's extension point for route classes, to check
the union of the scopes of those parameters and of the route's ``dependencies=`` (and the kind
of caller each lets in), and to leave the principal in the request's ASGI scope. Gatepass's
dependencies FastAPI still resolves (in ``dependencies=``, nested in another dependency, or
given to ``include_router``) find it there and verify nothing a second time. The OpenAPI
document is the one FastAPI builds without the route class: gatepass's dependencies add nothing
to it.

``app.dependency_overrides`` (tests): when one of the route's gatepass dependencies is
overridden, the door stands aside. FastAPI resolves what it resolves, overrides included, and
the stand-in has FastAPI's own solver resolve the parameters it took away, the override
included, exactly as without the route class.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import (
    get_dependant,
    get_typed_return_annotation,
    get_typed_signature,
    solve_dependencies,
)
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.routing import get_name

from gatepass.fastapi import PRINCIPAL_SCOPE_KEY, edge_auth, gatepass_caller, gatepass_scopes

__all__ = ["GatepassRoute"]

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class GatepassRoute(APIRoute):
    """An ``APIRoute`` that authenticates at the door (see the module's documentation)."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        # Set before FastAPI builds the route: building it calls get_route_handler.
        self._given: Mapping[Callable[..., Any], frozenset[str]] = {}
        rewritten = _given_the_door_principal(path, endpoint)
        if rewritten is not None:
            kwargs["name"] = kwargs.get("name") or get_name(endpoint)
            endpoint, self._given = rewritten
        super().__init__(path, endpoint, **kwargs)

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()
        checked = {**self._given, **_gatepass_dependencies(self.dependant)}
        if not checked:
            return handler
        required = frozenset[str]().union(*checked.values())
        callers = frozenset(kind for call in checked if (kind := gatepass_caller(call)))

        async def check_at_the_door(request: Request) -> Response:
            if not _overridden(request, checked):
                principal = await edge_auth(request).authorize(request, required, callers)
                request.scope[PRINCIPAL_SCOPE_KEY] = principal
            return await handler(request)

        return check_at_the_door


def _gatepass_dependencies(dependant: Dependant) -> dict[Callable[..., Any], frozenset[str]]:
    """gatepass's dependencies among ``dependant``'s own, each with the scopes it requires."""
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


def _given_the_door_principal(
    path: str, endpoint: Callable[..., Any]
) -> tuple[Callable[..., Any], dict[Callable[..., Any], frozenset[str]]] | None:
    """The endpoint as FastAPI is to see it, and the gatepass dependencies it was given: the
    endpoint without its gatepass parameters, which it fills with the principal the door
    checked, and with the request, from which it takes it.

    ``None`` where there is nothing to take away, or where the endpoint is not a plain
    function (a generator streams its answer; ``*args`` or ``**kwargs`` leave no room for the
    request): FastAPI then resolves the gatepass parameters, which find the door's principal.
    """
    taken = get_dependant(path=path, call=endpoint)  # the parameters, found as FastAPI does
    taken.dependencies = [d for d in taken.dependencies if gatepass_scopes(d.call) is not None]
    names = [d.name for d in taken.dependencies if d.name is not None]
    signature = get_typed_signature(endpoint)
    parameters = signature.parameters
    function = _function_of(endpoint)
    if (
        not names
        or function is None
        or inspect.isgeneratorfunction(function)
        or inspect.isasyncgenfunction(function)
        or any(p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) for p in parameters.values())
    ):
        return None
    own = Dependant(dependencies=taken.dependencies, path=path)
    kept = [p for name, p in parameters.items() if name not in names]
    # The endpoint's own request parameter if it has one (FastAPI fills only one), else ours.
    own_request = next((p.name for p in kept if p.annotation is Request), None)
    request_name = own_request or "gatepass_door_request"
    while own_request is None and request_name in parameters:
        request_name += "_"
    if own_request is None:
        kept.append(
            inspect.Parameter(request_name, inspect.Parameter.KEYWORD_ONLY, annotation=Request)
        )
    is_async = inspect.iscoroutinefunction(function)

    @functools.wraps(endpoint)
    async def stand_in(**values: Any) -> Any:
        request: Request = values[request_name] if own_request else values.pop(request_name)
        principal = request.scope.get(PRINCIPAL_SCOPE_KEY)
        if principal is not None:
            values.update(dict.fromkeys(names, principal))
        else:  # the door stood aside for an override: FastAPI's solver resolves what we took
            values.update(await _solved(request, own))
        if is_async:
            return await endpoint(**values)
        return await run_in_threadpool(endpoint, **values)

    stand_in.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        kept, return_annotation=get_typed_return_annotation(endpoint)
    )
    given = {d.call: gatepass_scopes(d.call) or frozenset() for d in taken.dependencies if d.call}
    return stand_in, given


async def _solved(request: Request, dependant: Dependant) -> dict[str, Any]:
    """``dependant``'s dependencies, resolved by FastAPI for this request, overrides included."""
    solved = await solve_dependencies(
        request=request,
        dependant=dependant,
        dependency_overrides_provider=request.app,
        async_exit_stack=request.scope["fastapi_inner_astack"],
        embed_body_fields=False,
    )
    if solved.errors:
        raise RequestValidationError(solved.errors)
    return solved.values


def _function_of(endpoint: Callable[..., Any]) -> Callable[..., Any] | None:
    """The function a call of ``endpoint`` runs: itself, or an object's ``__call__``; ``None``
    for anything else (a ``functools.partial``, say), which keeps its gatepass parameters."""
    if inspect.isfunction(endpoint) or inspect.ismethod(endpoint):
        return endpoint
    call = getattr(type(endpoint), "__call__", None)  # noqa: B004
    return call if inspect.isfunction(call) else None
