"""The versioned cache: answers live only as long as the data version they came from."""

from __future__ import annotations

from marketplane.kernel.versioned_cache import VersionedCache


def test_an_answer_is_served_under_its_own_version_only() -> None:
    # given
    cache = VersionedCache(max_bytes=1000)
    cache.get("v1", "k")
    cache.put("v1", "k", b"old")
    # when
    same = cache.get("v1", "k")
    moved = cache.get("v2", "k")
    # then
    assert same == b"old"
    assert moved is None
    assert len(cache) == 0
    assert (cache.hits, cache.misses) == (1, 2)


def test_an_answer_computed_while_the_version_moved_on_is_not_kept() -> None:
    # given a slow request that saw v1 while another saw v2
    cache = VersionedCache(max_bytes=1000)
    cache.get("v1", "k")
    cache.get("v2", "other")
    # when the slow one finishes
    cache.put("v1", "k", b"computed under v1")
    # then
    assert cache.get("v2", "k") is None


def test_the_least_recently_used_answers_go_first_when_full() -> None:
    # given room for two answers of four bytes
    cache = VersionedCache(max_bytes=8)
    cache.get("v", "a")
    cache.put("v", "a", b"aaaa")
    cache.put("v", "b", b"bbbb")
    cache.get("v", "a")  # a is now the most recently used
    # when
    cache.put("v", "c", b"cccc")
    # then
    assert cache.get("v", "b") is None
    assert cache.get("v", "a") == b"aaaa"
    assert cache.get("v", "c") == b"cccc"


def test_an_answer_larger_than_the_whole_cache_is_not_kept() -> None:
    # given
    cache = VersionedCache(max_bytes=4)
    cache.get("v", "a")
    # when
    cache.put("v", "a", b"too large")
    # then
    assert cache.get("v", "a") is None


def test_a_cache_of_zero_bytes_is_off() -> None:
    assert not VersionedCache(max_bytes=0).enabled
