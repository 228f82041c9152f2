"""Texts the API refuses before they can decide anything: templates (which Cedar numbers
with the static policies), nesting deep enough to crash the parser, and operator chains
too long for its JSON form; each a 400 that stores nothing and does not echo the text."""

from __future__ import annotations

from tests.support import World

from .support import counts, set_policy

TEMPLATE_FIRST = """forbid(principal == ?principal, action, resource);
@id("never-create") forbid(principal, action == Action::"create", resource);
@id("ask-prod") @approval("owner") forbid(principal, action, resource)
  when { context.resource like "*prod*" };
"""


async def test_a_text_with_a_template_is_refused(world: World) -> None:
    before = await counts(world)
    for text in (TEMPLATE_FIRST, "permit(principal, action, resource == ?resource);"):
        response = await set_policy(world, text)
        assert response.status_code == 400, response.text
        body = response.json()
        assert body["error"] == "invalid_request"
        assert body["error_description"] == (
            "Policy templates are not supported; write static policies."
        )
    assert await counts(world) == before
    # Nothing stored: the hard forbid of no version is not turned into an approval.
    assert (await world.exchange()).status_code == 200


async def test_a_template_slot_is_not_echoed(world: World) -> None:
    response = await set_policy(world, "forbid(principal == ?hunter2secret, action, resource);")
    assert response.status_code == 400
    assert "hunter2secret" not in response.text


async def test_deep_nesting_and_long_chains_are_a_400(world: World) -> None:
    deep = "forbid(principal, action, resource) when { " + "(" * 700 + "true" + ")" * 700 + " };"
    record = "forbid(principal, action, resource) when { " + "{a:" * 700 + "1" + "}" * 700
    chain = "forbid(principal, action, resource) when { " + " && ".join(["true"] * 1500) + " };"
    for text in (deep, record + " == {} };", chain):
        response = await set_policy(world, text)
        assert response.status_code == 400, response.text
        assert "nests brackets" in response.json()["error_description"]


async def test_a_chain_whose_json_form_is_too_deep_is_a_400(world: World) -> None:
    # Within the operator bound, but deeper than json.loads recurses.
    chain = " && ".join(["true"] * 900)
    response = await set_policy(world, f"forbid(principal, action, resource) when {{ {chain} }};")
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"
