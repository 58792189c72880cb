"""The page validators as tables: a page's ``data`` -> its checked content, or why it is malformed."""

from __future__ import annotations

from typing import Any

import pytest

from feishu_tasks.pages import MISSING, Follower, PageError, describe, parse_followers_page, parse_tasks_page

# (id, data, followers, has_more, page_token)
WELL_FORMED = [
    ("no_followers", {"items": [], "has_more": False}, [], False, ""),
    ("fields_omitted", {}, [], False, ""),  # the API omits empty fields: no items, no more
    ("one_page", {"items": [{"id": "ou_1"}, {"id": "ou_2"}], "has_more": False}, ["ou_1", "ou_2"], False, ""),
    ("more", {"items": [{"id": "ou_1"}], "has_more": True, "page_token": "p2"}, ["ou_1"], True, "p2"),
    ("more_without_items", {"has_more": True, "page_token": "p2"}, [], True, "p2"),
    (
        "token_on_last_page",
        {"items": [{"id": "ou_1"}], "has_more": False, "page_token": "x"},
        ["ou_1"],
        False,
        "",
    ),
    ("null_token_on_last_page", {"items": [], "has_more": False, "page_token": None}, [], False, ""),
    (
        "unknown_fields",
        {"items": [{"id": "ou_1", "name": "A"}], "has_more": False, "total": 1},
        ["ou_1"],
        False,
        "",
    ),
    (
        "twice_listed",
        {"items": [{"id": "ou_1"}, {"id": "ou_1"}]},
        ["ou_1", "ou_1"],
        False,
        "",
    ),  # deduped later
]


@pytest.mark.parametrize(
    ("data", "ids", "has_more", "token"), [c[1:] for c in WELL_FORMED], ids=[c[0] for c in WELL_FORMED]
)
def test_well_formed_follower_pages(data: Any, ids: list[str], has_more: bool, token: str) -> None:
    page = parse_followers_page(data)
    assert [f.id for f in page.items] == ids
    assert (page.has_more, page.page_token) == (has_more, token)


def test_id_lists() -> None:
    page = parse_followers_page(
        {"items": [{"id": "ou_1", "id_list": ["a", "b"]}, {"id": "ou_2", "id_list": None}, {"id": "ou_3"}]}
    )
    assert page.items == [Follower("ou_1", ["a", "b"]), Follower("ou_2"), Follower("ou_3")]


# (id, data, the reason): issue 9 cases 2-5 and every shape feishu-api.md does not allow
MALFORMED = [
    ("data_missing", MISSING, "data is missing"),
    ("data_null", None, "data is null, not an object"),
    ("data_list", [{"items": []}], "data is a list of 1, not an object"),
    ("data_string", "ok", "data is a string, not an object"),
    ("items_string", {"items": "ou_1", "has_more": False}, "data.items is a string, not a list"),
    ("items_null", {"items": None, "has_more": False}, "data.items is null, not a list"),
    ("items_object", {"items": {"id": "ou_1"}}, "data.items is an object, not a list"),
    ("items_number", {"items": 3}, "data.items is 3, not a list"),
    ("has_more_string", {"items": [], "has_more": "false"}, "data.has_more is a string, not true or false"),
    ("has_more_null", {"items": [], "has_more": None}, "data.has_more is null, not true or false"),
    ("has_more_number", {"items": [], "has_more": 0}, "data.has_more is 0, not true or false"),
    (
        "more_without_token",
        {"items": [], "has_more": True},
        "data.has_more is true but data.page_token is missing",
    ),
    (
        "more_empty_token",
        {"items": [], "has_more": True, "page_token": ""},
        "data.has_more is true but data.page_token is an empty string",
    ),
    (
        "more_null_token",
        {"items": [], "has_more": True, "page_token": None},
        "data.has_more is true but data.page_token is missing",
    ),
    (
        "token_list",
        {"has_more": True, "page_token": ["a", "b"]},
        "data.page_token is a list of 2, not a string",
    ),
    ("token_number", {"has_more": True, "page_token": 2}, "data.page_token is 2, not a string"),
    (
        "token_too_long",
        {"has_more": True, "page_token": "p" * 5000},
        "data.page_token is a string 5000 characters long, not a page token",
    ),
    (
        "token_list_on_last_page",
        {"has_more": False, "page_token": ["a"]},
        "data.page_token is a list of 1, not a string",
    ),
    ("item_string", {"items": [{"id": "ou_1"}, "ou_2"]}, "data.items[1] is a string, not an object"),
    ("item_null", {"items": [None]}, "data.items[0] is null, not an object"),
    ("item_list", {"items": [["ou_1"]]}, "data.items[0] is a list of 1, not an object"),
    ("id_missing", {"items": [{"name": "A"}]}, "data.items[0].id is missing, not a non-empty string"),
    ("id_null", {"items": [{"id": None}]}, "data.items[0].id is null, not a non-empty string"),
    ("id_empty", {"items": [{"id": ""}]}, "data.items[0].id is an empty string, not a non-empty string"),
    (
        "id_true",
        {"items": [{"id": "ou_1"}, {"id": True}]},
        "data.items[1].id is true, not a non-empty string",
    ),
    ("id_false", {"items": [{"id": False}]}, "data.items[0].id is false, not a non-empty string"),
    ("id_int", {"items": [{"id": 12345}]}, "data.items[0].id is 12345, not a non-empty string"),
    ("id_float", {"items": [{"id": 1.5}]}, "data.items[0].id is 1.5, not a non-empty string"),
    ("id_big_number", {"items": [{"id": 10**40}]}, "data.items[0].id is a number, not a non-empty string"),
    (
        "id_list_value",
        {"items": [{"id": ["a", "b"]}]},
        "data.items[0].id is a list of 2, not a non-empty string",
    ),
    (
        "id_object",
        {"items": [{"id": {"open_id": "a"}}]},
        "data.items[0].id is an object, not a non-empty string",
    ),
    (
        "id_list_string",
        {"items": [{"id": "ou_1", "id_list": "a"}]},
        "data.items[0].id_list is a string, not a list",
    ),
    (
        "id_list_object",
        {"items": [{"id": "ou_1", "id_list": {}}]},
        "data.items[0].id_list is an object, not a list",
    ),
    (
        "id_list_number_inside",
        {"items": [{"id": "ou_1", "id_list": ["a", 7]}]},
        "data.items[0].id_list[1] is 7, not a non-empty string",
    ),
    (
        "id_list_null_inside",
        {"items": [{"id": "ou_1", "id_list": [None]}]},
        "data.items[0].id_list[0] is null, not a non-empty string",
    ),
    (
        "id_list_empty_inside",
        {"items": [{"id": "ou_1", "id_list": [""]}]},
        "data.items[0].id_list[0] is an empty string, not a non-empty string",
    ),
    (
        "id_too_long",
        {"items": [{"id": "o" * 257}]},
        "data.items[0].id is a string 257 characters long, not an id",
    ),
    (
        "id_control_char",
        {"items": [{"id": "ou_1\n"}]},
        "data.items[0].id is a string not printable text, not an id",
    ),
    (
        "id_lone_surrogate",
        {"items": [{"id": "ou_\ud800"}]},
        "data.items[0].id is a string not printable text, not an id",
    ),
    (
        "id_list_too_long",
        {"items": [{"id": "ou_1", "id_list": ["x" * 300]}]},
        "data.items[0].id_list[0] is a string 300 characters long, not an id",
    ),
    (
        "id_list_nested",
        {"items": [{"id": "ou_1", "id_list": [["a"]]}]},
        "data.items[0].id_list[0] is a list of 1, not a non-empty string",
    ),
]


@pytest.mark.parametrize(("data", "reason"), [c[1:] for c in MALFORMED], ids=[c[0] for c in MALFORMED])
def test_malformed_follower_pages(data: Any, reason: str) -> None:
    with pytest.raises(PageError) as caught:
        parse_followers_page(data)
    assert str(caught.value) == reason


def test_a_reason_never_shows_string_content() -> None:
    """Reasons end up in task_fetch_status: what a hostile answer put in a string stays out."""
    secret = "t-echoed-bearer-token-0123456789"
    for data in (
        {"items": [{"id": "ou_1", "id_list": [secret, 7]}]},
        {"items": [secret]},
        {"items": secret},
        {"has_more": secret},
        {"has_more": True, "page_token": [secret]},
    ):
        with pytest.raises(PageError) as caught:
            parse_followers_page(data)
        assert secret not in str(caught.value)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"items": [{"id": "t1"}, {"summary": "x"}]}, "data.items[1].id is missing, not a non-empty string"),
        ({"items": [{"id": 5}]}, "data.items[0].id is 5, not a non-empty string"),
        ({"items": ["t1"]}, "data.items[0] is a string, not an object"),
        ({"items": [], "has_more": True}, "data.has_more is true but data.page_token is missing"),
        (None, "data is null, not an object"),
    ],
)
def test_malformed_task_pages(data: Any, reason: str) -> None:
    with pytest.raises(PageError) as caught:
        parse_tasks_page(data)
    assert str(caught.value) == reason


def test_task_pages_keep_the_task_objects() -> None:
    task = {"id": "t1", "summary": "Ship", "followers": [{"id": "ou_1"}]}
    page = parse_tasks_page({"items": [task], "has_more": True, "page_token": "n"})
    assert (page.items, page.has_more, page.page_token) == ([task], True, "n")


@pytest.mark.parametrize(
    ("value", "text"),
    [(MISSING, "missing"), (None, "null"), (True, "true"), (0, "0"), (-2.5, "-2.5"), (10**30, "a number")]
    + [("", "an empty string"), ("x", "a string"), ([], "a list of 0"), ({}, "an object"), (b"x", "a bytes")],
)
def test_describe(value: Any, text: str) -> None:
    assert describe(value) == text
