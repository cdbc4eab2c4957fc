"""``python -m taskloom``: see :mod:`taskloom._cli`."""

from __future__ import annotations

from taskloom._cli import main

if __name__ == "__main__":
    raise SystemExit(main())
