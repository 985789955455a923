"""Verify at the door: a route class that checks gatepass's dependencies before FastAPI runs any.

    router = APIRouter(route_class=GatepassRoute)

    @router.get("/inbox")
    async def inbox(user: Annotated[AccessPrincipal, Depends(require_scopes("mail:read"))]): ...

The routes are written exactly as without it, and answer the same. What the route class changes:

- **When** the token is checked: as soon as the route matched, before the body is read and
  before any other dependency runs (a database session, say). An unauthenticated request costs
  nothing more than its refusal, and never learns from a 422 what the route expects.
- **What it costs**: FastAPI resolves every dependency through general machinery (cache keys,
  callable classification, a recursive solve) that costs more per request than a cached verify
  does. The route class takes gatepass's dependencies out of that machinery: per request, one
  check at the door and one dictionary lookup to hand the principal over.

How: when a route is built, it looks for gatepass's dependencies (``Principal``,
``Depends(require_scopes(...))``) among the route's ``dependencies=`` and the endpoint's parameters.
The route-level ones are dropped from what FastAPI resolves; the endpoint is wrapped in one with
the same signature except a ``Request`` in place of each principal parameter (FastAPI hands a
``Request`` over for free), which passes the principal on. The door checks the union of their
scopes. What it does not recognise stays with FastAPI: a gatepass dependency inside another
dependency, or router-level ones, still work the usual way (and reuse the door's principal), and so
does an endpoint it cannot rewrite (a generator, a callable object, a signature it cannot read).

``app.dependency_overrides`` (tests): an override of a hoisted dependency that takes no parameters
is honoured as FastAPI would (its value is what the endpoint gets, and no token is checked);
one with parameters cannot be run outside FastAPI's machinery, and is refused with a clear error.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Coroutine, Sequence
from typing import Annotated, Any, get_args, get_origin

from fastapi import params
from fastapi.routing import APIRoute
from pydantic.fields import FieldInfo
from starlette.requests import Request
from starlette.responses import Response

from gatepass.fastapi import PRINCIPAL_SCOPE_KEY, EdgeAuth, edge_auth, gatepass_scopes

__all__ = ["GatepassRoute"]

_OVERRIDDEN_SCOPE_KEY = "gatepass.overridden"
_REQUEST_PARAMETER = "gatepass_request"

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class _Hoisted:
    """What the door must do for one route: which dependencies it took over, and which scopes."""

    def __init__(self) -> None:
        self.dependencies: list[Callable[..., Any]] = []  # the gatepass callables taken over
        self.parameters: dict[str, Callable[..., Any]] = {}  # endpoint parameter -> its callable
        self.required: set[str] = set()

    def take(self, dependency: Callable[..., Any], scopes: frozenset[str]) -> None:
        self.dependencies.append(dependency)
        self.required |= scopes


class GatepassRoute(APIRoute):
    """An ``APIRoute`` that authenticates at the door (see the module's documentation)."""

    def __init__(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        dependencies: Sequence[params.Depends] | None = None,
        **kwargs: Any,
    ) -> None:
        hoisted = _Hoisted()
        kept = []
        for depends in dependencies or ():
            scopes = _gatepass_dependency(depends)
            if scopes is None:
                kept.append(depends)
            else:
                hoisted.take(scopes[0], scopes[1])
        endpoint = _rewrite_endpoint(endpoint, hoisted)
        # Set before APIRoute.__init__, which builds the handler through get_route_handler().
        self._gatepass: _Hoisted | None = hoisted if hoisted.dependencies else None
        super().__init__(path, endpoint, dependencies=kept, **kwargs)

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()
        hoisted = self._gatepass
        if hoisted is None:
            return handler
        required = frozenset(hoisted.required)
        provider = self.dependency_overrides_provider
        apps: dict[int, tuple[object, EdgeAuth]] = {}  # the app's EdgeAuth, found once per app

        # Written for speed: this runs on every request of the route.
        async def authenticate_then_handle(request: Request) -> Response:
            scope = request.scope
            overrides = getattr(provider, "dependency_overrides", None)
            if overrides and not overrides.keys().isdisjoint(hoisted.dependencies):
                await _run_overrides(request, hoisted, overrides)
                return await handler(request)
            app = scope["app"]
            known = apps.get(id(app))
            if known is None or known[0] is not app:
                known = apps[id(app)] = (app, edge_auth(request))
            auth = known[1]
            principal = auth.cached_principal(scope) or await auth.authenticate(request)
            if not required <= principal.scopes:
                raise auth.insufficient_scope(required)
            scope[PRINCIPAL_SCOPE_KEY] = principal
            return await handler(request)

        return authenticate_then_handle


def _gatepass_dependency(depends: Any) -> tuple[Callable[..., Any], frozenset[str]] | None:
    """``(callable, scopes)`` if ``depends`` is a plain ``Depends`` on a gatepass dependency."""
    if type(depends) is not params.Depends or depends.dependency is None:
        return None  # Security(...) carries OAuth scopes of its own: leave it to FastAPI
    scopes = gatepass_scopes(depends.dependency)
    return None if scopes is None else (depends.dependency, scopes)


def _parameter_dependency(
    parameter: inspect.Parameter,
) -> tuple[Callable[..., Any], frozenset[str]] | None:
    """The gatepass dependency a parameter declares (as FastAPI reads it: the last ``Depends``
    of an ``Annotated``, or a ``Depends`` default), if it declares one."""
    if isinstance(parameter.default, params.Depends):
        return _gatepass_dependency(parameter.default)
    if get_origin(parameter.annotation) is not Annotated:
        return None
    declared = [
        meta
        for meta in get_args(parameter.annotation)[1:]
        if isinstance(meta, params.Depends | FieldInfo)
    ]
    return _gatepass_dependency(declared[-1]) if declared else None


def _rewrite_endpoint(endpoint: Callable[..., Any], hoisted: _Hoisted) -> Callable[..., Any]:
    """``endpoint`` with its principal parameters handed over from the door, or as it was."""
    is_async = inspect.iscoroutinefunction(endpoint)
    if not (is_async or inspect.isfunction(endpoint)) or inspect.isgeneratorfunction(endpoint):
        return endpoint
    try:
        signature = inspect.signature(endpoint, eval_str=True)
    except Exception:  # noqa: BLE001 - unresolvable annotations: FastAPI will say what is wrong
        return endpoint
    kept: list[inspect.Parameter] = []
    found: dict[str, tuple[Callable[..., Any], frozenset[str]]] = {}
    request_name = None
    for parameter in signature.parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            return endpoint
        dependency = _parameter_dependency(parameter)
        if dependency is None:
            if parameter.annotation is Request and request_name is None:
                request_name = parameter.name
            kept.append(parameter)
        else:
            found[parameter.name] = dependency
    if not found:
        return endpoint
    for name, (call, scopes) in found.items():
        hoisted.take(call, scopes)
        hoisted.parameters[name] = call
    added = request_name is None
    if request_name is None:
        request_name = _REQUEST_PARAMETER
        while request_name in signature.parameters:
            request_name += "_"
        kept.append(
            inspect.Parameter(request_name, inspect.Parameter.KEYWORD_ONLY, annotation=Request)
        )
    wrapper = _behind_door(endpoint, is_async, request_name, added=added, names=tuple(found))
    functools.update_wrapper(wrapper, endpoint)
    wrapper.__signature__ = signature.replace(parameters=_ordered(kept))  # type: ignore[attr-defined]
    return wrapper


def _behind_door(
    endpoint: Callable[..., Any],
    is_async: bool,
    request_name: str,
    *,
    added: bool,
    names: tuple[str, ...],
) -> Callable[..., Any]:
    """The endpoint, called with the door's principal as ``names`` (or what overrides gave)."""

    # Both written out, not sharing a helper: one call less on every request.
    if is_async:

        async def endpoint_behind_door(**kwargs: Any) -> Any:
            scope = (kwargs.pop(request_name) if added else kwargs[request_name]).scope
            principal = scope.get(PRINCIPAL_SCOPE_KEY)
            if principal is None:  # overridden (tests): what each parameter's override gave
                kwargs.update(scope[_OVERRIDDEN_SCOPE_KEY])
            else:
                for name in names:
                    kwargs[name] = principal
            return await endpoint(**kwargs)

        return endpoint_behind_door

    def endpoint_behind_door_sync(**kwargs: Any) -> Any:
        scope = (kwargs.pop(request_name) if added else kwargs[request_name]).scope
        principal = scope.get(PRINCIPAL_SCOPE_KEY)
        if principal is None:
            kwargs.update(scope[_OVERRIDDEN_SCOPE_KEY])
        else:
            for name in names:
                kwargs[name] = principal
        return endpoint(**kwargs)

    return endpoint_behind_door_sync


def _ordered(parameters: list[inspect.Parameter]) -> list[inspect.Parameter]:
    """Positional-or-keyword first, then keyword-only: what ``inspect.Signature`` accepts."""
    positional = [p for p in parameters if p.kind is not inspect.Parameter.KEYWORD_ONLY]
    keyword = [p for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY]
    return positional + keyword


async def _run_overrides(request: Request, hoisted: _Hoisted, overrides: dict[Any, Any]) -> None:
    """Tests override gatepass dependencies: give each parameter what FastAPI would have."""
    values: dict[str, Any] = {}
    for dependency in hoisted.dependencies:
        override = overrides.get(dependency)
        if override is None:
            scopes = gatepass_scopes(dependency) or frozenset()
            value: Any = await edge_auth(request).authorize(request, scopes)
        else:
            value = await _call_override(override)
        for name, declared in hoisted.parameters.items():
            if declared is dependency:
                values[name] = value
    request.scope[_OVERRIDDEN_SCOPE_KEY] = values


async def _call_override(override: Callable[..., Any]) -> Any:
    if inspect.signature(override).parameters:
        raise RuntimeError(
            "GatepassRoute checks tokens before FastAPI's dependencies run, so it can only run an "
            "override of a gatepass dependency that takes no parameters; test with a real token "
            "(gatepass.testing.FakeIssuer) or build the app without GatepassRoute"
        )
    value = override()
    return await value if inspect.isawaitable(value) else value
