"""Command-level blocking: each rule type, the evasions it catches, and what it does not."""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from authority.gateway.blocking import (
    BlockingConfigError,
    normalise_text,
    policy_from_config,
    without_sql_comments,
)

SQL = {"name": "no-ddl", "path": "$.sql", "deny": ["DROP", "TRUNCATE"], "normalise": "sql"}
CONFIG: dict[str, Any] = {
    "default": [
        {"name": "no-rm-rf", "path": "$..command", "deny": ["rm -rf", "--no-preserve-root"]}
    ],
    "tools": {
        "sql.query": [
            SQL,
            {
                "name": "no-bare-delete",
                "path": "sql",
                "normalise": "sql",
                "deny_regex": [r"\bdelete\s+from\s+\S+\s*(;|$)"],
            },
        ],
        "payments.send": [
            {"name": "amount-cap", "path": "amount", "max": 100, "min": 0, "required": True},
            {"name": "known-currencies", "path": "currency", "allowed": ["EUR", "USD"]},
            {"name": "known-payees", "path": "payees[*].id", "allowed": [1, 2, 3]},
        ],
        "deploy.run": [
            {"name": "no-force", "path": "force", "equals": True},
            {"name": "not-prod", "path": "$.target.env", "equals": "production"},
        ],
    },
}
POLICY = policy_from_config(CONFIG)


def sql(query: str) -> str | None:
    return POLICY.blocks("sql.query", {"sql": query})


# --- deny: words, whole, normalised -------------------------------------------------------
@pytest.mark.parametrize(
    "query",
    [
        "DROP TABLE users",
        "drop table users",
        "DrOp TaBlE users",
        "TRUNCATE users",
        "select 1;\n\tDROP\n\nTABLE users",  # whitespace of any kind
        "DROP/**/TABLE users",  # a comment between words
        "DR/**/OP TABLE users",  # a comment inside the word
        "D/*a*/R/*b*/O/*c*/P TABLE users",
        "/*!DROP*/ TABLE users",  # MySQL's executable comment runs
        "/*!50000DROP TABLE users*/",
        "select 1 -- harmless\nDROP TABLE users",
        "select '--' ; DROP TABLE users",  # a comment marker in a string hides nothing
        "select 1 # mysql comment\nTRUNCATE users",
        "\uff24\uff32\uff2f\uff30 TABLE users",  # fullwidth letters (NFKC)
        "DR\u200bOP TABLE users",  # a zero-width space inside
        "DR\u00adOP TABLE users",  # a soft hyphen inside
        "select 'DROP'",  # in a string literal: refused (rules err towards refusing)
        "alter table t drop column c",
    ],
)
def test_deny_catches_the_word_however_it_is_written(query: str) -> None:
    assert sql(query) == "no-ddl"


@pytest.mark.parametrize(
    "query",
    [
        "select * from dropbox_files",  # inside a longer word
        "select drop_count from stats",  # _ is a word character
        "select 1",
        "update t set a = 1 where id = 2",
    ],
)
def test_deny_leaves_other_words_alone(query: str) -> None:
    assert sql(query) is None


@pytest.mark.parametrize(
    "query",
    [
        "EXECUTE IMMEDIATE CONCAT('DR', 'OP TABLE users')",
        "PREPARE s FROM CHAR(68,82,79,80); EXECUTE s",
        "select 0x44524f50",
        "DR\u041eP TABLE users",  # a Cyrillic O (U+041E): not the keyword to any database either
    ],
)
def test_what_deny_does_not_catch(query: str) -> None:
    """Commands assembled at run time are not read: deny EXECUTE, PREPARE too if needed."""
    assert sql(query) is None


def test_deny_reads_every_string_under_the_path_keys_included() -> None:
    policy = policy_from_config({"tools": {"t": [{**SQL, "path": "$"}]}})
    assert policy.blocks("t", {"batch": [{"q": "select 1"}, {"q": "drop table x"}]}) == "no-ddl"
    assert policy.blocks("t", {"batch": {"DROP TABLE x": 1}}) == "no-ddl"
    assert policy.blocks("t", {"batch": [{"q": "select 1"}]}) is None


def test_default_rules_apply_to_every_tool_and_phrases_match_whole() -> None:
    assert POLICY.blocks("shell.run", {"command": "rm  -RF /"}) == "no-rm-rf"
    assert POLICY.blocks("sql.query", {"sql": "select 1", "opts": {"command": "rm -rf /"}}) == (
        "no-rm-rf"
    )
    assert POLICY.blocks("shell.run", {"command": "ls --no-preserve-root"}) == "no-rm-rf"
    assert POLICY.blocks("shell.run", {"command": "rm -rfx"}) is None  # not the word
    assert POLICY.blocks("shell.run", {"command": "ls -la"}) is None


def test_exact_normalisation_is_exact() -> None:
    policy = policy_from_config(
        {"tools": {"t": [{"name": "r", "path": "q", "deny": ["DROP"], "normalise": "exact"}]}}
    )
    assert policy.blocks("t", {"q": "DROP x"}) == "r"
    assert policy.blocks("t", {"q": "drop x"}) is None


# --- deny_regex: RE2 ----------------------------------------------------------------------
def test_deny_regex_matches_on_the_normalised_text() -> None:
    assert sql("DELETE FROM users") == "no-bare-delete"
    assert sql("delete   from users ;") == "no-bare-delete"
    assert sql("DELETE/**/FROM users") == "no-bare-delete"
    assert sql("delete from users where id = 1") is None


def test_deny_regex_is_linear_time_on_a_pattern_that_backtracks() -> None:
    """(a+)+$ takes Python's re exponential time on "aaaa…!"; RE2 does not backtrack."""
    policy = policy_from_config(
        {"tools": {"t": [{"name": "r", "path": "q", "deny_regex": ["(a+)+$"]}]}}
    )
    started = time.perf_counter()
    assert policy.blocks("t", {"q": "a" * 50_000 + "!"}) is None
    assert time.perf_counter() - started < 5  # Python's re would not finish at all


# --- max / min ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("amount", "blocked"),
    [
        (100, False),
        (0, False),
        (99.99, False),
        (100.0, False),
        (100.01, True),
        (101, True),
        (-1, True),
        ("50", True),  # a string an upstream might read as a number: refused
        (True, True),
        (None, True),
        ([50], True),
        (float("nan"), True),
        (float("inf"), True),
    ],
)
def test_numeric_bounds(amount: Any, blocked: bool) -> None:
    verdict = POLICY.blocks("payments.send", {"amount": amount, "currency": "EUR"})
    assert verdict == ("amount-cap" if blocked else None)


def test_a_required_argument_that_is_missing_blocks() -> None:
    assert POLICY.blocks("payments.send", {"currency": "EUR"}) == "amount-cap"


# --- allowed ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("arguments", "blocked"),
    [
        ({"currency": "EUR"}, None),
        ({"currency": "GBP"}, "known-currencies"),
        ({"currency": "eur"}, "known-currencies"),  # allowed values are exact
        ({"currency": ["EUR"]}, "known-currencies"),
        ({"payees": [{"id": 1}, {"id": 3.0}]}, None),  # 3.0 is 3 in JSON
        ({"payees": [{"id": 1}, {"id": 4}]}, "known-payees"),
        ({"payees": [{"id": True}]}, "known-payees"),  # true is not 1
        ({"payees": [{"id": "1"}]}, "known-payees"),
        ({"payees": []}, None),  # nothing selected, not required
    ],
)
def test_allowed_values(arguments: dict[str, Any], blocked: str | None) -> None:
    assert POLICY.blocks("payments.send", {"amount": 5, **arguments}) == blocked


# --- equals -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("arguments", "blocked"),
    [
        ({"force": True}, "no-force"),
        ({"force": "true"}, "no-force"),  # an upstream may coerce
        ({"force": " TRUE "}, "no-force"),
        ({"force": False}, None),
        ({"force": 1}, None),
        ({"target": {"env": "Production"}}, "not-prod"),
        ({"target": {"env": "PRODUCTION\u200b"}}, "not-prod"),
        ({"target": {"env": "staging"}}, None),
        ({"target": {"region": "eu"}}, None),
    ],
)
def test_equals(arguments: dict[str, Any], blocked: str | None) -> None:
    assert POLICY.blocks("deploy.run", arguments) == blocked


def test_equals_a_number_or_null() -> None:
    policy = policy_from_config(
        {
            "tools": {
                "t": [
                    {"name": "not-7", "path": "n", "equals": 7},
                    {"name": "not-null", "path": "m", "equals": None},
                ]
            }
        }
    )
    assert policy.blocks("t", {"n": 7.0}) == "not-7"
    assert policy.blocks("t", {"n": "7"}) == "not-7"
    assert policy.blocks("t", {"n": 8}) is None
    assert policy.blocks("t", {"m": None}) == "not-null"
    assert policy.blocks("t", {"m": "null"}) == "not-null"
    assert policy.blocks("t", {"m": 0}) is None


# --- the walk -----------------------------------------------------------------------------
def test_arguments_too_deep_to_judge_are_blocked() -> None:
    deep: Any = "select 1"
    for _ in range(300):
        deep = {"q": deep}
    policy = policy_from_config({"tools": {"t": [{**SQL, "path": "$..q"}]}})
    assert policy.blocks("t", deep) == "no-ddl"


def test_other_tools_are_not_affected_by_a_tools_rules() -> None:
    assert POLICY.blocks("other.tool", {"sql": "DROP TABLE x", "amount": 10**9}) is None


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_blocks_never_raises(text: str) -> None:
    for tool in ("sql.query", "payments.send", "deploy.run"):
        POLICY.blocks(tool, {"sql": text, "amount": text, "force": text, "command": text})


@given(st.text(alphabet="DROPdrop/*!-#\n x'", max_size=60))
def test_comment_removal_only_adds_readings(text: str) -> None:
    """Every word of the text as sent is still read: stripping comments cannot hide one."""
    if "drop" in normalise_text(text).split():
        assert sql(text) == "no-ddl"
    assert len(without_sql_comments(text, "")) <= len(text) + text.count("/*!")


# --- the configuration --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("config", "says"),
    [
        ({"tools": {"t": [{"name": "r", "path": "q"}]}}, "needs exactly one condition"),
        (
            {"tools": {"t": [{"name": "r", "path": "q", "max": 1, "deny": ["x"]}]}},
            "needs exactly one condition",
        ),
        ({"tools": {"t": [{"name": "r", "path": "q[", "max": 1}]}}, "cannot read it"),
        ({"tools": {"t": [{"name": "r", "path": "q", "deny_regex": ["(a"]}]}}, "not an RE2"),
        (
            {"tools": {"t": [{"name": "r", "path": "q", "deny_regex": ["(a)\\1"]}]}},
            "not an RE2",
        ),
        ({"tools": {"t": [{"name": "r", "path": "q", "deny": ["\u200b"]}]}}, "empty once"),
        ({"tools": {"t": [{"name": "r r", "path": "q", "max": 1}]}}, "tools.t.0.name"),
        ({"tools": {"t": [{"name": "r", "path": "q", "max": "1"}]}}, "tools.t.0.max"),
        ({"tools": {"t": [{"name": "r", "path": "q", "max": 1, "when": 1}]}}, "Extra inputs"),
        (
            {
                "default": [{"name": "r", "path": "a", "max": 1}],
                "tools": {"t": [{"name": "r", "path": "b", "max": 1}]},
            },
            "rule names must be unique",
        ),
        ({"tools": {"t": {"name": "r"}}}, "tools.t: Input should be a valid list"),
    ],
)
def test_a_bad_configuration_is_refused_with_where_and_why(
    config: dict[str, Any], says: str
) -> None:
    with pytest.raises(BlockingConfigError) as refused:
        policy_from_config(config)
    assert says in str(refused.value)
