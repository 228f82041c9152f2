"""Trust domains: the issuers of workload tokens the authority trusts (admins only).

A domain pins one issuer (the exact ``iss`` of its tokens) and the audience its tokens
must carry for this authority, says where its verification keys come from (OIDC
discovery, a JWKS URL, a JWKS or a SPIFFE trust bundle held here) and which preset maps
its claims (``federation.model.Preset``), with extra claims mapped by name. Agents'
identity rules name domains by id (``agent_workload``); the exchange verifies platform
tokens under them (``grants.workload_auth``).

Every registration and change (disabling included) is a ``registry_changed`` ledger
entry in the same transaction (``authority.management.changes``, version 3: it records
the claim mapping as an object); a held JWKS only as its keys' kids and thumbprints.
A disabled domain verifies nothing: agents whose rules name it are refused at once.
The rows are the trust domains port's (``authority.storage.trust_domains``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, StringConstraints

from authority.context import Services
from authority.errors import Conflict, InvalidRequest, NotFound
from authority.federation.model import KeySource, Preset, TrustDomain
from authority.federation.presets import check_claim_mapping
from authority.management.field_errors import Refused
from authority.secrets import new_id
from authority.storage.registry import Stale, Taken, Written
from authority.storage.trust_domains import TrustDomainRow
from authority.tokens.jwks import validate_public_jwks

from . import changes as registry_changes
from . import paging, records
from .auth import ADMIN, READERS, Principal, require_role
from .inputs import Body, Name, require_changes

KIND = "trust_domains"
NOT_FOUND = "No such trust domain."
TAKEN = "A trust domain with this name already exists."
LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})

PresetName = Literal["spiffe", "kubernetes", "github", "gitlab", "oidc"]
KeySourceName = Literal["discovery", "jwks_uri", "static_jwks", "spiffe_bundle"]
Status = Literal["active", "disabled"]
FETCHED = frozenset({"discovery", "jwks_uri"})


def _check_identifier(value: str) -> str:
    """An issuer or audience: printable ASCII without blanks (compared exactly)."""
    if not value.isascii() or not value.isprintable() or " " in value:
        raise Refused("not printable ASCII without blanks")
    return value


def _check_location(value: str) -> str:
    """Where keys are fetched from: https, or http on a loopback host only."""
    _check_identifier(value)
    parts = urlsplit(value)
    if not parts.hostname or parts.fragment or "#" in value or "@" in parts.netloc:
        raise Refused("not an absolute URL without credentials or fragment")
    if parts.scheme != "https" and not (parts.scheme == "http" and parts.hostname in LOOPBACK):
        raise Refused("not https (http only on a loopback host)")
    try:
        _ = parts.port
    except ValueError:
        raise Refused("has a bad port") from None
    return value


Identifier = Annotated[
    str, StringConstraints(min_length=1, max_length=2048), AfterValidator(_check_identifier)
]
Location = Annotated[
    str, StringConstraints(min_length=1, max_length=2048), AfterValidator(_check_location)
]
ClaimName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,100}$")]
ClaimMapping = Annotated[
    dict[ClaimName, ClaimName],
    Field(
        max_length=50,
        description="Extra claims the identity keeps: the token's claim name -> the name "
        "rules, policy (context.workload) and the access token know it by.",
    ),
]
Jwks = Annotated[
    dict[str, Any],
    Field(description="The JWKS (static_jwks) or SPIFFE trust bundle (spiffe_bundle) held."),
]


class TrustDomainCreate(Body):
    name: Name
    preset: PresetName
    issuer: Identifier
    audience: Identifier
    key_source: KeySourceName = "discovery"
    key_location: Location | None = None
    static_jwks: Jwks | None = None
    claim_mapping: ClaimMapping = Field(default_factory=dict)


class TrustDomainUpdate(Body):
    # PATCH: only the fields sent change; a default here is never applied. The name,
    # preset and issuer are what the domain is: register another domain to change them.
    audience: Identifier = ""
    key_source: KeySourceName = "discovery"
    key_location: Location | None = None
    static_jwks: Jwks | None = None
    claim_mapping: ClaimMapping = Field(default_factory=dict)
    status: Status = "active"


@dataclass(frozen=True, slots=True)
class TrustDomainView:
    id: str
    name: str
    preset: str
    issuer: str
    audience: str
    key_source: str
    key_location: str | None
    static_jwks: dict[str, Any] | None
    claim_mapping: dict[str, str]
    status: str
    version: int
    created_at: int
    updated_at: int


def _view(row: TrustDomainRow) -> TrustDomainView:
    return TrustDomainView(
        id=row.id,
        name=row.name,
        preset=row.preset,
        issuer=row.issuer,
        audience=row.audience,
        key_source=row.key_source,
        key_location=row.key_location,
        static_jwks=row.static_jwks,
        claim_mapping=dict(row.claim_mapping),
        status=row.status,
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def domain_of(row: TrustDomainRow) -> TrustDomain:
    """The federation's value of a stored domain (what the verifier is given)."""
    return TrustDomain(
        id=row.id,
        name=row.name,
        preset=Preset(row.preset),
        issuer=row.issuer,
        audience=row.audience,
        key_source=KeySource(row.key_source),
        key_location=row.key_location,
        static_jwks=row.static_jwks,
        claim_mapping=dict(row.claim_mapping),
        status=row.status,
        version=row.version,
    )


def _held_keys(key_source: str, jwks: dict[str, Any] | None) -> dict[str, Any] | None:
    """A held JWKS checked as agents' keys are; a SPIFFE bundle's JWT-SVID keys only."""
    if jwks is None:
        return None
    if key_source == "spiffe_bundle":
        keys = jwks.get("keys")
        if not isinstance(keys, list):
            raise InvalidRequest("The static_jwks field must be a JWKS with a keys array.")
        # SPIFFE trust domain bundle format §4: keys with use jwt-svid verify JWT-SVIDs;
        # only those are kept (an X.509 authority's never verifies a token here).
        svid = [
            {name: value for name, value in key.items() if name != "use"}
            for key in keys
            if isinstance(key, dict) and key.get("use") == "jwt-svid"
        ]
        checked = validate_public_jwks({"keys": svid})
        return {"keys": [{**key, "use": "jwt-svid"} for key in checked["keys"]]}
    return validate_public_jwks(jwks)


def _check_keys(key_source: str, location: str | None, jwks: dict[str, Any] | None) -> None:
    if key_source in FETCHED and (location is None or jwks is not None):
        raise InvalidRequest(
            "The key_source discovery or jwks_uri needs key_location and no static_jwks."
        )
    if key_source == "static_jwks" and (jwks is None or location is not None):
        raise InvalidRequest("The key_source static_jwks needs static_jwks and no key_location.")
    if key_source == "spiffe_bundle" and (jwks is None) == (location is None):
        raise InvalidRequest(
            "The key_source spiffe_bundle needs either key_location (the bundle endpoint) "
            "or static_jwks (the bundle)."
        )


def _mapping(preset: str, mapping: dict[str, str]) -> dict[str, str]:
    try:
        return check_claim_mapping(Preset(preset), mapping)
    except Refused as exc:
        raise InvalidRequest(str(exc)) from None


def _key_refs(jwks: dict[str, Any] | None) -> list[dict[str, str]] | None:
    return None if jwks is None else registry_changes.key_refs(jwks)


def _recorded(values: dict[str, Any]) -> dict[str, Any]:
    """What the ledger records of the fields: all but the held JWKS (``keys`` has it)."""
    return {name: value for name, value in values.items() if name != "static_jwks"}


async def found(services: Services, domain_id: str) -> TrustDomainRow:
    row = await services.trust_domain_store.get(domain_id)
    if row is None:
        raise NotFound(NOT_FOUND)
    return row


async def create(
    services: Services, principal: Principal, body: TrustDomainCreate
) -> TrustDomainView:
    require_role(principal, *ADMIN)
    _check_keys(body.key_source, body.key_location, body.static_jwks)
    jwks = _held_keys(body.key_source, body.static_jwks)
    now = services.now()
    domain_id = new_id("td")
    row = TrustDomainRow(
        id=domain_id,
        name=body.name,
        preset=body.preset,
        issuer=body.issuer,
        audience=body.audience,
        key_source=body.key_source,
        key_location=body.key_location,
        static_jwks=jwks,
        claim_mapping=_mapping(body.preset, dict(body.claim_mapping)),
        status="active",
        version=1,
        created_at=now,
        updated_at=now,
    )
    entry = registry_changes.entry(
        now=now,
        actor=principal.key_id,
        object_type="trust_domain",
        object_id=domain_id,
        change="created",
        changes=_recorded(
            {
                "name": body.name,
                "preset": body.preset,
                "issuer": body.issuer,
                "audience": body.audience,
                "key_source": body.key_source,
                "key_location": body.key_location,
                "claim_mapping": dict(body.claim_mapping),
            }
        ),
        keys=_key_refs(jwks),
        version=registry_changes.STRUCTURED,
    )
    created = await services.trust_domain_store.create(row, [entry])
    if isinstance(created, Taken):
        raise Conflict(TAKEN)
    return _view(created)


async def get(services: Services, principal: Principal, domain_id: str) -> TrustDomainView:
    require_role(principal, *READERS)
    return _view(await found(services, domain_id))


async def list_domains(
    services: Services, principal: Principal, request: paging.PageRequest
) -> paging.Page[TrustDomainView]:
    require_role(principal, *READERS)
    rows = await services.trust_domain_store.page(limit=request.limit, after=request.after)
    return paging.page_of(services, KIND, rows, _view)


async def update_domain(
    services: Services, principal: Principal, domain_id: str, body: TrustDomainUpdate
) -> TrustDomainView:
    """Change what was sent; a change of keys or audience is a new ``version``."""
    require_role(principal, *ADMIN)
    changes = require_changes(body)

    async def attempt() -> Written[TrustDomainRow] | Stale:
        row = await found(services, domain_id)
        if "claim_mapping" in changes:
            changes["claim_mapping"] = _mapping(row.preset, dict(changes["claim_mapping"]))
        new = replace(row, **changes)
        if "key_source" in changes and changes["key_source"] != row.key_source:
            # Another source: the other one's location or keys go unless sent anew.
            if "key_location" not in changes:
                new = replace(new, key_location=None)
            if "static_jwks" not in changes:
                new = replace(new, static_jwks=None)
        _check_keys(new.key_source, new.key_location, new.static_jwks)
        if "static_jwks" in changes:
            new = replace(new, static_jwks=_held_keys(new.key_source, new.static_jwks))
        fields = ("audience", "key_source", "key_location", "claim_mapping", "status")
        changed = registry_changes.differences(
            {name: getattr(new, name) for name in fields},
            {name: getattr(row, name) for name in fields},
        )
        new_keys = None if records.same_json(new.static_jwks, row.static_jwks) else new.static_jwks
        if not changed and new_keys is None:
            return Written(row)
        now = services.now()
        new = replace(new, version=row.version + 1, updated_at=now)
        entry = registry_changes.entry(
            now=now,
            actor=principal.key_id,
            object_type="trust_domain",
            object_id=domain_id,
            change="updated",
            changes=changed,
            keys=_key_refs(new_keys),
            version=registry_changes.STRUCTURED,
        )
        written = await services.trust_domain_store.replace(row, new, entries=[entry])
        if isinstance(written, Taken):  # the name is unchanged: cannot happen
            raise Conflict(TAKEN)
        return written

    return _view((await records.until_written(attempt)).row)
