"""The Cedar policy's operations (``/v1/policies``) as the OpenAPI document describes them."""

from __future__ import annotations

from authority.management import policies, policy_dry_run

from .openapi_operations import READ, WRITE, Operation, created, listing, ok

_TAG = "policies"


def policy_operations() -> dict[tuple[str, str], Operation]:
    base = "/v1/policies"
    one = base + "/{version}"
    return {
        ("GET", base): Operation(
            "The policy's versions, newest first (never their text; admin or auditor)",
            _TAG,
            "api_key",
            (listing(policies.PolicyVersionView),),
            errors=READ,
        ),
        ("POST", base): Operation(
            "Store a new policy version and make it active (admin)",
            _TAG,
            "api_key",
            created(policies.PolicyView),
            body=policies.PolicyCreate,
            errors=WRITE,
            description="The text is parsed first: one that is not valid Cedar is a 400 "
            "naming the line where it stops parsing and the kind of error, never the text. "
            "The change is a policy_changed ledger entry; this instance decides its next "
            "request on the new version, every other within policy_refresh_interval.",
        ),
        ("GET", base + "/active"): Operation(
            "The active policy version with its text (version 0: the built-in default)",
            _TAG,
            "api_key",
            ok(policies.PolicyView),
            errors=READ,
        ),
        ("POST", base + "/dry-run"): Operation(
            "Would this call be allowed now, and why (admin, or the delegation's owner)",
            _TAG,
            "api_key",
            ok(policy_dry_run.DryRun),
            body=policy_dry_run.DryRunBody,
            errors=(400, 401, 403, 404, 413, 415, 429, 503),
            description="The built-in checks and the active policy on the stored facts, "
            "then the call cap and the rate window, read only: nothing is issued, spent, "
            "counted or recorded in the ledger (the request is logged).",
        ),
        ("GET", one): Operation(
            "One policy version with its text",
            _TAG,
            "api_key",
            ok(policies.PolicyView),
            errors=READ,
        ),
        ("POST", one + "/activate"): Operation(
            "Make a stored version active again: a rollback (admin)",
            _TAG,
            "api_key",
            ok(policies.PolicyView),
            body_required=False,
            errors=WRITE,
        ),
    }
