"""Grants: delegations and the token exchange (RFC 8693) that spends them."""
