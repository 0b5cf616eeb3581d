"""The query language (SPEC 3.9): a table of queries over a fixed set of versions, the error
messages with their columns, and Hypothesis: any text parses and compiles or is Invalid."""

import datetime as dt
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from approvals.services import request_approve, request_create
from registry.errors import Invalid
from registry.models import Branch, LockLevel, ModelVersion, Visibility
from registry.query import (
    MAX_DEPTH,
    MAX_LENGTH,
    PLAIN_FIELDS,
    And,
    Comparison,
    Not,
    Or,
    compile_query,
    parse,
    search_versions,
)
from registry.services.aliases import alias_set
from registry.services.registered_models import model_create, model_grant
from registry.services.versions import version_create

PAST = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)


def _move_to(version, stage, *, requester, reviewer):
    request = request_approve(
        actor=reviewer,
        request=request_create(actor=requester, version=version, to_stage=stage),
    )
    assert request.status == "approved"


@pytest.fixture
def versions(model, admin, alice, bob):
    """fraud/1..3 (carol may view) and secret/1 (private: admin and bob only)."""
    with mock.patch("django.utils.timezone.now", return_value=PAST):
        v1 = version_create(
            actor=alice,
            model=model,
            label="1.0.0",
            framework="sklearn",
            flavor="python_function",
            params={"lr": 0.001, "optimizer": "adam", "early_stop": True},
            metrics={"auc": 0.95, "f1": 0.8},
            tags={"team": "nlp", "owner": "Alice"},
        )
    v2 = version_create(
        actor=alice,
        model=model,
        lock_level=LockLevel.REDACT,
        label="1.4.0",
        framework="pytorch",
        params={"lr": 0.05, "optimizer": "sgd", "early_stop": False},
        metrics={"auc": 0.85},
        tags={"team": "vision"},
    )
    Branch.objects.create(model=model, name="exp", protected=False)
    v3 = version_create(
        actor=alice,
        model=model,
        branch="exp",
        lock_level=LockLevel.CLOSED,
        params={"lr": "auto"},
    )
    _move_to(v1, "production", requester=alice, reviewer=bob)
    _move_to(v2, "staging", requester=alice, reviewer=bob)
    alias_set(actor=alice, model=model, name="champion", version=v2)
    alias_set(actor=alice, model=model, name="prod-eu", version=v1)

    secret = model_create(actor=admin, org=model.org, name="secret", visibility=Visibility.PRIVATE)
    model_grant(actor=admin, model=secret, permission="approve", user=bob)
    s1 = version_create(
        actor=admin,
        model=secret,
        params={"lr": 0.001},
        metrics={"auc": 0.99},
        tags={"team": "nlp"},
    )
    _move_to(s1, "development", requester=admin, reviewer=bob)
    return {"fraud/1": v1, "fraud/2": v2, "fraud/3": v3, "secret/1": s1}


ALL = {"fraud/1", "fraud/2", "fraud/3", "secret/1"}

TABLE = [
    ("stage == staging", {"fraud/2"}),
    ("stage == STAGING", {"fraud/2"}),
    ('stage == "Production"', {"fraud/1"}),
    ("stage != production", ALL - {"fraud/1"}),
    ("stage in (staging, production)", {"fraud/1", "fraud/2"}),
    ("stage not in (staging, production)", {"fraud/3", "secret/1"}),
    ("stage == development", {"secret/1"}),
    ("lock_level != open", {"fraud/2", "fraud/3"}),
    ("lock_level >= redact", {"fraud/2", "fraud/3"}),
    ("lock_level < closed", {"fraud/1", "fraud/2", "secret/1"}),
    ("lock_level == Closed", {"fraud/3"}),
    ('tags.team == "nlp"', {"fraud/1", "secret/1"}),
    ("tags.team == nlp", {"fraud/1", "secret/1"}),
    ('tags.team != "nlp"', {"fraud/2", "fraud/3"}),
    ('tags.owner ~ "ali"', {"fraud/1"}),
    ("tags.team in (vision, nlp)", {"fraud/1", "fraud/2", "secret/1"}),
    ("tags.missing == x", set()),
    ("metrics.auc >= 0.9", {"fraud/1", "secret/1"}),
    ("metrics.auc > 0.85", {"fraud/1", "secret/1"}),
    ("metrics.auc <= 0.85", {"fraud/2"}),
    ("metrics.auc == 0.85", {"fraud/2"}),
    ("metrics.auc != 0.85", ALL - {"fraud/2"}),
    ("not metrics.auc >= 0.9", {"fraud/2", "fraud/3"}),
    ("metrics.f1 < 1", {"fraud/1"}),
    ("metrics.auc in (0.95, 0.99)", {"fraud/1", "secret/1"}),
    ("params.lr < 0.01", {"fraud/1", "secret/1"}),
    ("params.lr >= 0.01", {"fraud/2"}),
    ("params.lr == 0.001", {"fraud/1", "secret/1"}),
    ('params.lr == "auto"', {"fraud/3"}),
    ("params.lr ~ aut", {"fraud/3"}),
    ("params.optimizer == adam", {"fraud/1"}),
    ("params.optimizer in (adam, sgd)", {"fraud/1", "fraud/2"}),
    ("params.early_stop == true", {"fraud/1"}),
    ("params.early_stop == FALSE", {"fraud/2"}),
    ("branch == main", {"fraud/1", "fraud/2", "secret/1"}),
    ("branch == exp", {"fraud/3"}),
    ('label ~ "1.4"', {"fraud/2"}),
    ("label == 1.0.0", {"fraud/1"}),
    ('label != "1.0.0"', ALL - {"fraud/1"}),
    ("framework == pytorch", {"fraud/2"}),
    ("framework ~ SK", {"fraud/1"}),
    ("flavor == python_function", {"fraud/1"}),
    ("number == 1", {"fraud/1", "secret/1"}),
    ("number > 1", {"fraud/2", "fraud/3"}),
    ("number in (2, 3)", {"fraud/2", "fraud/3"}),
    ("model == secret", {"secret/1"}),
    ("model ~ FRA and number <= 2", {"fraud/1", "fraud/2"}),
    ("alias == champion", {"fraud/2"}),
    ("alias in (champion, prod-eu)", {"fraud/1", "fraud/2"}),
    ("alias != champion", ALL - {"fraud/2"}),
    ("alias ~ prod", {"fraud/1"}),
    ("flagged == true", set()),
    ("flagged == false", ALL),
    ("flagged != true", ALL),
    ('created_at > "2026-01-01"', {"fraud/2", "fraud/3", "secret/1"}),
    ('created_at < "2026-01-01"', {"fraud/1"}),
    ('created_at == "2025-06-01"', {"fraud/1"}),
    ('created_at > "2025-06-01"', {"fraud/2", "fraud/3", "secret/1"}),
    ('created_at >= "2025-06-01T12:00:00Z"', ALL),
    ('created_at > "2025-06-01T12:00:00Z"', {"fraud/2", "fraud/3", "secret/1"}),
    ('created_at <= "2025-06-01T14:00:00+02:00"', {"fraud/1"}),
    ("stage == staging or stage == production", {"fraud/1", "fraud/2"}),
    ("stage == staging or stage == production and metrics.auc > 0.9", {"fraud/1", "fraud/2"}),
    ("(stage == staging or stage == production) and metrics.auc > 0.9", {"fraud/1"}),
    ("not stage == staging and not stage == production", {"fraud/3", "secret/1"}),
    ("not (stage == staging or tags.team == nlp)", {"fraud/3"}),
    ("not not number == 3", {"fraud/3"}),
    ("NOT number == 3 AND model == fraud", {"fraud/1", "fraud/2"}),
    ("metrics.auc>=0.9 and tags.team==nlp", {"fraud/1", "secret/1"}),
]


def _found(queryset) -> set[str]:
    return {f"{v.model.name}/{v.number}" for v in queryset.select_related("model")}


@pytest.mark.parametrize(("query", "expected"), TABLE, ids=[q for q, _ in TABLE])
def test_it_answers_the_table(versions, query, expected):
    assert _found(search_versions(ModelVersion.objects.all(), query)) == expected


def test_it_keeps_results_to_what_the_caller_may_view(versions, carol, bob):
    query = 'tags.team == "nlp"'
    assert _found(search_versions(ModelVersion.objects.visible_to(carol), query)) == {"fraud/1"}
    assert _found(search_versions(ModelVersion.objects.visible_to(bob), query)) == {
        "fraud/1",
        "secret/1",
    }


def test_it_leaves_a_blank_query_alone(versions):
    queryset = ModelVersion.objects.all()
    assert _found(search_versions(queryset, "  ")) == ALL
    assert _found(search_versions(queryset, None)) == ALL


def test_it_matches_open_flags_through_the_flag_hook(versions):
    # `flagged` compiles through the one hook (real flags: tests/registry/test_flags.py).
    from django.db.models import Q

    from registry.query import compile as compiler

    v2 = versions["fraud/2"]
    with mock.patch.object(compiler, "flag_condition", return_value=Q(pk=v2.pk)):
        assert _found(search_versions(ModelVersion.objects.all(), "flagged == true")) == {"fraud/2"}
        assert _found(search_versions(ModelVersion.objects.all(), "flagged == false")) == ALL - {
            "fraud/2"
        }


def test_it_parses_with_precedence_not_and_or():
    tree = parse("not number == 1 or stage == staging and branch == main")
    assert isinstance(tree, Or)
    assert isinstance(tree.operands[0], Not)
    assert isinstance(tree.operands[1], And)


def test_it_reads_strings_with_escapes():
    tree = parse(r'tags.note == "say \"hi\" \\ bye"')
    assert isinstance(tree, Comparison)
    assert tree.values[0].value == 'say "hi" \\ bye'


ERRORS = [
    ("metrics.auc >= ", "at column 15: expected a value after '>=', found the end"),
    ("stage == ", "at column 9: expected a value after '=='"),
    ("stage = staging", "at column 7: expected '=='"),
    ("stage staging", "at column 7: expected an operator"),
    ("", "at column 1: expected a field name"),
    ("and stage == staging", "at column 1: expected a field name, found 'and'"),
    ("stage == staging and", "at column 21: expected a field name, found the end"),
    ("stage == staging stage", "at column 18: expected 'and', 'or' or the end"),
    ("(stage == staging", "at column 18: expected ')'"),
    ("stage == staging)", "at column 17: expected 'and', 'or' or the end"),
    ('label == "1.0', "at column 10: expected a closing '\"'"),
    ("stage in staging", "at column 10: expected '(' to open the list"),
    ("stage in (staging,)", "at column 19: expected a value after ','"),
    ("stage in (staging production)", "at column 19: expected ',' or ')'"),
    ("colour == red", "at column 1: unknown field 'colour'; known fields: stage, lock_level"),
    ("tags == x", "at column 1: expected a key after 'tags.'"),
    ("tags. == x", "at column 1: expected a key after 'tags.'"),
    ("stage == shipped", "at column 10: expected one of unassigned, development"),
    ("stage > staging", "at column 7: '>' does not apply to stage"),
    ("number == 1.5", "at column 11: expected a whole number for number"),
    ("number == 99999999999", "at column 11: the version number 99999999999 is out of range"),
    ("metrics.auc >= high", "at column 16: expected a number for metrics.auc"),
    ("tags.team < x", "at column 11: '<' does not apply to tags.team"),
    ('created_at > "2026-13-01"', "at column 14: expected an ISO date or time"),
    ('created_at > "yesterday"', "at column 14: expected an ISO date or time"),
    ("created_at > 5", "at column 14: expected a date"),
    ("flagged == maybe", "at column 12: expected true or false for flagged"),
    ("flagged > true", "at column 9: '>' does not apply to flagged"),
    ("metrics.auc > 1e999", "at column 15: the number 1e999 is out of range"),
    ("stage == staging\x00", "at column 17: unexpected control character"),
    ('tags.a == "\x00"', "at column 12: unexpected control character"),
    ('tags.a == "\ud800"', "at column 12: unexpected control character"),
    ("stage == $x", "at column 10: unexpected character '$'"),
    (r'tags.a == "x\n"', 'at column 13: expected \\" or \\\\ after a backslash'),
]


@pytest.mark.parametrize(("query", "message"), ERRORS, ids=[q for q, _ in ERRORS])
def test_it_names_the_position_and_what_was_expected(query, message):
    with pytest.raises(Invalid) as raised:
        compile_query(query)
    assert raised.value.message.startswith(message), raised.value.message
    column = int(message.split()[2].rstrip(":"))
    assert raised.value.details["column"] == column


def test_it_refuses_pathological_queries():
    with pytest.raises(Invalid, match=f"longer than {MAX_LENGTH}"):
        parse("number == 1 or " * 200 + "number == 1")
    with pytest.raises(Invalid, match=f"deeper than {MAX_DEPTH}"):
        parse("(" * 40 + "number == 1" + ")" * 40)
    with pytest.raises(Invalid, match=f"deeper than {MAX_DEPTH}"):
        parse("not " * 40 + "number == 1")
    with pytest.raises(Invalid, match="more than 100 comparisons"):
        parse(" or ".join(["number==1"] * 101))
    parse("(" * MAX_DEPTH + "number == 1" + ")" * MAX_DEPTH)


def test_it_refuses_what_is_not_text():
    with pytest.raises(Invalid):
        parse(42)  # type: ignore[arg-type]


# --- Hypothesis ----------------------------------------------------------------------------

VOCABULARY = [
    *PLAIN_FIELDS,
    "tags.team",
    "metrics.auc",
    "params.lr",
    "params.1",
    "colour",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "~",
    "=",
    "in",
    "not",
    "and",
    "or",
    "(",
    ")",
    ",",
    "staging",
    "Production",
    "closed",
    "main",
    "champion",
    "true",
    "false",
    "0",
    "1",
    "-3",
    "0.9",
    "1e308",
    "1.4.0",
    "99999999999999999999",
    '"nlp"',
    '"2026-01-01"',
    '"2026-01-01T12:00:00Z"',
    '"with \\" quote"',
    '"%_"',
    '"',
    "\\",
]

near_valid = st.lists(st.sampled_from(VOCABULARY), max_size=14).map(" ".join)

comparison = st.builds(
    lambda f, op, v: f"{f} {op} {v}",
    st.sampled_from(VOCABULARY[:16]),
    st.sampled_from(["==", "!=", "<", "<=", ">", ">=", "~"]),
    st.sampled_from(VOCABULARY[32:51]) | st.text(max_size=5).map(lambda s: '"' + s + '"'),
)
composed = st.recursive(
    comparison,
    lambda inner: (
        st.builds(lambda a, b: f"({a}) and {b}", inner, inner)
        | st.builds(lambda a, b: f"{a} or {b}", inner, inner)
        | inner.map(lambda a: f"not ({a})")
    ),
    max_leaves=6,
)


def _compiles_or_invalid(text: str):
    try:
        return compile_query(text)
    except Invalid as error:
        assert error.message.startswith("at column ") or error.message == "a query is text"
        return None


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_it_parses_any_text_or_says_invalid(text):
    _compiles_or_invalid(text)


@pytest.mark.django_db
@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(text=st.one_of(near_valid, composed, st.text(max_size=60)))
def test_it_runs_every_compiled_query_against_the_database(versions, text):
    q = _compiles_or_invalid(text)
    if q is not None:
        list(ModelVersion.objects.filter(q).values_list("pk", flat=True))


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


printable = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=4)
numbers = st.integers(-5, 5) | st.floats(-2, 2, allow_nan=False).map(lambda x: round(x, 3))
VALID = [
    ("stage", ["==", "!="], st.sampled_from(["staging", "Production", "development"])),
    ("lock_level", ["==", "!=", "<", "<=", ">", ">="], st.sampled_from(["open", "closed"])),
    ("number", ["==", "!=", "<", "<=", ">", ">="], st.integers(0, 5).map(str)),
    ("metrics.auc", ["==", "!=", "<", "<=", ">", ">="], numbers.map(str)),
    ("params.lr", ["==", "!=", "<", ">="], numbers.map(str)),
    ("params.lr", ["==", "!=", "~"], printable.map(_quoted)),
    ("params.early_stop", ["==", "!="], st.sampled_from(["true", "false"])),
    ("tags.team", ["==", "!=", "~"], printable.map(_quoted) | st.sampled_from(["nlp"])),
    ("label", ["==", "!=", "~"], printable.map(_quoted) | st.sampled_from(["1.4.0"])),
    ("branch", ["==", "!="], st.sampled_from(["main", "exp"])),
    ("alias", ["==", "!=", "~"], st.sampled_from(["champion", "prod-eu", "x"])),
    ("flagged", ["==", "!="], st.sampled_from(["true", "false"])),
    (
        "created_at",
        ["==", "!=", "<", "<=", ">", ">="],
        st.sampled_from(['"2025-06-01"', '"2026-01-01"', '"2025-06-01T12:00:00Z"']),
    ),
]
valid_comparison = st.sampled_from(VALID).flatmap(
    lambda spec: st.builds(
        lambda op, value: f"{spec[0]} {op} {value}", st.sampled_from(spec[1]), spec[2]
    )
)
valid_query = st.recursive(
    valid_comparison,
    lambda inner: (
        st.builds(lambda a, b: f"({a}) and ({b})", inner, inner)
        | st.builds(lambda a, b: f"({a}) or ({b})", inner, inner)
        | inner.map(lambda a: f"not ({a})")
    ),
    max_leaves=5,
)


@pytest.mark.django_db
@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(text=valid_query)
def test_it_splits_the_versions_between_a_query_and_its_negation(versions, text):
    # Compiles, runs, and `not` is the exact complement: no version lost to NULLs.
    matched = _found(search_versions(ModelVersion.objects.all(), text))
    unmatched = _found(search_versions(ModelVersion.objects.all(), f"not ({text})"))
    assert matched | unmatched == ALL
    assert not matched & unmatched


@pytest.mark.postgres
def test_the_tags_index_is_searched_without_a_pending_list(db):
    """GIN's pending list (fastupdate) would make every tag search read through the entries
    of recent registrations until a VACUUM merges them: migration 0007 turns it off."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reloptions FROM pg_class WHERE relname = %s", ["registry_modelversion_tags_gin"]
        )
        assert cursor.fetchone()[0] == ["fastupdate=off"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, {}),
        ("  ", {}),
        ("stage == production", {"stage": "production"}),
        ("stage == Production", {"stage": "production"}),
        (
            'stage == "staging" and lock_level == closed',
            {"stage": "staging", "lock_level": "closed"},
        ),
        ("stage != production", None),
        ("stage in (staging, production)", None),
        ("stage == production or stage == staging", None),
        ("not stage == production", None),
        ("stage == production and stage == staging", None),
        ("stage == production and number == 3", None),
        ('tags.stage == "production"', None),
        ("(stage == production)", {"stage": "production"}),
    ],
)
def test_a_query_of_plain_equalities_reads_as_its_columns(text, expected):
    from registry.query import column_equalities

    assert column_equalities(text) == expected


def test_a_malformed_query_is_refused_before_its_equalities_are_read():
    from registry.query import column_equalities

    with pytest.raises(Invalid, match="expected one of"):
        column_equalities("stage == live")
    with pytest.raises(Invalid):
        column_equalities("stage ==")


def test_a_query_is_parsed_once_for_its_equalities_and_a_malformed_one_refused_each_time(
    monkeypatch,
):
    from registry.query import column_equalities
    from registry.query import compile as compiled

    parsed = []
    parse = compiled.parse
    monkeypatch.setattr(compiled, "parse", lambda text: parsed.append(text) or parse(text))
    compiled._equalities.cache_clear()
    answer = column_equalities("stage == staging")
    answer["stage"] = "production"  # the caller's own dict: the next answer is the same
    assert column_equalities("stage == staging") == {"stage": "staging"}
    assert parsed == ["stage == staging"]
    for _ in range(2):
        with pytest.raises(Invalid, match="expected one of"):
            column_equalities("stage == live")
    assert parsed.count("stage == live") == 2
