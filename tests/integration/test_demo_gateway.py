"""The gateway's story end to end: an MCP server behind the gateway, the official MCP
client with the SDK's auth, a call inside the delegation, a masked card, two calls
refused, and the auditor reading the gateway's recording of one of them."""

from __future__ import annotations

from pathlib import Path

from authority.demo_gateway import run_gateway_demo


async def test_the_gateway_story(tmp_path: Path) -> None:
    lines: list[str] = []
    result = await run_gateway_demo(lines.append, data_dir=tmp_path)
    assert result.listed == ["create_issue", "customer"]  # delete_repo is not delegated
    assert result.called == "opened acme/web#25: Login button does nothing"
    assert result.masked == "Grace: card [masked:card], plan gold"
    assert result.refused_outside == "invalid_scope"
    assert result.replayed_status == 403
    recorded = result.recorded
    assert (recorded["outcome"], recorded["status"]) == ("refused", 403)
    assert (recorded["tool"], recorded["resource"]) == ("tracker.issues.create", "acme/web")
    assert len(lines) == 9
