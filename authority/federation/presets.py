"""Each preset's shape of workload token: what it must carry and what the identity keeps.

Only verified claims come here. A preset names the claims its platform always writes
(missing or malformed, the token is refused) and the ones it writes for some runs only
(kept when present). The domain's ``claim_mapping`` copies further top-level claims,
under the names it gives them, for any preset; a preset's own claim keeps its name and
value, a mapping never overrides it (``check_claim_mapping`` refuses one that tries).

Claim values become strings: strings as they are (at most ``MAX_CLAIM_LENGTH``
characters, printable), booleans as ``true``/``false``, integers in decimal. Anything
else (lists, objects, floats, null) is dropped when optional and refused when required:
rules compare strings, and a list joined into one would match what it never said.

The platforms' own documentation of these tokens:
- SPIFFE JWT-SVID (spiffe/spiffe standards/JWT-SVID.md): ``sub`` is the workload's
  SPIFFE ID (standards/SPIFFE-ID.md), ``aud`` and ``exp`` required, ``iat`` optional.
- Kubernetes projected service-account tokens: ``sub`` is
  ``system:serviceaccount:<namespace>:<name>`` and ``kubernetes.io`` holds namespace,
  serviceaccount {name, uid}, and for a pod-bound token pod {name, uid} (and node).
- GitHub Actions OIDC (docs.github.com, "OpenID Connect reference").
- GitLab CI ``id_tokens`` (docs.gitlab.com, "OpenID Connect (OIDC) Authentication Using
  ID Tokens").
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from authority.federation.errors import WorkloadRejected
from authority.federation.model import Preset, TrustDomain
from authority.management.field_errors import Refused

MAX_CLAIM_LENGTH = 1024
MAX_SUBJECT_LENGTH = 2048
#: Most claims a domain's mapping may copy.
MAX_MAPPED_CLAIMS = 32
_CLAIM_NAME = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")
_INT_BOUND = 2**63

# (required, optional) claim names, kept under the same names.
_GITHUB = (
    (
        "repository",
        "repository_id",
        "repository_owner",
        "repository_owner_id",
        "workflow_ref",
        "job_workflow_ref",
        "event_name",
        "run_id",
        "sha",
        "actor",
    ),
    (
        "actor_id",
        "ref",
        "ref_type",
        "ref_protected",
        "environment",
        "workflow_sha",
        "job_workflow_sha",
        "run_attempt",
        "repository_visibility",
        "runner_environment",
    ),
)
_GITLAB = (
    (
        "project_path",
        "project_id",
        "namespace_path",
        "namespace_id",
        "ref",
        "ref_type",
        "ref_protected",
        "pipeline_source",
        "pipeline_id",
        "job_id",
    ),
    (
        "ref_path",
        "environment",
        "environment_protected",
        "deployment_tier",
        "user_login",
        "user_id",
        "sha",
        "ci_config_ref_uri",
        "ci_config_sha",
        "project_visibility",
        "runner_environment",
        "runner_id",
    ),
)
_SPIFFE_CLAIMS = ("spiffe_id", "trust_domain", "path")
_KUBERNETES_CLAIMS = ("namespace", "service_account", "service_account_uid", "pod", "pod_uid")

#: The claims each preset can put into an identity (before the domain's mapping).
PRESET_CLAIMS: Mapping[Preset, frozenset[str]] = {
    Preset.SPIFFE: frozenset(_SPIFFE_CLAIMS),
    Preset.KUBERNETES: frozenset(_KUBERNETES_CLAIMS),
    Preset.GITHUB: frozenset(_GITHUB[0] + _GITHUB[1]),
    Preset.GITLAB: frozenset(_GITLAB[0] + _GITLAB[1]),
    Preset.OIDC: frozenset(),
}

# SPIFFE-ID §2.1-2.2: trust domain of lowercase letters, digits, dot, dash, underscore;
# a path of segments of letters, digits, dot, dash, underscore, none "." or "..", none
# empty, no trailing "/". A workload's ID has a path (an empty one names the domain).
_TRUST_DOMAIN = re.compile(r"[a-z0-9._\-]{1,255}")
_SEGMENT = re.compile(r"[A-Za-z0-9._\-]+")
_SERVICE_ACCOUNT = re.compile(r"system:serviceaccount:([^:]+):([^:]+)")


def _text(value: Any) -> str | None:
    """A claim value as the string a rule compares, or None when it has none."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value) if -_INT_BOUND < value < _INT_BOUND else None
    if isinstance(value, str) and len(value) <= MAX_CLAIM_LENGTH and value.isprintable():
        return value
    return None


def _required(claims: Mapping[str, Any], name: str, source: Any = None) -> str:
    value = _text(claims.get(name) if source is None else source)
    if not value:
        raise WorkloadRejected(f"workload_bad_claim_{name.replace('.', '_')}")
    return value


def _subject(claims: Mapping[str, Any]) -> str:
    # RFC 7519 §4.1.2 and OpenID Connect Core §2: sub is a string, never true or 1.
    sub = claims.get("sub")
    if not isinstance(sub, str):
        raise WorkloadRejected("workload_bad_claim_sub")
    return _required(claims, "sub")


def _keep(kept: dict[str, str], name: str, value: Any) -> None:
    text = _text(value)
    if text:  # an empty optional claim (GitHub's head_ref on a push) is no claim
        kept[name] = text


def parse_spiffe_id(value: str) -> tuple[str, str]:
    """(trust domain, path) of a workload's SPIFFE ID, or ``ValueError``."""
    if len(value.encode()) > MAX_SUBJECT_LENGTH or not value.startswith("spiffe://"):
        raise ValueError("not a SPIFFE ID")
    trust_domain, slash, path = value[len("spiffe://") :].partition("/")
    if not _TRUST_DOMAIN.fullmatch(trust_domain) or not slash:
        raise ValueError("not a workload SPIFFE ID")
    for segment in path.split("/"):
        if not _SEGMENT.fullmatch(segment) or segment in (".", ".."):
            raise ValueError("bad SPIFFE ID path")
    return trust_domain, "/" + path


def spiffe_trust_domain(issuer: str) -> str | None:
    """The trust domain a SPIFFE domain's issuer names, when it is a trust domain ID
    (``spiffe://example.org``) rather than a JWT issuer URL."""
    if not issuer.startswith("spiffe://"):
        return None
    name = issuer[len("spiffe://") :]
    return name if _TRUST_DOMAIN.fullmatch(name) else None


def _spiffe(domain: TrustDomain, claims: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
    sub = claims.get("sub")
    subject = sub if isinstance(sub, str) else ""
    try:
        trust_domain, path = parse_spiffe_id(subject)
    except ValueError:
        raise WorkloadRejected("workload_bad_spiffe_id") from None
    pinned = spiffe_trust_domain(domain.issuer)
    if pinned is not None and trust_domain != pinned:
        # A SPIFFE domain named by its trust domain ID trusts that trust domain only.
        raise WorkloadRejected("workload_wrong_trust_domain")
    return subject, {"spiffe_id": subject, "trust_domain": trust_domain, "path": path}


def _kubernetes(claims: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
    subject = _subject(claims)
    match = _SERVICE_ACCOUNT.fullmatch(subject)
    info = claims.get("kubernetes.io")
    if match is None or not isinstance(info, dict):
        raise WorkloadRejected("workload_not_a_service_account")
    account = info.get("serviceaccount")
    if not isinstance(account, dict):
        raise WorkloadRejected("workload_bad_claim_kubernetes_io")
    namespace = _required(info, "namespace")
    name = _required(account, "name")
    # The subject and the kubernetes.io claim are written together by the API server:
    # a token where they disagree is not one it made.
    if (namespace, name) != match.groups():
        raise WorkloadRejected("workload_bad_claim_kubernetes_io")
    kept = {"namespace": namespace, "service_account": name}
    _keep(kept, "service_account_uid", account.get("uid"))
    pod = info.get("pod")
    if isinstance(pod, dict):
        _keep(kept, "pod", pod.get("name"))
        _keep(kept, "pod_uid", pod.get("uid"))
    return subject, kept


def _listed(
    claims: Mapping[str, Any], names: tuple[tuple[str, ...], tuple[str, ...]]
) -> tuple[str, dict[str, str]]:
    subject = _subject(claims)
    required, optional = names
    kept = {name: _required(claims, name) for name in required}
    for name in optional:
        _keep(kept, name, claims.get(name))
    return subject, kept


def shape(domain: TrustDomain, claims: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
    """The subject and the kept claims of a verified token under ``domain``'s preset, or
    ``WorkloadRejected`` when the token is not of the preset's shape."""
    if domain.preset is Preset.SPIFFE:
        subject, kept = _spiffe(domain, claims)
    elif domain.preset is Preset.KUBERNETES:
        subject, kept = _kubernetes(claims)
    elif domain.preset is Preset.GITHUB:
        subject, kept = _listed(claims, _GITHUB)
    elif domain.preset is Preset.GITLAB:
        subject, kept = _listed(claims, _GITLAB)
    else:
        subject, kept = _subject(claims), {}
    if len(subject) > MAX_SUBJECT_LENGTH:
        raise WorkloadRejected("workload_bad_claim_sub")
    for claim, name in domain.claim_mapping.items():
        if name not in kept:
            _keep(kept, name, claims.get(claim))
    return subject, kept


def check_claim_mapping(preset: Preset, mapping: Mapping[str, Any]) -> dict[str, str]:
    """A domain's ``claim_mapping`` as given by an administrator, checked: names of the
    JWT claim and of the identity claim both short and plain, none of the preset's own
    names taken, no name given twice."""
    if not isinstance(mapping, Mapping):
        raise Refused("The claim mapping must be an object of claim names.")
    if len(mapping) > MAX_MAPPED_CLAIMS:
        raise Refused(f"The claim mapping may name at most {MAX_MAPPED_CLAIMS} claims.")
    checked: dict[str, str] = {}
    for claim, name in mapping.items():
        if not isinstance(claim, str) or not isinstance(name, str):
            raise Refused("The claim mapping must map claim names to names.")
        if not _CLAIM_NAME.fullmatch(claim) or not _CLAIM_NAME.fullmatch(name):
            raise Refused("A claim name must be 1 to 64 letters, digits or the characters _ . : -.")
        if name in PRESET_CLAIMS[preset]:
            raise Refused("The claim mapping may not rename a claim onto one of the preset's.")
        if name in checked.values():
            raise Refused("The claim mapping gives one name to two claims.")
        checked[claim] = name
    return checked


def identity_claims(domain: TrustDomain) -> frozenset[str]:
    """Every claim name an identity of ``domain`` can carry: what rules may name."""
    return PRESET_CLAIMS[domain.preset] | frozenset(domain.claim_mapping.values())
