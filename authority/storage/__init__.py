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

Ports so far: ``introspection`` (RFC 7662), ``revocation`` (RFC 7009), ``exchange``
(RFC 8693 and the CIBA poll), ``clients`` (client authentication, RFC 6749 §2.3 and
RFC 7523 §2.2). ``replay`` holds the single uses (RFC 7523 §3 item 7) they spend.
"""
