"""Call recording: what a gateway saw of every call it handled, kept by the authority.

The gateway (``authority.gateway``) submits one record per call (``submit``): the
authority checks that the call's token was issued for the submitting server, appends a
``gateway_call`` ledger entry (``ledger.gateway_entries``: digests and sizes, never
bodies) and keeps the bounded heads of the request and response bodies sealed next to
it (``sealing``), in one transaction. Auditors read a recording back with its entry
(``audit``) and check it offline against the signed ledger
(``ledger.verify_recordings``); past ``recording_retention`` the heads are deleted
(``sweeper``) and the entry alone remains.
"""
