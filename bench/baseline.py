"""The baseline the load benchmark compares against: a bare Starlette endpoint on the same
server stack (uvicorn, same workers) that only signs one JWT of an access token's size
with a key loaded once, and returns it as JSON. Anything the authority does beyond that
(parsing, verifying, SQL, Redis, the ledger) shows up as the ratio to this.

Run: ``uvicorn bench.baseline:app --workers 2``.
"""

from __future__ import annotations

import time
import uuid

import orjson
from joserfc import jwt
from joserfc.jwk import OKPKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from authority.tokens.jose import registry

KEY = OKPKey.generate_key("Ed25519", parameters={"kid": "baseline"})
REGISTRY = registry(["EdDSA"])
HEADER = {"alg": "EdDSA", "kid": "baseline", "typ": "at+jwt"}


def claims() -> dict[str, object]:
    """Claims of the same shape and size as the authority's access tokens."""
    now = int(time.time())
    return {
        "iss": "http://127.0.0.1:8400",
        "sub": "own_" + uuid.uuid4().hex,
        "aud": "https://tools.example.test",
        "client_id": "agt_" + uuid.uuid4().hex,
        "act": {"sub": "agt_" + uuid.uuid4().hex},
        "iat": now,
        "exp": now + 5,
        "jti": "at_" + uuid.uuid4().hex,
        "delegation_id": "dlg_" + uuid.uuid4().hex,
        "intent": "triage bugs in acme/web",
        "authorization_details": [
            {
                "type": "tool_call",
                "tool": "github.issues.create",
                "resource": "acme/web",
                "action": "create",
                "locations": ["https://tools.example.test"],
            }
        ],
    }


async def sign(request: Request) -> Response:
    await request.body()
    token = jwt.encode(HEADER, claims(), KEY, registry=REGISTRY)
    body = {"access_token": token, "token_type": "Bearer", "expires_in": 5}
    return Response(orjson.dumps(body), media_type="application/json")


async def healthz(request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


app = Starlette(
    routes=[Route("/sign", sign, methods=["POST"]), Route("/healthz", healthz, methods=["GET"])]
)
