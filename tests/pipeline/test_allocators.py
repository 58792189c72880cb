"""The CLI's allocator choices never override the user's (``allocators.py``)."""

from __future__ import annotations

import platform

import pytest

from feishu_followers import allocators
from feishu_followers.allocators import ARENA_VARIABLE, ARROW_POOL_VARIABLE, use_lean_allocators


def test_what_the_user_has_not_chosen_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ARROW_POOL_VARIABLE, raising=False)
    monkeypatch.delenv(ARENA_VARIABLE, raising=False)
    capped: list[int] = []
    monkeypatch.setattr(allocators, "_cap_malloc_arenas", lambda arenas: capped.append(arenas) or True)

    assert use_lean_allocators() == {ARROW_POOL_VARIABLE: "system", ARENA_VARIABLE: "2"}
    assert capped == [2]


def test_the_users_choices_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ARROW_POOL_VARIABLE, "jemalloc")
    monkeypatch.setenv(ARENA_VARIABLE, "8")
    monkeypatch.setattr(
        allocators, "_cap_malloc_arenas", lambda arenas: pytest.fail("the arenas were capped")
    )

    assert use_lean_allocators() == {}
    assert allocators.os.environ[ARROW_POOL_VARIABLE] == "jemalloc"


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt's arena cap is glibc's")
def test_glibc_takes_the_arena_cap() -> None:
    assert allocators._cap_malloc_arenas(allocators.MALLOC_ARENAS)
