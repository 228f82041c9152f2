"""An auditor's entry page shows the call's recording; a grant's page, its calls."""

from __future__ import annotations

import html
import re

from authority.clock import FrozenClock
from tests.integration.recordings.support import body, call, issued_jti, submit

from .conftest import Console

DAY = 86400
# What a tool may answer: markup, quotes, a terminal escape, a bidi override, a bad byte.
REQUEST = b'{"name": "<script>alert(\\"x\\")</script>"}'
RESPONSE = b'<img src=x onerror="steal()">\x1b[31m\xe2\x80\xae\xff and the rest of it'


async def _recorded(console: Console, **changes: object) -> tuple[str, str]:
    """A call recorded through the gateway flow: (its call id, its grant id)."""
    world = console.world
    jti = await issued_jti(world)
    document = call(jti, request=body(REQUEST), response=body(RESPONSE, head=40), **changes)
    response = await submit(world, document)
    assert response.status_code == 201, response.text
    assert world.services.sequencer is not None
    await world.services.sequencer.run_once()
    stored = await world.services.recording_store.get(response.json()["call_id"])
    assert stored is not None and stored.grant_id is not None
    return stored.id, stored.grant_id


def _leaf(page: str, kind: str) -> int:
    rows = re.findall(
        r'href="/console/ledger/(\d+)">\d+</a></td>\s*<td>[^<]*</td>\s*<td>(\w+)', page
    )
    return next(int(leaf) for leaf, found in rows if found == kind)


def _head(page: str, side: str) -> str:
    found = re.search(rf'<pre class="head" data-head="{side}">(.*?)</pre>', page, re.S)
    assert found is not None, side
    return html.unescape(found.group(1))


async def _entry_of(console: Console, call_id: str) -> str:
    auditor = await console.person("auditor")
    listing = (await auditor.open("/console/ledger?kind=gateway_call")).text
    [leaf] = re.findall(r'href="/console/ledger/(\d+)"', listing)
    page = await auditor.open(f"/console/ledger/{leaf}")
    assert page.status_code == 200
    assert call_id in page.text
    return page.text


async def test_a_gateway_call_entry_shows_its_recording_escaped(console: Console) -> None:
    call_id, _ = await _recorded(console, masked={"aws_access_key": 2, "email": 1})
    page = await _entry_of(console, call_id)
    assert "<script>" not in page and "<img" not in page
    assert "\x1b" not in page and "\u202e" not in page
    assert _head(page, "request") == REQUEST.decode()
    assert _head(page, "response") == '<img src=x onerror="steal()">\\x1b[31m\\u202e\\xff a'
    assert "<strong>truncated</strong>" in page and "the whole body" in page
    assert "<code>aws_access_key</code>: 2" in page and "<code>email</code>: 1" in page
    assert "<dt>Status</dt><dd>200</dd>" in page and "<dt>Outcome</dt><dd>forwarded</dd>" in page
    assert "not blocked" in page


async def test_a_blocked_call_names_its_rule(console: Console) -> None:
    call_id, _ = await _recorded(console, outcome="blocked", status=403, blocked_by="no_shell")
    page = await _entry_of(console, call_id)
    assert "<code>no_shell</code>" in page and "<dd>blocked</dd>" in page


async def test_past_retention_is_said_plainly(console: Console, clock: FrozenClock) -> None:
    call_id, _ = await _recorded(console)
    clock.advance(30 * DAY + 1)
    page = await _entry_of(console, call_id)
    assert "Past retention: the recorded bodies were deleted" in page
    assert 'data-head="' not in page
    assert "sha-256:" in page  # the digests stay with the entry


async def test_a_grant_lists_the_calls_recorded_under_it(console: Console) -> None:
    call_id, grant_id = await _recorded(console)
    auditor = await console.person("auditor")
    listing = (await auditor.open("/console/ledger?kind=grant&decision=issued")).text
    pages = [
        (await auditor.open(f"/console/ledger/{leaf}")).text
        for leaf in re.findall(r'href="/console/ledger/(\d+)"', listing)
    ]
    [page] = [p for p in pages if grant_id in p]
    assert f'data-call="{call_id}"' in page and "Calls recorded under this grant" in page
    assert "<td>forwarded</td>" in page and "<td>kept</td>" in page
