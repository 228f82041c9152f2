"""The web console: where a person approves, revokes and pulls the kill switch, and an
auditor reads the ledger.

Served by the authority itself under ``/console`` (``console.web``), on the same
settings and services. People sign in with passkeys (WebAuthn, ``console.passkeys``);
the actions that grant or stop something for good (approving a call, the kill switch,
revoking a delegation, releasing a quarantine) each need a fresh passkey assertion of
their own (``console.ceremonies``), and are recorded with the actor
``console:<person>+passkey``. Everything the console changes goes through the same flow
functions the management API calls; its own rows (people, passkeys, sessions,
challenges) are behind the ``storage.console`` port.
"""
