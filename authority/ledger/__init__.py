"""The tamper-evident ledger: every decision and key event, in the manner of RFC 9162."""
