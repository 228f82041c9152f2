"""OAuth 2.0 Protected Resource Metadata (RFC 9728) for a resource server behind
``AuthorityMiddleware``, as the MCP authorization specification (2025-06-18 and later)
requires of MCP servers.

The document names the resource (the middleware's audience, the RFC 8707 ``resource`` an
agent asks for) and the one authorization server that issues its tokens. It is served
without a token at ``/.well-known/oauth-protected-resource``, and, when the resource
identifier has a path, also at the path-suffixed URL of RFC 9728 §3.1 ("inserting a
well-known URI string into the protected resource's resource identifier between the host
component and the path and/or query components"). Every challenge names it with the
``resource_metadata`` parameter of RFC 9728 §5.1, which is where MCP clients (the
official ``mcp`` SDK's ``extract_resource_metadata_from_www_auth``) look first.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from starlette.types import Scope, Send

from authority.protocol import AGENT_ALGORITHMS, AUTHORIZATION_DETAILS_TYPE

WELL_KNOWN = "/.well-known/oauth-protected-resource"
#: RFC 9396 types the resource server accepts (RFC 9728 §2).
AUTHORIZATION_DETAILS_TYPES = (AUTHORIZATION_DETAILS_TYPE,)
_HEADERS = [
    (b"content-type", b"application/json"),
    (b"cache-control", b"public, max-age=300"),
    # Public metadata: browser-based MCP clients fetch it across origins.
    (b"access-control-allow-origin", b"*"),
]
_NOT_GET = json.dumps(
    {"error": "invalid_request", "error_description": "Use GET for the metadata."}
).encode()


def _quotable(value: str) -> bool:
    """Safe inside an RFC 9110 quoted-string without escaping (and for mcp's parser)."""
    return value.isascii() and value.isprintable() and '"' not in value and "\\" not in value


@dataclass(frozen=True, slots=True)
class ResourceMetadata:
    """The metadata document of one resource and where it is served."""

    document: Mapping[str, Any]
    url: str  # the absolute URL named in WWW-Authenticate (resource_metadata)
    paths: frozenset[str]  # the request paths that serve it

    @classmethod
    def for_resource(cls, resource: str, issuer: str) -> ResourceMetadata | None:
        """The metadata of ``resource``; None if it is not an http(s) URL we can name.

        RFC 9728 §1.2: the resource identifier is a URL "that uses the https scheme and
        has no fragment component" (http is tolerated for loopback development).
        """
        parts = urlsplit(resource)
        if parts.scheme not in ("https", "http") or not parts.netloc or parts.fragment:
            return None
        if not _quotable(resource):
            return None
        # §3.1: "any terminating slash (/) following the host component MUST be removed".
        suffix = parts.path.rstrip("/")
        if parts.query:
            suffix += "?" + parts.query
        document: dict[str, Any] = {
            # §3.3: "The value of the resource metadata parameter MUST be identical to the
            # protected resource's resource identifier value".
            "resource": resource,
            "authorization_servers": [issuer],
            # RFC 6750 §2.1 only: tokens in a form body or a query leak into logs.
            "bearer_methods_supported": ["header"],
            "authorization_details_types_supported": list(AUTHORIZATION_DETAILS_TYPES),
            # RFC 9449 §5.1 / RFC 9728 §2: the proof algorithms the middleware verifies.
            "dpop_signing_alg_values_supported": list(AGENT_ALGORITHMS),
        }
        # dpop_bound_access_tokens_required is left at its default (false): whether a
        # token must be DPoP-bound is decided per tool, at the authority.
        # resource_signing_alg_values_supported is for signed responses: none are signed.
        paths = {WELL_KNOWN, WELL_KNOWN + parts.path.rstrip("/")}
        url = f"{parts.scheme}://{parts.netloc}{WELL_KNOWN}{suffix}"
        return cls(document=document, url=url, paths=frozenset(paths))

    def challenge_parameter(self) -> str:
        """RFC 9728 §5.1: ``resource_metadata="<url>"`` for a WWW-Authenticate challenge."""
        return f'resource_metadata="{self.url}"'

    def serves(self, scope: Scope) -> bool:
        return scope["type"] == "http" and scope["path"] in self.paths

    async def send(self, scope: Scope, send: Send) -> None:
        """The document for GET and HEAD (RFC 9728 §3.1: "using the HTTP GET method"); a
        405 for anything else. No token is needed, and the route need not be declared."""
        method = scope.get("method", "GET")
        if method not in ("GET", "HEAD"):
            headers = [(b"content-type", b"application/json"), (b"allow", b"GET, HEAD")]
            await _respond(send, 405, _NOT_GET, headers, method)
            return
        body = json.dumps(self.document).encode()
        await _respond(send, 200, body, _HEADERS, method)


async def _respond(
    send: Send, status: int, body: bytes, headers: Sequence[tuple[bytes, bytes]], method: str
) -> None:
    all_headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})
