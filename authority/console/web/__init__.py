"""The console's HTTP edge: its pages under ``/console``, and its ``/v1`` routes.

The one place in ``authority.console`` that sees Starlette; the rules it calls are in
``authority.console`` and the flows of the management layer.
"""

from __future__ import annotations

from starlette.routing import BaseRoute, Mount, Route

from . import admin, api, auditor, auth, grants, owner


def routes() -> list[BaseRoute]:
    return [
        *api.routes,
        Route("/console", auth.home, methods=["GET"]),
        Mount(
            "/console",
            routes=[*auth.routes, *owner.routes, *grants.routes, *auditor.routes, *admin.routes],
        ),
    ]
