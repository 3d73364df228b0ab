"""The local driver restores in place: a tree restored beside production's (or an env's) directory, swapped in
whole, the old one kept when asked, and nothing changed when the restore fails."""
from __future__ import annotations

import pytest

from core.cloud import ResourceMissing


def fill_with(text: str):
    def restore(into):
        into.mkdir(parents=True)
        (into / "restored.txt").write_text(text)
    return restore


def test_production_is_replaced_whole_and_its_old_tree_kept_beside_it(production, driver):
    root, _entry = production
    before = sorted(p.name for p in root.iterdir())

    kept = driver.restore_in_place("shop", fill_with("from backup b1"), keep_old=True, label="failback-b1")

    assert driver.production_root("shop") == root.resolve()
    assert [p.name for p in root.iterdir()] == ["restored.txt"]
    assert kept.parent == root.parent and kept.name.startswith(".shop.before-failback-b1-")
    assert sorted(p.name for p in kept.iterdir()) == before


def test_a_restore_that_fails_leaves_production_as_it_was(production, driver):
    root, _entry = production
    before = sorted(p.name for p in root.iterdir())

    def half_written(into):
        into.mkdir(parents=True)
        (into / "half.txt").write_text("...")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        driver.restore_in_place("shop", half_written, keep_old=True, label="failback-b2")

    assert sorted(p.name for p in root.iterdir()) == before
    # and the next attempt clears what this one left, and keeps nothing it was not asked to keep
    assert driver.restore_in_place("shop", fill_with("b2"), label="failback-b2") is None
    assert [p.name for p in root.iterdir()] == ["restored.txt"]
    assert sorted(p.name for p in root.parent.iterdir()) == ["shop"]


def test_an_env_made_as_a_restore_target_is_refilled_and_one_never_made_is_refused(driver):
    root = driver.restore_target("shop-dr", production="shop")

    driver.restore_in_place("shop-dr", fill_with("b1"), label="b1")
    driver.restore_in_place("shop-dr", fill_with("b2"), label="b2")

    assert (root / "restored.txt").read_text() == "b2"
    assert [p.name for p in root.parent.iterdir() if p.name.startswith(".root.")] == []  # nothing left aside
    with pytest.raises(ResourceMissing, match="env nowhere does not exist"):
        driver.restore_in_place("nowhere", fill_with("b1"), label="b1")
