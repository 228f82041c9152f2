"""A tool server for the middleware benchmark (``bench/middleware_introspection.py``): one
route without a token (the handler alone) and one declared ``introspect=True``, behind
``AuthorityMiddleware``, configured from the environment:

    BENCH_ISSUER, BENCH_AUDIENCE, BENCH_CLIENT_ID, BENCH_CLIENT_SECRET
"""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from authority.sdk.middleware import AuthorityMiddleware, ToolRoute

TOOL = "github.issues.create"


async def handler(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


inner = Starlette(
    routes=[
        Route("/plain", handler),
        Route("/introspected/{org}/{repo}", handler),
    ]
)
app = AuthorityMiddleware(
    inner,
    issuer=os.environ.get("BENCH_ISSUER", "http://127.0.0.1:1"),
    audience=os.environ.get("BENCH_AUDIENCE", "https://tools.bench.test"),
    routes=[
        ToolRoute(
            "GET",
            "/introspected/{org}/{repo}",
            tool=TOOL,
            action="create",
            resource="{org}/{repo}",
            introspect=True,
        )
    ],
    public=["/plain"],
    client_id=os.environ.get("BENCH_CLIENT_ID"),
    client_secret=os.environ.get("BENCH_CLIENT_SECRET"),
    use_feed=False,
)
