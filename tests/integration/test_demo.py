"""The demo's story end to end: the authority and a tool server on loopback, uvicorn, real
HTTP, the agent SDK and the resource-server middleware, the revocation feed, the ledger."""

from __future__ import annotations

from pathlib import Path

from authority.demo import run_demo


async def test_the_whole_story(tmp_path: Path) -> None:
    lines: list[str] = []
    result = await run_demo(lines.append, data_dir=tmp_path)
    assert result.tool_calls == [201, 201]
    assert result.refused_outside == "invalid_scope"
    assert result.refused_after_revoke == "invalid_request"
    # The tool server heard of the revocation on its feed and refused a token minted before.
    assert result.old_token_after_revoke == 401
    assert result.ledger is not None
    assert result.ledger.startswith("ok: ")
    assert len(lines) == 10
