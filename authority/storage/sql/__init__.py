"""The SQL implementations of the storage ports, on SQLite and PostgreSQL (see ``storage``)."""
