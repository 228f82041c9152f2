"""The management API's operations (``/v1``) as the OpenAPI document describes them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from authority.approvals import decisions
from authority.approvals import webhook_registration as registration
from authority.grants import delegations
from authority.management import (
    agents,
    api_keys,
    autonomy,
    controls,
    owners,
    resource_servers,
    tools,
    trust_domains,
)
from authority.management.auth import Principal

from . import openapi_shapes as shapes
from .openapi_operations import (
    PAGE,
    READ,
    SECRET,
    WRITE,
    Answer,
    Operation,
    Query,
    article,
    created,
    listing,
    ok,
)

#: What ``secrets.valid_id`` accepts: any id this authority made.
ID = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,40}$"}


def management_operations() -> dict[tuple[str, str], Operation]:
    def crud(
        base: str,
        noun: str,
        record: Any,
        create: type[BaseModel] | None,
        update: type[BaseModel] | None,
        *,
        param: str,
        issued: tuple[Answer, ...] | None = None,
        tag: str,
    ) -> dict[tuple[str, str], Operation]:
        one = f"{base}/{{{param}}}"
        ops = {
            ("GET", base): Operation(
                f"List the {noun}s", tag, "api_key", (listing(record),), query=PAGE, errors=READ
            ),
            ("GET", one): Operation(f"Get one {noun}", tag, "api_key", ok(record), errors=READ),
            ("DELETE", one): Operation(
                f"Retire {article(noun)} {noun} (the record stays)",
                tag,
                "api_key",
                ok(record),
                errors=WRITE,
            ),
        }
        if create is not None:
            ops["POST", base] = Operation(
                f"Create {article(noun)} {noun}",
                tag,
                "api_key",
                issued or created(record),
                body=create,
                errors=WRITE,
            )
        if update is not None:
            ops["PATCH", one] = Operation(
                f"Change {article(noun)} {noun} (only the fields sent)",
                tag,
                "api_key",
                ok(record),
                body=update,
                errors=WRITE,
            )
        return ops

    issued_key = created(api_keys.ApiKey, extra={"api_key": SECRET}, required_extra=("api_key",))
    issued_secret = {"client_secret": {**SECRET, "description": "For a secret auth_method."}}
    return {
        ("GET", "/v1/me"): Operation(
            "Who the API key is", "management", "api_key", ok(Principal), errors=READ
        ),
        **crud(
            "/v1/owners",
            "owner",
            owners.Owner,
            owners.OwnerCreate,
            owners.OwnerUpdate,
            param="owner_id",
            tag="owners",
        ),
        **crud(
            "/v1/owners/{owner_id}/api-keys",
            "owner API key",
            api_keys.ApiKey,
            api_keys.OwnerKeyCreate,
            None,
            param="key_id",
            issued=issued_key,
            tag="api-keys",
        ),
        **crud(
            "/v1/api-keys",
            "admin or auditor API key",
            api_keys.ApiKey,
            api_keys.KeyCreate,
            None,
            param="key_id",
            issued=issued_key,
            tag="api-keys",
        ),
        **crud(
            "/v1/agents",
            "agent",
            agents.Agent,
            agents.AgentCreate,
            agents.AgentUpdate,
            param="agent_id",
            tag="agents",
        ),
        **crud(
            "/v1/tools",
            "tool",
            tools.Tool,
            tools.ToolCreate,
            tools.ToolUpdate,
            param="tool_id",
            tag="tools",
        ),
        **crud(
            "/v1/resource-servers",
            "resource server",
            resource_servers.ResourceServer,
            resource_servers.ServerCreate,
            resource_servers.ServerUpdate,
            param="server_id",
            issued=created(resource_servers.ResourceServer, extra=issued_secret),
            tag="resource-servers",
        ),
        ("POST", "/v1/resource-servers/{server_id}/secret"): Operation(
            "Rotate a resource server's client secret",
            "resource-servers",
            "api_key",
            ok(resource_servers.ResourceServer, extra=issued_secret),
            errors=WRITE,
        ),
        **_trust_domain_operations(),
    }


def _trust_domain_operations() -> dict[tuple[str, str], Operation]:
    """Admins register and change them; anyone with a key reads them (rules name them)."""
    base, one, view = "/v1/trust-domains", "/v1/trust-domains/{domain_id}", "trust-domains"
    domain = trust_domains.TrustDomainView
    return {
        ("GET", base): Operation(
            "List the trust domains", view, "api_key", (listing(domain),), query=PAGE, errors=READ
        ),
        ("POST", base): Operation(
            "Register a trust domain (admin keys only)",
            view,
            "api_key",
            created(domain),
            body=trust_domains.TrustDomainCreate,
            errors=WRITE,
        ),
        ("GET", one): Operation("Get one trust domain", view, "api_key", ok(domain), errors=READ),
        ("PATCH", one): Operation(
            "Change or disable a trust domain (only the fields sent; admin keys only)",
            view,
            "api_key",
            ok(domain),
            body=trust_domains.TrustDomainUpdate,
            errors=WRITE,
        ),
    }


def grant_operations() -> dict[tuple[str, str], Operation]:
    approval = "/v1/approvals/{approval_id}"
    webhook = "/v1/owners/{owner_id}/webhook"
    return {
        ("GET", "/v1/delegations"): Operation(
            "List delegations",
            "delegations",
            "api_key",
            (listing(shapes.DelegationView),),
            query=(*PAGE, Query("agent_id", ID, "Only this agent's.")),
            errors=READ,
        ),
        ("POST", "/v1/delegations"): Operation(
            "Delegate to an agent (owner keys only)",
            "delegations",
            "api_key",
            created(shapes.CreatedDelegation),
            body=delegations.CreateDelegation,
            errors=WRITE,
        ),
        ("GET", "/v1/delegations/{delegation_id}"): Operation(
            "Get one delegation", "delegations", "api_key", ok(shapes.DelegationView), errors=READ
        ),
        ("POST", "/v1/delegations/{delegation_id}/revoke"): Operation(
            "Revoke a delegation",
            "delegations",
            "api_key",
            ok(shapes.DelegationView),
            body=delegations.RevokeDelegation,
            body_required=False,
            errors=WRITE,
        ),
        ("POST", "/v1/agents/{agent_id}/quarantine"): Operation(
            "Quarantine an agent",
            "controls",
            "api_key",
            ok(agents.Agent),
            body=controls.QuarantineBody,
            errors=WRITE,
        ),
        ("POST", "/v1/agents/{agent_id}/release"): Operation(
            "Release a quarantined agent",
            "controls",
            "api_key",
            ok(agents.Agent),
            body=controls.ReleaseBody,
            body_required=False,
            errors=WRITE,
        ),
        ("POST", "/v1/owners/{owner_id}/kill"): Operation(
            "The kill switch: revoke every delegation and quarantine every agent of the owner",
            "controls",
            "api_key",
            ok(controls.Killed),
            body=controls.KillBody,
            errors=WRITE,
        ),
        ("POST", "/v1/agents/{agent_id}/autonomy"): Operation(
            "Set an agent's autonomy level (0: every call awaits approval)",
            "agents",
            "api_key",
            ok(agents.Agent),
            body=autonomy.AutonomyBody,
            errors=WRITE,
        ),
        ("GET", "/v1/approvals"): Operation(
            "List approval requests",
            "approvals",
            "api_key",
            (listing(decisions.Approval),),
            query=(
                *PAGE,
                Query(
                    "status",
                    {"type": "string", "enum": sorted(decisions.STATUSES)},
                    "Only approvals in this status (default: pending).",
                ),
                Query("agent_id", ID, "Only this agent's."),
            ),
            errors=READ,
        ),
        ("GET", approval): Operation(
            "Get one approval request",
            "approvals",
            "api_key",
            ok(decisions.Approval),
            errors=READ,
        ),
        ("POST", approval + "/approve"): Operation(
            "Approve a call",
            "approvals",
            "api_key",
            ok(decisions.Approval),
            body=decisions.Decision,
            body_required=False,
            errors=WRITE,
        ),
        ("POST", approval + "/deny"): Operation(
            "Deny a call",
            "approvals",
            "api_key",
            ok(decisions.Approval),
            body=decisions.Decision,
            body_required=False,
            errors=WRITE,
        ),
        ("GET", webhook): Operation(
            "The owner's approval webhook",
            "approvals",
            "api_key",
            ok(registration.Webhook),
            errors=READ,
        ),
        ("PUT", webhook): Operation(
            "Set the owner's approval webhook",
            "approvals",
            "api_key",
            ok(registration.Webhook, extra={"secret": SECRET}, required_extra=("secret",)),
            body=registration.WebhookSet,
            errors=WRITE,
        ),
        ("DELETE", webhook): Operation(
            "Remove the owner's approval webhook",
            "approvals",
            "api_key",
            ok(registration.Webhook),
            errors=WRITE,
        ),
    }


def behaviour_operations() -> dict[tuple[str, str], Operation]:
    from authority import behaviour, promotion

    agent = "/v1/agents/{agent_id}"
    return {
        ("GET", agent + "/baseline"): Operation(
            "An agent's baseline: its tools, most used calls, usual rate, and the calls it "
            "sent to its owner (step-ups, with their explanations)",
            "agents",
            "api_key",
            ok(behaviour.BaselineView),
            errors=READ,
        ),
        ("GET", agent + "/promotions"): Operation(
            "An agent's promotion proposals, newest first",
            "agents",
            "api_key",
            (listing(promotion.ProposalView),),
            errors=READ,
        ),
        ("POST", agent + "/promotions/{proposal_id}/accept"): Operation(
            "Accept a promotion proposal: the agent's autonomy level goes one up",
            "agents",
            "api_key",
            ok(promotion.ProposalView),
            body_required=False,
            errors=WRITE,
        ),
    }


def console_operations() -> dict[tuple[str, str], Operation]:
    from authority.console import people
    from authority.storage.console import Person

    issued = {
        "enrolment_url": {**SECRET, "description": "The one-time enrolment link."},
        "enrolment_expires_at": {"type": "integer"},
    }
    required = ("enrolment_url", "enrolment_expires_at")
    base = "/v1/console/people"
    return {
        ("GET", base): Operation(
            "The console's people", "console", "api_key", (listing(Person),), errors=READ
        ),
        ("POST", base): Operation(
            "Invite a person to the console (answers their enrolment link)",
            "console",
            "api_key",
            created(Person, extra=issued, required_extra=required),
            body=people.PersonCreate,
            errors=WRITE,
        ),
        ("POST", base + "/{person_id}/enrolment"): Operation(
            "A new enrolment link (a new passkey)",
            "console",
            "api_key",
            ok(Person, extra=issued, required_extra=required),
            errors=WRITE,
        ),
        ("DELETE", base + "/{person_id}"): Operation(
            "Retire a person", "console", "api_key", ok(Person), errors=WRITE
        ),
    }
