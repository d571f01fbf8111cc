"""docs/interop.md is the interop tier's output, whole and untouched by hand (no tier needed:
this runs in every suite; the tier itself checks each cell against its server)."""

from __future__ import annotations

from interop_checks import FEATURES, SERVERS, TABLE, Compat


def test_the_committed_table_is_complete_and_as_the_tier_writes_it(tmp_path, monkeypatch) -> None:
    committed = Compat()
    missing = [(server, FEATURES[key]) for server in SERVERS for key in FEATURES
               if committed.cells.get((server, key), "not checked") == "not checked"]
    assert not missing, f"docs/interop.md has no result for {missing}: run the interop tier " \
                        "with PROMPTMILL_UPDATE_INTEROP=1"
    monkeypatch.setenv("PROMPTMILL_UPDATE_INTEROP", "1")
    rewritten = Compat(tmp_path / "interop.md")
    rewritten.cells = dict(committed.cells)
    rewritten.write()
    assert (tmp_path / "interop.md").read_text() == TABLE.read_text(), \
        "docs/interop.md was edited by hand: regenerate it with the interop tier"
