"""Workload identity: tokens from the platforms agents run on, trusted per trust domain.

A trust domain is an issuer of workload tokens the authority trusts (a SPIFFE JWT-SVID
issuer, a Kubernetes cluster's service-account issuer, a CI provider's OIDC issuer, or
any OIDC issuer such as Entra or Okta), pinned to its issuer and audience. A platform
token verified under a domain becomes a ``WorkloadIdentity``: the domain, the subject
and the claims the domain's preset maps, which agents' identity rules are matched
against and which the exchange carries into the grant, the ledger and the token.

- ``model``: the values (``TrustDomain``, ``WorkloadIdentity``, ``IdentityRule``);
- ``verify``: ``WorkloadVerifier.verify(domain, token, now)``, the only producer of a
  ``WorkloadIdentity``, raising ``WorkloadRejected`` or ``IssuerUnavailable``;
- ``keys``: each domain's key cache (discovery, JWKS URL, static JWKS, SPIFFE bundle);
- ``addresses``: where keys may be fetched from (public https hosts, never the
  authority's own network), checked again on the addresses a host resolves to;
- ``presets``: each platform's token shape and the claims an identity keeps;
- ``patterns`` and ``rules``: rule patterns, and ``parse_rule`` for rules from outside;
- ``checks``: ``check_trust_domain``, for a domain from outside.
"""
