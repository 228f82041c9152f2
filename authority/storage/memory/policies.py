"""The policy versions port (``storage.policies``) on ``Tables``."""

from __future__ import annotations

from typing import Any

from authority.storage.policies import ChangeEntry, NewPolicy, PolicyVersion, StoredPolicy

from . import Tables


def _info(row: dict[str, Any]) -> PolicyVersion:
    return PolicyVersion(
        row["version"], row["digest"], row["author"], row["comment"], row["created_at"]
    )


class MemoryPolicyStore:
    def __init__(self, tables: Tables) -> None:
        self._tables = tables

    async def active_version(self) -> int | None:
        activations = self._tables.policy_activations
        return int(activations[-1]["version"]) if activations else None

    async def get(self, version: int) -> StoredPolicy | None:
        row = self._tables.policy_versions.get(version)
        return None if row is None else StoredPolicy(_info(row), row["text"])

    async def versions(self) -> list[PolicyVersion]:
        rows = self._tables.policy_versions
        return [_info(rows[number]) for number in sorted(rows, reverse=True)]

    async def create(
        self, policy: NewPolicy, *, actor: str, entry: ChangeEntry, only_first: bool = False
    ) -> PolicyVersion | None:
        rows = self._tables.policy_versions
        if only_first and rows:
            return None
        number = max(rows, default=0) + 1
        info = PolicyVersion(
            number, policy.digest, policy.author, policy.comment, policy.created_at
        )
        written = self._tables.entry_rows([entry(info, await self.active_version())])
        rows[number] = {
            "version": number,
            "text": policy.text,
            "digest": info.digest,
            "author": info.author,
            "comment": info.comment,
            "created_at": info.created_at,
        }
        self._activate(info, actor, policy.created_at)
        self._tables.ledger_entries.extend(written)
        return info

    async def activate(
        self, version: int, *, actor: str, now: int, entry: ChangeEntry
    ) -> PolicyVersion | None:
        row = self._tables.policy_versions.get(version)
        if row is None:
            return None
        info = _info(row)
        written = self._tables.entry_rows([entry(info, await self.active_version())])
        self._activate(info, actor, now)
        self._tables.ledger_entries.extend(written)
        return info

    def _activate(self, info: PolicyVersion, actor: str, now: int) -> None:
        activations = self._tables.policy_activations
        row = {"id": len(activations) + 1, "version": info.version, "actor": actor}
        activations.append({**row, "activated_at": now})
