"""What the documentation generators share: blocks inside hand-written files, and write-or-check.

A generated block sits between ``<!-- NAME -->`` and ``<!-- /NAME -->`` in a hand-written page
(the README's command list and headline table); a generated page is the whole file.
"""

from __future__ import annotations

import re
from pathlib import Path


def with_block(text: str, name: str, body: str) -> str:
    """``text`` with the block ``name`` holding ``body`` (the markers must be there)."""
    pattern = re.compile(rf"(<!-- {re.escape(name)} -->\n).*?(<!-- /{re.escape(name)} -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"no <!-- {name} --> ... <!-- /{name} --> block to fill")
    return pattern.sub(lambda m: m.group(1) + body.rstrip("\n") + "\n" + m.group(2), text, count=1)


def write_or_check(pages: dict[Path, str], check: bool, command: str) -> int:
    """Write every page, or (``check``) write nothing and name each page that differs; 1 if any does."""
    stale = []
    for path, text in pages.items():
        if check:
            if not path.is_file() or path.read_text() != text:
                stale.append(path)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.is_file() or path.read_text() != text:
                path.write_text(text)
    for path in stale:
        print(f"{path} differs from what its sources give; run: {command}")
    return 1 if stale else 0
