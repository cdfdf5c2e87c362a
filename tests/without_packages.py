"""Run the posedeploy command line as an install without some packages would: they cannot be found
(importlib.util.find_spec says None) nor imported, as if never installed.

    python tests/without_packages.py torch,onnx,matplotlib -- eval --data synthetic
"""

from __future__ import annotations

import sys


class _Hiding:
    """A meta path finder that knows nothing of the hidden packages and defers to ``inner`` otherwise."""

    def __init__(self, inner, hidden: set[str]):
        self.inner, self.hidden = inner, hidden

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in self.hidden:
            return None
        find = getattr(self.inner, "find_spec", None)
        return find(name, path, target) if find else None

    def __getattr__(self, attr):
        return getattr(self.inner, attr)


def hide(packages: set[str]) -> None:
    sys.meta_path[:] = [_Hiding(finder, packages) for finder in sys.meta_path]


if __name__ == "__main__":
    hidden, separator, *args = sys.argv[1:]
    assert separator == "--", "usage: without_packages.py PKG[,PKG...] -- POSEDEPLOY ARGS"
    hide(set(hidden.split(",")))
    sys.argv = ["posedeploy", *args]
    from posedeploy.cli import main

    main()
