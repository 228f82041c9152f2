"""``build_gateway(settings)``: the one place where the gateway's parts are chosen and wired.

Each upstream gets its own ``TokenGate`` (its audience ``<public_url>/u/<name>``, its own
feed and introspection credentials), its credential and its handler; all share one HTTP
client towards the authority and one towards the upstreams. The three seams of
``gateway.contracts`` are passed in (``seams``) or built from the configuration's
``masking``, ``blocking`` and ``recording`` tables by ``build_seams``: the masking
policy, the command rules and one ``AuthorityRecorder`` per upstream.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import httpx2

from authority.gateway.app import Gateway, Handler
from authority.gateway.calls import RecorderState, Seams, Upstream
from authority.gateway.config import SESSION_ACTION, GatewayConfigError, GatewaySettings
from authority.gateway.config import Upstream as UpstreamConfig
from authority.gateway.contracts import CallRecord, RecorderUnavailable
from authority.gateway.credentials import UpstreamCredential
from authority.gateway.http_upstream import HttpUpstream
from authority.gateway.mcp_upstream import McpUpstream
from authority.gateway.recorder import AuthorityRecorder, RecorderBounds
from authority.gateway.sessions import SessionBinding
from authority.sdk.enforcement import TokenGate
from authority.sdk.resource_metadata import WELL_KNOWN, ResourceMetadata

#: The RFC 9728 §2 extension member that tells clients (``authority.sdk.mcp``) which
#: per-call token each request needs: see docs/gateway.md.
CALLS_MEMBER = "authority_calls"


class UpstreamRecorders:
    """One ``AuthorityRecorder`` per upstream: each submits its calls with that upstream's
    own registration, since the authority takes a call's record only from the resource
    server its token was for (``recordings.submit``)."""

    def __init__(self, by_upstream: Mapping[str, AuthorityRecorder]) -> None:
        self._by_upstream = dict(by_upstream)

    def available(self) -> bool:
        """Every upstream's recorder would keep a call (they all post to one authority)."""
        return all(recorder.available() for recorder in self._by_upstream.values())

    async def record(self, call: CallRecord) -> None:
        recorder = self._by_upstream.get(call.upstream)
        if recorder is None:
            raise RecorderUnavailable("no recorder for this upstream")
        await recorder.record(call)

    def start(self) -> None:
        for recorder in self._by_upstream.values():
            recorder.start()

    async def flush(self) -> None:
        for recorder in self._by_upstream.values():
            await recorder.flush()

    async def close(self) -> None:
        for recorder in self._by_upstream.values():
            await recorder.close()


def build_recorder(settings: GatewaySettings) -> UpstreamRecorders:
    """The recorder of the ``recording`` table: its members are ``RecorderBounds``'s
    (``queue_size``, ``max_outage``, ``workers``, ``timeout``, ...); ``{}`` is every default."""
    table = settings.recording or {}
    known = {f.name for f in dataclasses.fields(RecorderBounds)}
    unknown = sorted(set(table) - known)
    if unknown:
        raise GatewayConfigError("recording: unknown member " + ", ".join(unknown))
    try:
        bounds = RecorderBounds(**table)
        return UpstreamRecorders(
            {
                u.name: AuthorityRecorder(
                    settings.issuer,
                    client_id=u.client_id,
                    client_secret=u.client_secret.read().get_secret_value(),
                    bounds=bounds,
                )
                for u in settings.upstreams
            }
        )
    except (TypeError, ValueError) as exc:
        raise GatewayConfigError(f"recording: {exc}") from None


def build_seams(settings: GatewaySettings) -> Seams:
    """The masking policy, command rules and recorder the configuration's ``masking``,
    ``blocking`` and ``recording`` tables name (``gateway.masking``, ``gateway.blocking``,
    ``gateway.recorder``); a table left out is no seam."""
    from authority.gateway import blocking, masking

    try:
        return Seams(
            masking=masking.policy_from_config(settings.masking)
            if settings.masking is not None
            else None,
            commands=blocking.policy_from_config(settings.blocking)
            if settings.blocking is not None
            else None,
            recorder=build_recorder(settings) if settings.recording is not None else None,
        )
    except ValueError as exc:  # MaskingConfigError, BlockingConfigError
        raise GatewayConfigError(str(exc)) from None


def calls_document(config: UpstreamConfig) -> dict[str, Any]:
    """What each request to this upstream needs a token for (the metadata extension)."""
    if config.kind == "http":
        return {
            "kind": "http",
            "routes": [
                {
                    "method": r.method.upper(),
                    "path": r.path,
                    "tool": r.tool,
                    "resource": r.resource,
                    "action": r.action,
                    "bind_arguments": r.bind_arguments,
                }
                for r in config.routes
            ],
        }

    def table(calls: dict[str, Any]) -> dict[str, Any]:
        return {
            name: {"tool": c.tool, "resource": c.resource, "action": c.action}
            for name, c in calls.items()
        }

    return {
        "kind": "mcp",
        "session": {"tool": config.session, "resource": config.name, "action": SESSION_ACTION},
        "tools": table(config.tools),
        "prompts": table(config.prompts),
        "resources": table(config.resources),
    }


def _metadata(settings: GatewaySettings, config: UpstreamConfig) -> ResourceMetadata:
    audience = settings.audience(config)
    base = ResourceMetadata.for_resource(audience, settings.issuer)
    if base is None:
        raise GatewayConfigError(f"upstream {config.name}: {audience} is no resource URL")
    document = {**base.document, CALLS_MEMBER: calls_document(config)}
    # Only the path-suffixed document (RFC 9728 §3.1): the bare well-known URL would be
    # ambiguous between upstreams.
    paths = frozenset({WELL_KNOWN + config.mount})
    return dataclasses.replace(base, document=document, paths=paths)


def build_gateway(
    settings: GatewaySettings,
    *,
    seams: Seams | None = None,
    authority_http: httpx.AsyncClient | None = None,
    upstream_http: httpx2.AsyncClient | None = None,
    clock: Callable[[], float] | None = None,
) -> Gateway:
    """The gateway for ``settings``; ``GatewayConfigError`` if it cannot be built."""
    seams = seams if seams is not None else build_seams(settings)
    owned: list[httpx.AsyncClient | httpx2.AsyncClient] = []
    if authority_http is None:
        authority_http = httpx.AsyncClient(timeout=settings.authority_timeout)
        owned.append(authority_http)
    if upstream_http is None:
        # httpx2 (the maintained line of httpx) towards the upstreams: its connection
        # pool costs half the CPU per forwarded request of httpx's (bench/README.md).
        timeout = httpx2.Timeout(settings.upstream_timeout, read=settings.upstream_read_timeout)
        limits = httpx2.Limits(max_connections=1000, max_keepalive_connections=100)
        upstream_http = httpx2.AsyncClient(timeout=timeout, limits=limits, trust_env=False)
        owned.append(upstream_http)
    recording = RecorderState(seams.recorder)
    try:
        key = settings.session_key.read().get_secret_value() if settings.session_key else None
    except ValueError as exc:
        raise GatewayConfigError(f"session_key: {exc}") from None
    sessions = SessionBinding(key.encode() if key else None)
    handlers: list[Handler] = []
    for config in settings.upstreams:
        try:
            secret = config.client_secret.read().get_secret_value()
            credential = UpstreamCredential(config.credential, upstream_http)
        except ValueError as exc:
            raise GatewayConfigError(f"upstream {config.name}: {exc}") from None
        gate = TokenGate(
            issuer=settings.issuer,
            audience=settings.audience(config),
            http=authority_http,
            client_id=config.client_id,
            client_secret=secret,
            leeway=settings.leeway,
            clock=clock,
            feed_max_silence=settings.feed_max_silence,
            unavailable_status=503,
            persistent=authority_http in owned,
        )
        upstream = Upstream(
            config=config,
            settings=settings,
            gate=gate,
            metadata=_metadata(settings, config),
            credential=credential,
            http=upstream_http,
            seams=seams,
            recording=recording,
            sessions=sessions,
        )
        handlers.append(HttpUpstream(upstream) if config.kind == "http" else McpUpstream(upstream))
    return Gateway(handlers, clients=owned, recorder=seams.recorder)
