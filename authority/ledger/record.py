"""The base of every ledger record and the member types the records are built from.

Shared by every family of entries (``ledger.*_entries``); the bounds are the columns'
(storage/schema.py), so a value that would fail the insert on PostgreSQL fails
validation first.
"""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import BaseModel, ConfigDict, Field

Id = Annotated[str, Field(min_length=1, max_length=40)]
Code = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9_.:-]+$")]
Actor = Annotated[str, Field(min_length=1, max_length=80)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Url = Annotated[str, Field(min_length=1, max_length=2048)]
Text = Annotated[str, Field(max_length=4096)]
Hash = Annotated[str, Field(min_length=1, max_length=64)]
Time = Annotated[int, Field(ge=0, lt=2**53)]
Level = Annotated[int, Field(ge=0, le=3)]


class Record(BaseModel):
    """Base of every record: strict types (no coercion), no unknown members."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    kind: ClassVar[str]
    version: ClassVar[int]
