"""Human in the loop: approvals in the manner of OpenID CIBA (poll mode) and owner webhooks."""
