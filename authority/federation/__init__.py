"""Workload identity: tokens from the platforms agents run on, trusted per trust domain.

A trust domain is an issuer of workload tokens the authority trusts (a SPIFFE JWT-SVID
issuer, a Kubernetes cluster's service-account issuer, a CI provider's OIDC issuer, or
any OIDC issuer such as Entra or Okta), pinned to its issuer and audience. A platform
token verified under a domain becomes a ``WorkloadIdentity``: the domain, the subject
and the claims the domain's preset maps, which agents' identity rules are matched
against and which the exchange carries into the grant, the ledger and the token.
"""
