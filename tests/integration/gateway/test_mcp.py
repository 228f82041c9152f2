"""An unmodified MCP client (the official ``mcp`` package) with the SDK's auth, through the
gateway, to an ``MCPServer`` over Streamable HTTP."""

from __future__ import annotations

import inspect
import json
from typing import Any

import httpx
import pytest
from mcp.shared.exceptions import MCPError

from authority.gateway.app import Gateway
from authority.sdk.agent import AgentClient, AuthorityClientError
from authority.sdk.arguments import digest
from tests.integration.gateway.conftest import Stack
from tests.integration.gateway.fakes import MASK
from tests.integration.gateway.upstreams import MCP_CREDENTIAL

#: The exchange binds a call's arguments (``AgentClient.token(arguments=...)``).
BINDS_ARGUMENTS = "arguments" in inspect.signature(AgentClient.token).parameters
needs_arguments = pytest.mark.skipif(
    not BINDS_ARGUMENTS, reason="the exchange does not bind arguments in this build"
)
MODERN = {"MCP-Protocol-Version": "2026-07-28"}
ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def _meta() -> dict[str, Any]:
    return {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    }


async def token(stack: Stack, tool: str, resource: str, action: str, **kw: Any) -> str:
    assert stack.agent is not None
    issued = await stack.agent.token(tool, resource, action, audience=stack.mcp_url, **kw)
    return issued.value


async def post(stack: Stack, body: Any, value: str | None, **headers: str) -> httpx.Response:
    return await send(stack, body, value, {**MODERN, **headers})


async def send(
    stack: Stack, body: Any, value: str | None, headers: dict[str, str]
) -> httpx.Response:
    all_headers = {**ACCEPT, **headers}
    if value is not None:
        all_headers["Authorization"] = f"Bearer {value}"
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.post(stack.mcp_url, content=json.dumps(body), headers=all_headers)


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_lists_show_only_what_the_delegation_covers(
    stack: Stack, gateway: Gateway, mode: str
) -> None:
    async with stack.mcp(mode=mode) as client:
        listed = {tool.name for tool in (await client.list_tools()).tools}
    # delete_repo is mapped but not delegated; unmapped is declared nowhere.
    assert listed == {"create_issue", "read_config", "run_job", "shell", "echo_headers", "deploy"}
    assert stack.mcp_seen.calls("tools/list")  # the upstream listed everything
    assert all(
        a.headers["authorization"] == f"Bearer {MCP_CREDENTIAL}" for a in stack.mcp_seen.arrivals
    )
    if mode == "legacy":
        methods = [a.method for a in stack.mcp_seen.arrivals]
        assert "DELETE" in methods  # the session ended through the gateway


async def test_a_batch_and_an_unknown_method_are_refused_and_never_forwarded(
    stack: Stack, gateway: Gateway
) -> None:
    session = await token(stack, "mcp.session.tracker", "tracker", "connect")
    batch = [{"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": _meta()}}]
    refused = await post(stack, batch, session)
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == -32600
    unknown = {"jsonrpc": "2.0", "id": 7, "method": "tasks/run", "params": {"_meta": _meta()}}
    response = await post(stack, unknown, session, **{"Mcp-Method": "tasks/run"})
    assert response.status_code == 404
    assert response.json() == {
        "jsonrpc": "2.0",
        "id": 7,
        "error": {"code": -32601, "message": "Method not found."},
    }
    garbage = await post(stack, "not json{", session)
    assert garbage.status_code == 400
    assert stack.mcp_seen.arrivals == []
    assert [r.outcome for r in stack.recorder.calls] == ["refused", "refused", "refused"]


async def test_no_token_is_a_challenge_naming_the_metadata(stack: Stack, gateway: Gateway) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": _meta()}}
    response = await post(stack, body, None, **{"Mcp-Method": "tools/list"})
    assert response.status_code == 401
    metadata_url = f"{stack.public_url}/.well-known/oauth-protected-resource/u/tracker"
    assert f'resource_metadata="{metadata_url}"' in response.headers["www-authenticate"]
    assert response.json()["id"] == 1
    async with httpx.AsyncClient() as http:
        document = (await http.get(metadata_url)).json()
    assert document["resource"] == stack.mcp_url
    assert document["authorization_servers"] == [stack.issuer]
    assert document["authority_calls"]["tools"]["create_issue"] == {
        "tool": "tracker.issues.create",
        "resource": "{repo}",
        "action": "create",
    }
    assert stack.mcp_seen.arrivals == []


async def test_a_routing_header_that_disagrees_with_the_body_is_refused(
    stack: Stack, gateway: Gateway
) -> None:
    session = await token(stack, "mcp.session.tracker", "tracker", "connect")
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": _meta()}}
    response = await post(stack, body, session, **{"Mcp-Method": "tools/call"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32020
    call = {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tools/call",
        "params": {"name": "create_issue", "arguments": {"repo": "acme/web"}, "_meta": _meta()},
    }
    headers = {**ACCEPT, **MODERN, "Mcp-Method": "tools/call", "Authorization": f"Bearer {session}"}
    async with httpx.AsyncClient(timeout=10) as http:
        # A base64 form whose payload is not ASCII: no match, and no error either.
        odd = await http.post(
            stack.mcp_url,
            content=json.dumps(call),
            headers=[
                *((k.encode(), v.encode()) for k, v in headers.items()),
                (b"Mcp-Name", b"=?base64?\xe9?="),
            ],
        )
    assert odd.status_code == 400
    assert odd.json()["error"]["code"] == -32020
    assert stack.mcp_seen.arrivals == []


async def test_a_session_token_calls_no_tool(stack: Stack, gateway: Gateway) -> None:
    session = await token(stack, "mcp.session.tracker", "tracker", "connect")
    call = {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tools/call",
        "params": {
            "name": "create_issue",
            "arguments": {"repo": "acme/web", "title": "x"},
            "_meta": _meta(),
        },
    }
    response = await post(
        stack, call, session, **{"Mcp-Method": "tools/call", "Mcp-Name": "create_issue"}
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == -32011
    assert stack.mcp_seen.arrivals == []


async def test_a_call_token_opens_no_session(stack: Stack, gateway: Gateway) -> None:
    value = await token(
        stack, "tracker.issues.create", "acme/web", "create", arguments={"repo": "acme/web"}
    )
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": _meta()}}
    response = await post(stack, body, value, **{"Mcp-Method": "tools/list"})
    assert response.status_code == 403
    assert stack.mcp_seen.arrivals == []


# --- calls: the token binds the call's arguments ----------------------------------------
@needs_arguments
async def test_a_permitted_call_runs_with_the_upstream_credential_only(
    stack: Stack, gateway: Gateway
) -> None:
    async with stack.mcp() as client:
        result = await client.call_tool("create_issue", {"repo": "acme/web", "title": "Crash"})
    assert result.content[0].text == "created acme/web: Crash"  # type: ignore[union-attr]
    arrived = stack.mcp_seen.calls("tools/call")
    assert [m["params"]["arguments"] for m in arrived] == [{"repo": "acme/web", "title": "Crash"}]
    # On the wire: the upstream saw its own credential, never the agent's token.
    assert set(stack.upstream_tokens()) == {f"Bearer {MCP_CREDENTIAL}"}
    forwarded = [r for r in stack.recorder.calls if r.method == "tools/call"]
    assert forwarded[0].outcome == "forwarded"
    assert forwarded[0].tool == "tracker.issues.create"
    assert forwarded[0].resource == "acme/web"


@needs_arguments
async def test_a_call_outside_the_delegation_gets_no_token(stack: Stack, gateway: Gateway) -> None:
    with pytest.raises(AuthorityClientError) as refused:
        await token(
            stack, "tracker.repos.delete", "acme/web", "delete", arguments={"repo": "acme/web"}
        )
    assert refused.value.error == "invalid_scope"
    # A token for another call does not open this one either.
    other = await token(
        stack, "tracker.issues.create", "acme/web", "create", arguments={"repo": "acme/web"}
    )
    call = {
        "jsonrpc": "2.0",
        "id": 3,
        "method": "tools/call",
        "params": {"name": "delete_repo", "arguments": {"repo": "acme/web"}, "_meta": _meta()},
    }
    response = await post(
        stack, call, other, **{"Mcp-Method": "tools/call", "Mcp-Name": "delete_repo"}
    )
    assert response.status_code == 403
    assert stack.mcp_seen.calls("tools/call") == []


@needs_arguments
async def test_changed_arguments_are_refused(stack: Stack, gateway: Gateway) -> None:
    asked = {"repo": "acme/web", "title": "Crash"}
    value = await token(stack, "tracker.issues.create", "acme/web", "create", arguments=asked)
    changed = {"repo": "acme/web", "title": "Crash; and close all the others"}
    call = {
        "jsonrpc": "2.0",
        "id": 4,
        "method": "tools/call",
        "params": {"name": "create_issue", "arguments": changed, "_meta": _meta()},
    }
    response = await post(
        stack, call, value, **{"Mcp-Method": "tools/call", "Mcp-Name": "create_issue"}
    )
    assert response.status_code == 403
    assert "other arguments" in response.json()["error"]["message"]
    assert digest(asked) != digest(changed)
    assert stack.mcp_seen.calls("tools/call") == []


@needs_arguments
async def test_a_revocation_between_two_calls_stops_the_second(
    stack: Stack, gateway: Gateway
) -> None:
    arguments = {"repo": "acme/web", "title": "Second"}
    early = await token(stack, "tracker.issues.create", "acme/web", "create", arguments=arguments)
    async with stack.mcp() as client:
        first = await client.call_tool("create_issue", {"repo": "acme/web", "title": "First"})
        assert not first.is_error
        world = stack.world
        revoked = await world.client.post(
            f"/v1/delegations/{world.delegation_id}/revoke", headers=world.auth(world.owner_key)
        )
        assert revoked.status_code == 200
        feed = gateway.upstream("tracker").gate.feed
        assert feed is not None
        for _ in range(100):
            if feed.revoked.delegations:
                break
            await asyncio_sleep(0.05)
    call = {
        "jsonrpc": "2.0",
        "id": 5,
        "method": "tools/call",
        "params": {"name": "create_issue", "arguments": arguments, "_meta": _meta()},
    }
    response = await post(
        stack, call, early, **{"Mcp-Method": "tools/call", "Mcp-Name": "create_issue"}
    )
    assert response.status_code == 401
    titles = [m["params"]["arguments"]["title"] for m in stack.mcp_seen.calls("tools/call")]
    assert titles == ["First"]


@needs_arguments
async def test_a_masked_answer(stack: Stack, gateway: Gateway) -> None:
    async with stack.mcp() as client:
        result = await client.call_tool("read_config", {"name": "db"})
    assert result.content[0].text == f"db = {MASK}"  # type: ignore[union-attr]
    record = next(r for r in stack.recorder.calls if r.method == "tools/call")
    assert record.masked == {"secret-mark": 2}  # the text and the structured result


@needs_arguments
async def test_a_blocked_command_never_reaches_the_upstream(stack: Stack, gateway: Gateway) -> None:
    arguments = {"command": "rm -rf /"}
    value = await token(stack, "tracker.shell", "host", "exec", arguments=arguments)
    call = {
        "jsonrpc": "2.0",
        "id": 6,
        "method": "tools/call",
        "params": {"name": "shell", "arguments": arguments, "_meta": _meta()},
    }
    response = await post(stack, call, value, **{"Mcp-Method": "tools/call", "Mcp-Name": "shell"})
    assert response.status_code == 403
    assert stack.mcp_seen.calls("tools/call") == []
    record = stack.recorder.calls[-1]
    assert (record.outcome, record.blocked_by) == ("blocked", "no-recursive-delete")


@needs_arguments
@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_an_event_streamed_result(stack: Stack, gateway: Gateway, mode: str) -> None:
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    async with stack.mcp(mode=mode) as client:
        result = await client.call_tool("run_job", {"steps": 3}, progress_callback=on_progress)
    assert result.content[0].text == "ran 3 steps"  # type: ignore[union-attr]
    assert seen == [0, 1, 2]


@needs_arguments
async def test_the_agent_never_sees_the_upstream_credential(stack: Stack, gateway: Gateway) -> None:
    async with stack.mcp() as client:
        result = await client.call_tool("echo_headers", {})
    text = result.content[0].text  # type: ignore[union-attr]
    assert MCP_CREDENTIAL not in text
    assert "[redacted]" in text


@needs_arguments
async def test_an_unmapped_tool_cannot_be_called(stack: Stack, gateway: Gateway) -> None:
    async with stack.mcp() as client:
        with pytest.raises(MCPError):
            await client.call_tool("unmapped", {"x": 1})
    assert stack.mcp_seen.calls("tools/call") == []


async def asyncio_sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


async def test_a_call_awaiting_approval_raises_approval_pending_then_runs(
    stack: Stack, gateway: Gateway
) -> None:
    from authority.sdk import ApprovalPending
    from authority.sdk.mcp import GatewayAuth, pending_approval

    assert stack.agent is not None
    auth = GatewayAuth(stack.agent)
    pending: ApprovalPending | None = None
    try:
        try:
            async with stack.mcp(auth=auth) as client:
                await client.call_tool("deploy", {"env": "prod"})
        except* ApprovalPending as raised:
            pending = pending_approval(raised)
        assert pending is not None
        assert stack.mcp_seen.calls("tools/call") == []
        world = stack.world
        listed = await world.client.get("/v1/approvals", headers=world.auth(world.owner_key))
        (approval,) = listed.json()["items"]
        approved = await world.client.post(
            f"/v1/approvals/{approval['id']}/approve", headers=world.auth(world.owner_key)
        )
        assert approved.status_code == 200, approved.text
        auth.provide(await stack.agent.wait_for_approval(pending))
        async with stack.mcp(auth=auth) as client:
            result = await client.call_tool("deploy", {"env": "prod"})
        assert result.content[0].text == "deployed to prod"  # type: ignore[union-attr]
    finally:
        await auth.aclose()


async def test_a_prepared_call_raises_approval_pending_plainly_then_runs(
    stack: Stack, gateway: Gateway
) -> None:
    """``prepare_tool_call`` gets the token before the MCP client runs: the approval is
    asked for by the SDK's own call, not from inside the client's task group."""
    from authority.sdk import ApprovalPending
    from authority.sdk.mcp import GatewayAuth

    assert stack.agent is not None
    auth = GatewayAuth(stack.agent)
    try:
        with pytest.raises(ApprovalPending) as pending:
            await auth.prepare_tool_call(stack.mcp_url, "deploy", {"env": "prod"})
        assert stack.mcp_seen.calls("tools/call") == []
        with pytest.raises(LookupError):
            await auth.prepare_tool_call(stack.mcp_url, "unmapped", {})
        world = stack.world
        listed = await world.client.get("/v1/approvals", headers=world.auth(world.owner_key))
        (approval,) = listed.json()["items"]
        approved = await world.client.post(
            f"/v1/approvals/{approval['id']}/approve", headers=world.auth(world.owner_key)
        )
        assert approved.status_code == 200, approved.text
        auth.provide(await stack.agent.wait_for_approval(pending.value))
        async with stack.mcp(auth=auth) as client:
            result = await client.call_tool("deploy", {"env": "prod"})
        assert result.content[0].text == "deployed to prod"  # type: ignore[union-attr]
    finally:
        await auth.aclose()


async def test_a_handshake_session_is_bound_to_the_delegation_that_opened_it(
    stack: Stack, gateway: Gateway
) -> None:
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "probe", "version": "1"},
        },
    }
    legacy = {"MCP-Protocol-Version": "2025-11-25"}
    session = await token(stack, "mcp.session.tracker", "tracker", "connect")
    opened = await send(stack, initialize, session, {})  # the handshake names no version
    assert opened.status_code == 200, opened.text
    wrapped = opened.headers["mcp-session-id"]
    assert "." in wrapped  # the upstream's id, bound to this delegation
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    mine = await token(stack, "mcp.session.tracker", "tracker", "connect")
    ok = await post(stack, listing, mine, **legacy, **{"Mcp-Session-Id": wrapped})
    assert ok.status_code == 200
    arrived = len(stack.mcp_seen.arrivals)
    # Another delegation (a new one of the same agent) cannot ride the session...
    await stack.delegate()
    other = await token(stack, "mcp.session.tracker", "tracker", "connect")
    refused = await post(stack, listing, other, **legacy, **{"Mcp-Session-Id": wrapped})
    assert refused.status_code == 404
    # ...nor anyone name the upstream's own id.
    raw_id = wrapped.rpartition(".")[0]
    bare = await post(stack, listing, other, **legacy, **{"Mcp-Session-Id": raw_id})
    assert bare.status_code == 404
    assert len(stack.mcp_seen.arrivals) == arrived
    forwarded = stack.mcp_seen.arrivals[1].headers["mcp-session-id"]
    assert forwarded == raw_id  # the upstream saw its own id


async def test_dpop_bound_tokens_through_an_unmodified_client(
    stack: Stack, gateway: Gateway
) -> None:
    from tests.integration.gateway.conftest import agent_client

    agent = agent_client(stack.world, stack.issuer, dpop=True)
    try:
        async with stack.mcp(agent=agent) as client:
            result = await client.call_tool("create_issue", {"repo": "acme/web", "title": "DPoP"})
        assert result.content[0].text == "created acme/web: DPoP"  # type: ignore[union-attr]
        arrived = stack.mcp_seen.calls("tools/call")[0]
        assert arrived["params"]["arguments"]["title"] == "DPoP"
        # No proof travels upstream, and the token was bound: a copy without one is refused.
        assert all("dpop" not in a.headers for a in stack.mcp_seen.arrivals)
        issued = await agent.token(
            "tracker.issues.create",
            "acme/web",
            "create",
            audience=stack.mcp_url,
            arguments={"repo": "acme/web", "title": "again"},
        )
        assert issued.token_type == "DPoP"
        call = {
            "jsonrpc": "2.0",
            "id": 9,
            "method": "tools/call",
            "params": {
                "name": "create_issue",
                "arguments": {"repo": "acme/web", "title": "again"},
                "_meta": _meta(),
            },
        }
        stolen = await post(stack, call, issued.value, **{"Mcp-Method": "tools/call"})
        assert stolen.status_code == 401
    finally:
        await agent.aclose()


async def test_a_repeated_routing_header_is_refused(stack: Stack, gateway: Gateway) -> None:
    asked = {"repo": "acme/web", "title": "Crash"}
    value = await token(stack, "tracker.issues.create", "acme/web", "create", arguments=asked)
    call = {
        "jsonrpc": "2.0",
        "id": 9,
        "method": "tools/call",
        "params": {"name": "create_issue", "arguments": asked, "_meta": _meta()},
    }
    headers = {**ACCEPT, **MODERN, "Mcp-Method": "tools/call", "Authorization": f"Bearer {value}"}
    async with httpx.AsyncClient(timeout=10) as http:
        # An upstream that routes on the first copy would run another tool than the checked one.
        response = await http.post(
            stack.mcp_url,
            content=json.dumps(call),
            headers=[
                *((k.encode(), v.encode()) for k, v in headers.items()),
                (b"Mcp-Name", b"delete_all"),
                (b"Mcp-Name", b"create_issue"),
            ],
        )
    assert response.status_code == 400
    assert stack.mcp_seen.arrivals == []


async def test_a_message_that_repeats_a_member_is_refused(stack: Stack, gateway: Gateway) -> None:
    asked = {"repo": "acme/web", "title": "Crash"}
    value = await token(stack, "tracker.issues.create", "acme/web", "create", arguments=asked)
    params = json.dumps({"name": "create_issue", "arguments": asked, "_meta": _meta()})
    other = json.dumps({"name": "create_issue", "arguments": {"repo": "acme/ops"}})
    head = '{"jsonrpc": "2.0", "id": 10, "method": "tools/call"'
    body = f'{head}, "params": {other}, "params": {params}}}'
    headers = {
        **ACCEPT,
        **MODERN,
        "Mcp-Method": "tools/call",
        "Mcp-Name": "create_issue",
        "Authorization": f"Bearer {value}",
    }
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(stack.mcp_url, content=body, headers=headers)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32700
    assert stack.mcp_seen.arrivals == []
