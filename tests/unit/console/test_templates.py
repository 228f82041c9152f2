"""The console's templates escape what agents and owners wrote, call arguments included."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from authority.console.web.http import TEMPLATES

MARKUP = "</pre><script>alert(1)</script><img src=x onerror=alert(2)>"


@dataclass
class _Approval:
    """An approval as ``approvals.decisions.Approval`` shows it, arguments included."""

    id: str = "apr_1"
    agent_id: str = "agt_1"
    intent: str = MARKUP
    tool: str = MARKUP
    resource: str = MARKUP
    action: str = "run"
    audience: str = "https://tools.example.test"
    reason: str = "autonomy_too_low"
    created_at: int = 1_800_000_000
    expires_at: int = 1_800_000_300
    arguments: dict[str, Any] = field(default_factory=lambda: {"title": MARKUP, MARKUP: [1]})
    arguments_digest: str = "digest"
    explanation: str | None = None


def _render(**context: Any) -> str:
    values = {
        "person": None,
        "csrf": "token",
        "path": "/console/owner/approvals",
        "promotions": [],
        **context,
    }
    return TEMPLATES.get_template("owner/approvals.html").render(**values)


def test_call_arguments_render_as_text() -> None:
    html = _render(pending=[_Approval()], names={"agt_1": MARKUP}, notice=None, now=0)
    assert "<script>" not in html
    assert "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'class="arguments"' in html


def test_an_approval_without_arguments_says_so() -> None:
    @dataclass
    class Bare:
        id: str = "apr_2"
        agent_id: str = "agt_1"
        intent: str = "i"
        tool: str = "t"
        resource: str = "r"
        action: str = "a"
        audience: str = "https://x.test"
        reason: str = "needs_approval"
        created_at: int = 0
        expires_at: int = 0
        arguments: dict[str, Any] | None = None
        arguments_digest: str | None = None
        explanation: str | None = None

    html = _render(pending=[Bare()], names={}, notice=None, now=0)
    assert "none bound to this call" in html


def test_the_baselines_explanation_renders_as_text() -> None:
    @dataclass
    class SteppedUp(_Approval):
        reason: str = "behaviour_step_up"
        explanation: str | None = "first call to tool " + MARKUP

    html = _render(pending=[SteppedUp()], names={}, notice=None, now=0)
    assert "What is unusual" in html and "data-explanation" in html
    assert "<script>" not in html and "<img" not in html
    assert "first call to tool &lt;/pre&gt;&lt;script&gt;" in html
