"""The owner's pending approval shows the exact arguments approved, and their digest, as text."""

from __future__ import annotations

import html
import json
import re

from authority.sdk.arguments import digest
from tests.integration.approvals.support import RISKY_TOOL, ask_pending, with_risky_tool

from .conftest import Console

# What an agent may send: markup, quotes, terminal escapes, a line separator, a bidi
# override and DEL, all of it shown as data.
ARGS = {
    "service": "web",
    "note": '<script>alert("x")</script>\x1b[31m\u2028\u202e"quoted" & <b>bold</b>\x7f',
    "replicas": 3,
    "canary": True,
    "regions": ["eu-1", "us-2"],
}


def _shown(page: str) -> tuple[str, str]:
    arguments = re.search(r"<pre class=\"arguments\" data-arguments>(.*?)</pre>", page, re.S)
    digested = re.search(r"<code data-arguments-digest>(.*?)</code>", page)
    assert arguments is not None and digested is not None
    return html.unescape(arguments.group(1)), html.unescape(digested.group(1))


async def test_the_arguments_are_shown_exactly_and_escaped(console: Console) -> None:
    world = console.world
    await with_risky_tool(world)
    detail = {"type": "tool_call", "tool": RISKY_TOOL, "resource": "prod/web", "action": "run"}
    await ask_pending(world, authorization_details=json.dumps([{**detail, "arguments": ARGS}]))
    owner = await console.owner()
    page = await owner.open("/console/owner/approvals")
    assert page.status_code == 200
    assert "<script>" not in page.text and "<b>bold" not in page.text
    assert "\u202e" not in page.text and "\x1b" not in page.text and "\x7f" not in page.text
    arguments, shown_digest = _shown(page.text)
    assert json.loads(arguments) == ARGS
    assert all(c.isprintable() or c == "\n" for c in arguments)
    assert '\\"quoted\\"' in arguments and "\\u202e" in arguments and "\\u007f" in arguments
    assert shown_digest == digest(ARGS)


async def test_a_call_bound_by_digest_only_shows_the_digest(console: Console) -> None:
    world = console.world
    await with_risky_tool(world)
    detail = {"type": "tool_call", "tool": RISKY_TOOL, "resource": "prod/web", "action": "run"}
    bound = {**detail, "arguments_digest": digest(ARGS)}
    await ask_pending(world, authorization_details=json.dumps([bound]))
    page = (await (await console.owner()).open("/console/owner/approvals")).text
    assert "data-arguments>" not in page
    assert "bound them by digest only" in page
    assert f"<code data-arguments-digest>{digest(ARGS)}</code>" in page


async def test_a_call_without_arguments_says_so(console: Console) -> None:
    world = console.world
    await with_risky_tool(world)
    await ask_pending(world)
    page = (await (await console.owner()).open("/console/owner/approvals")).text
    assert "none bound to this call" in page and "data-arguments-digest" not in page
