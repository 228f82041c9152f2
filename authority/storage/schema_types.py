"""What every table of the schema shares: the one ``MetaData`` and its naming convention,
and the column types of ids and times (``authority.storage.schema``)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Integer, MetaData, String

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)

ID = String(40)
TIME = BigInteger
# A 64-bit sequence on PostgreSQL; SQLite autoincrements only an INTEGER PRIMARY KEY.
SERIAL = BigInteger().with_variant(Integer, "sqlite")
