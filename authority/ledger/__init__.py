"""The tamper-evident ledger: every decision, revocation and key event, in the manner of RFC 9162."""
