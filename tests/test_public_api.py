"""The public API is what __all__ says, sorted, and nothing else."""

from __future__ import annotations

import promptmill


def test_all_is_sorted_and_complete() -> None:
    assert promptmill.__all__ == sorted(promptmill.__all__)
    # dir(): the public names load on first use (promptmill.__getattr__), not with the package.
    public = {name for name in dir(promptmill) if not name.startswith("_")}
    modules = {name for name in public if type(getattr(promptmill, name)).__name__ == "module"}
    assert public - modules == set(promptmill.__all__)
