"""Storage: one narrow port per flow, with its SQL and in-memory implementations.

A flow (``authority.grants``, ...) sees only its port, a ``typing.Protocol`` keyed by
what the flow holds (a token's SHA-256 digest, its ``jti``, a client id), never the
token itself and never a table. ``authority.app.build_services`` chooses the
implementation and puts it on ``Services``; nothing else does.

Layout, one module per port and implementation:

* ``storage/<flow>.py``: the port, the Protocol and the plain values it returns. It imports
  nothing that imports ``authority.context`` (which names every port), so it holds no SQL.
* ``storage/sql/<flow>.py``: the SQL implementation, on SQLite and PostgreSQL. Tables,
  statements, dialect differences and the driver (``storage.driver``) live only here.
* ``storage/memory/<flow>.py``: the in-memory implementation, on the plain dicts of
  ``storage.memory.Tables``, shared by every memory port as the tables are in SQL. For
  tests of the rules; it is not a deployment.

Each port has one contract suite (``tests/contract/``) that every implementation passes.

Ports: ``introspection`` (RFC 7662), ``revocation`` (RFC 7009), ``exchange`` (RFC 8693 and
the CIBA poll), ``clients`` (client authentication, RFC 6749 §2.3 and RFC 7523 §2.2),
``replay`` (the single uses they spend, RFC 7523 §3 item 7), ``ledger_reader``
(the ledger API and its export), ``sequencer`` (the ledger's tree positions and
checkpoints), ``event_reader`` (the revocation feed), ``keys`` (the keyring's, whose
Protocol is ``tokens.keyring.KeyStore``: the tokens import no storage), ``delegations``,
``approval_decisions``, ``webhooks``, ``controls`` (the kill switch and its cascade),
``containment``, ``recordings`` (the gateway's call records), ``console`` (the web
console's people, passkeys, sessions and challenges), and the management
registries ``owners``, ``agents``, ``api_keys``, ``resource_servers`` and ``tools``, which
share ``registry`` (a row replaced only if it is still the one read, a taken name as a
value).

Besides the ports, ``storage/sql/`` holds the SQL blocks every writer shares within its
own transaction: ``ledger`` (appending an entry: so the ledger ports' SQL is
``sql/ledger_reader`` and ``sql/sequencer``), ``events`` (recording a revocation event),
``records`` and ``columns``. ``storage/migrations/`` is the schema's Alembic history.

Where what a write records depends on what its transaction reads under a lock (the
agent a delegation is for, the owner's webhook before the change, the objects a batch
of the kill's cascade stops), the port takes a plain function of those values from the
flow: it checks them (raising the flow's error, which writes nothing) and returns the
ledger entries, so the rules and the entries stay the flow's and the transaction stays
one.
"""
