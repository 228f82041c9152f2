"""The package's layering, read from the source: every import of every module of
``authority``, at the top or inside a function, under ``TYPE_CHECKING`` or not.

A function-local import hides a cycle from the interpreter, not from a reader, so the
graph counts it like any other.
"""

from __future__ import annotations

import ast
import itertools
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "authority"

#: Where Starlette may be imported: HTTP lives at the edges, the domain never sees it
#: (CONVENTIONS: "Endpoints hold no business rules; the domain never imports Starlette").
STARLETTE_ALLOWED = (
    "authority.endpoints",
    "authority.app",
    "authority.asgi",
    "authority.demo",
    "authority.cli",
    "authority.sdk.middleware",
    "authority.sdk.resource_metadata",  # the middleware's RFC 9728 document, an ASGI reply
    "authority.console.web",  # the console's pages
)

#: Who may import ``authority.app``: the programs that start the authority, nothing it runs.
APP_IMPORTERS = ("authority.asgi", "authority.cli", "authority.demo", "authority.demo_gateway")


@dataclass(frozen=True, slots=True)
class Import:
    source: str  # the importing module
    target: str  # the imported module (an ``authority`` module) or top-level name
    line: int


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _resolve(name: str) -> str | None:
    """The ``authority`` module ``name`` refers to (a module, or a name in one)."""
    modules = _modules()
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports_of(module: str, path: Path) -> Iterator[Import]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, _resolve(alias.name) or alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                origin = ".".join([*base, *([node.module] if node.module else [])])
            else:
                origin = node.module or ""
            for alias in node.names:
                # ``from pkg import mod`` imports the module ``pkg.mod``; ``from mod import
                # name`` imports ``mod``.
                target = _resolve(f"{origin}.{alias.name}") or _resolve(origin) or origin
                yield Import(module, target, node.lineno)


@cache
def _imports() -> tuple[Import, ...]:
    found: list[Import] = []
    for module, path in _modules().items():
        found.extend(i for i in _imports_of(module, path) if i.target != module)
    return tuple(found)


def _internal(imports: tuple[Import, ...]) -> dict[str, dict[str, int]]:
    graph: dict[str, dict[str, int]] = {m: {} for m in _modules()}
    for i in imports:
        if i.target in graph:
            graph[i.source].setdefault(i.target, i.line)
    return graph


def _cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """One cycle through each strongly connected component that has one (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)

    cycles = []
    for component in components:
        start = min(component)
        # Breadth-first within the component: the shortest way back to ``start``.
        paths = {start: [start]}
        queue = [start]
        found: list[str] | None = None
        while queue and found is None:
            node = queue.pop(0)
            for nxt in sorted(graph[node]):
                if nxt == start:
                    found = [*paths[node], start]
                    break
                if nxt in component and nxt not in paths:
                    paths[nxt] = [*paths[node], nxt]
                    queue.append(nxt)
        assert found is not None
        cycles.append(found)
    return cycles


def _describe(cycle: list[str], graph: dict[str, dict[str, int]]) -> str:
    hops = [f"{a} (line {graph[a][b]})" for a, b in itertools.pairwise(cycle)]
    return " -> ".join([*hops, cycle[-1]])


def _violations(rule: str, imports: list[Import]) -> str:
    lines = [f"  {i.source} imports {i.target} (line {i.line})" for i in dict.fromkeys(imports)]
    return "\n".join([rule, *lines])


# --- the rules --------------------------------------------------------------------------
def test_the_graph_sees_every_module_and_local_imports() -> None:
    """The parser itself: a broken walk would make every rule below pass vacuously."""
    modules = _modules()
    assert "authority.protocol" in modules
    assert "authority.sdk.verifier" in modules
    graph = _internal(_imports())
    assert "authority.protocol" in graph["authority.sdk.verifier"]
    # authority/cli.py imports its subcommands inside a function.
    assert "authority.tokens.commands" in graph["authority.cli"]


def test_no_import_cycles() -> None:
    graph = _internal(_imports())
    cycles = [_describe(c, graph) for c in _cycles(graph)]
    assert not cycles, "import cycles:\n  " + "\n  ".join(cycles)


def test_the_sdk_shares_only_the_protocol_with_the_server() -> None:
    """Resource servers and agents install the SDK without the server's dependencies."""
    bad = [
        i
        for i in _imports()
        if _within(i.source, "authority.sdk")
        and _within(i.target, "authority")
        and not _within(i.target, "authority.sdk")
        and i.target != "authority.protocol"
    ]
    assert not bad, _violations("the SDK imports the server:", bad)


def test_the_protocol_imports_only_the_standard_library() -> None:
    bad = [
        i
        for i in _imports()
        if i.source == "authority.protocol"
        and i.target.partition(".")[0] not in sys.stdlib_module_names
        and i.target != "__future__"
    ]
    assert not bad, _violations("authority.protocol imports beyond the standard library:", bad)


def test_only_the_http_edges_import_starlette() -> None:
    bad = [
        i
        for i in _imports()
        if _within(i.target, "starlette")
        and not any(_within(i.source, allowed) for allowed in STARLETTE_ALLOWED)
    ]
    assert not bad, _violations("Starlette outside the HTTP edges:", bad)


def test_tokens_import_neither_storage_nor_the_app() -> None:
    bad = [
        i
        for i in _imports()
        if _within(i.source, "authority.tokens")
        and (_within(i.target, "authority.storage") or _within(i.target, "authority.app"))
    ]
    assert not bad, _violations("authority.tokens reaches into storage or the app:", bad)


def test_only_the_programs_import_the_app() -> None:
    """``app.py`` wires everything, so anything it runs importing it is a cycle of layers."""
    bad = [
        i
        for i in _imports()
        if _within(i.target, "authority.app") and i.source not in APP_IMPORTERS
    ]
    assert not bad, _violations("authority.app imported by what it wires:", bad)


#: Longest module, in lines: past it a module holds more than one concept, to be split.
MAX_MODULE_LINES = 400
#: Alembic's generated migrations are history, not code to read: never split.
GENERATED = PACKAGE / "storage" / "migrations" / "versions"


def test_no_module_is_longer_than_the_limit() -> None:
    long = {
        name: lines
        for name, path in _modules().items()
        if not path.is_relative_to(GENERATED)
        and (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert "authority.protocol" in _modules()  # the walk found the modules at all
    assert not long, f"modules over {MAX_MODULE_LINES} lines (split by concept): {long}"


#: The flows whose storage is a port (``authority.storage``): they see it, never SQL.
PORTED_FLOWS = (
    "authority.grants.introspection",
    "authority.grants.revocation",
    "authority.ledger.store",
    "authority.ledger.sequencer",
    "authority.ledger.cli",
    "authority.endpoints.ledger",
    "authority.revocations.events",
    "authority.revocations.feed",
    "authority.endpoints.feed",
    "authority.grants.delegations",
    "authority.approvals.decisions",
    "authority.approvals.webhooks",
    "authority.approvals.webhook_registration",
    "authority.management.controls",
    "authority.management.cascade",
    "authority.containment",
    "authority.recordings.submit",
    "authority.recordings.audit",
    "authority.recordings.sweeper",
    "authority.management.agents",
    "authority.management.api_keys",
    "authority.management.auth",
    "authority.management.autonomy",
    "authority.management.changes",
    "authority.management.lifecycle",
    "authority.management.owners",
    "authority.management.paging",
    "authority.management.records",
    "authority.management.resource_servers",
    "authority.management.tools",
    "authority.console.people",
    "authority.console.ceremonies",
    "authority.console.sessions",
    "authority.console.activity",
    "authority.console.audit",
    "authority.console.charts",
    "authority.console.recordings",
    "authority.grants.token_exchange",
    "authority.grants.ciba",
    "authority.grants.agent_auth",
    "authority.grants.client_auth",
    "authority.grants.decision",
    "authority.grants.issuance",
    "authority.grants.loading",
    "authority.grants.recording",
    "authority.approvals.requests",
    "authority.policy.active",
    "authority.policy.versions",
    "authority.management.policies",
    "authority.management.policy_dry_run",
    "authority.endpoints.policies",
)
#: What a flow behind a port may not import: tables, statements, drivers, implementations.
STORAGE_INTERNALS = (
    "authority.storage.schema",
    "authority.storage.driver",
    "authority.storage.database",
    "authority.storage.sql",
    "authority.storage.memory",
    "sqlalchemy",
)
#: The SQL building blocks the flows not yet behind a port still share (column sets, the
#: ledger append, the revocation-event insert, registry rows): each leaves this list when
#: its last user outside ``storage/`` is behind a port.
SHARED_SQL = (
    "authority.storage.sql.columns",
    "authority.storage.sql.ledger",
    "authority.storage.sql.events",
    "authority.storage.sql.records",
)


def test_flows_behind_a_port_build_no_sql() -> None:
    bad = [
        i
        for i in _imports()
        if i.source in PORTED_FLOWS and any(_within(i.target, t) for t in STORAGE_INTERNALS)
    ]
    assert not bad, _violations("a flow behind a storage port reaches past it:", bad)


def test_only_the_app_chooses_a_port_implementation() -> None:
    """``storage/sql/`` and ``storage/memory/`` are chosen in ``app.py`` (tests aside)."""
    bad = [
        i
        for i in _imports()
        if (
            _within(i.target, "authority.storage.sql")
            or _within(i.target, "authority.storage.memory")
        )
        and i.target not in SHARED_SQL
        and i.source != "authority.app"
        and not _within(i.source, "authority.storage.sql")
        and not _within(i.source, "authority.storage.memory")
    ]
    assert not bad, _violations("a storage implementation chosen outside app.py:", bad)


#: What may name SQL types outside ``storage/``: ``app.py`` makes the engine and the driver
#: and chooses every port's implementation; ``context.py`` declares ``Services``, which
#: carries them for ``app.py``'s start and stop and the readiness probe. No flow reads them
#: (``test_no_flow_reaches_the_database_handles``).
WIRING = ("authority.app", "authority.context")
#: What only ``storage/`` (and the wiring) may import.
SQL_INSIDE_STORAGE = (
    "authority.storage.schema",
    "authority.storage.sql",
    "authority.storage.driver",
    "authority.storage.database",
    "sqlalchemy",
)


def _reaches_sql(i: Import) -> bool:
    return (
        not _within(i.source, "authority.storage")
        and i.source not in WIRING
        and any(_within(i.target, t) for t in SQL_INSIDE_STORAGE)
    )


def test_the_schema_is_imported_only_inside_storage() -> None:
    """Tables, SQL, the engine and the driver live in ``storage/``: a flow outside it sees
    its port."""
    bad = [i for i in _imports() if _reaches_sql(i)]
    assert not bad, _violations("SQL outside storage/ (put the flow behind a port):", bad)


#: The database handles ``Services`` carries for the wiring (``context.Services``).
DATABASE_HANDLES = frozenset({"engine", "reader", "sql"})
#: Who may use them: the wiring, and the readiness probe (it asks the database to answer
#: through ``storage.readiness``).
HANDLE_USERS = ("authority.app", "authority.endpoints.health")


def _holder(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    return node.attr if isinstance(node, ast.Attribute) else None


def test_no_flow_reaches_the_database_handles() -> None:
    """Outside ``storage/`` no module reads ``services.engine``, ``.reader`` or ``.sql``:
    every flow reaches storage through its port."""
    bad = []
    for module, path in _modules().items():
        if _within(module, "authority.storage") or module in HANDLE_USERS:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in DATABASE_HANDLES
                and _holder(node.value) in ("services", "svc")
            ):
                bad.append(f"{module}:{node.lineno} .{node.attr}")
    assert not bad, "a flow uses a database handle instead of its port:\n" + "\n".join(bad)


#: What acts on a decision's outcome: it subscribes to the domain events (wired by
#: ``authority.app``); the decision path publishes and imports none of it.
SIDE_EFFECTS = (
    "authority.containment",
    "authority.containment_calls",
    "authority.approvals.webhooks",
    "authority.metrics",
    "authority.decision_log",
    "authority.traces",
)
#: What decides, and publishes what it decided: the grants, and the gateway's call records.
DECISION_PATH = ("authority.grants", "authority.recordings")


def test_the_grants_import_none_of_the_side_effects() -> None:
    bad = [
        i
        for i in _imports()
        if any(_within(i.source, path) for path in DECISION_PATH)
        and any(_within(i.target, effect) for effect in SIDE_EFFECTS)
    ]
    assert not bad, _violations("the decision path imports a side effect:", bad)
