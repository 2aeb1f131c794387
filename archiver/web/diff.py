"""Comparing two captures' canonical texts.

Canonical text is paragraphs separated by one blank line (see DESIGN.md), so
a diff is made in two steps: paragraphs are matched first (difflib), then,
inside each pair of changed paragraphs, words. A reader sees which paragraphs
were added, removed or changed, and within a changed one exactly which words.

    >>> d = diff_texts("One.\\n\\nTwo words.\\n", "One.\\n\\nTwo new words.\\n")
    >>> [b.kind for b in d.blocks]
    ['same', 'changed']
    >>> [(p.kind, p.text) for p in d.blocks[1].words]
    [('same', 'Two '), ('added', 'new '), ('same', 'words.')]
"""

from __future__ import annotations

import difflib
import re
from dataclasses import asdict, dataclass, field
from typing import Any

_WORD = re.compile(r"\S+\s*|\s+")


@dataclass(frozen=True)
class Piece:
    kind: str  # same | added | removed
    text: str


@dataclass
class Block:
    """One paragraph of the comparison: the same in both, only in the old
    text (removed), only in the new one (added), or changed (then ``words``
    holds the word-level comparison)."""

    kind: str
    old: str = ""
    new: str = ""
    words: list[Piece] = field(default_factory=list)


@dataclass
class TextDiff:
    blocks: list[Block]

    @property
    def changed(self) -> bool:
        return any(b.kind != "same" for b in self.blocks)

    def stats(self) -> dict[str, int]:
        counts = {"same": 0, "added": 0, "removed": 0, "changed": 0}
        for block in self.blocks:
            counts[block.kind] += 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        return {"changed": self.changed, "paragraphs": self.stats(),
                "blocks": [{"kind": b.kind, "old": b.old, "new": b.new,
                            "words": [asdict(p) for p in b.words]} for b in self.blocks]}


def paragraphs(text: str) -> list[str]:
    return [p for p in re.split(r"\n[ \t]*\n", text.replace("\r\n", "\n").strip("\n")) if p.strip()]


def diff_words(old: str, new: str) -> list[Piece]:
    """Word-level comparison of two paragraphs (words keep their trailing space)."""
    a, b = _WORD.findall(old), _WORD.findall(new)
    pieces: list[Piece] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            pieces.append(Piece("same", "".join(a[i1:i2])))
            continue
        if i2 > i1:
            pieces.append(Piece("removed", "".join(a[i1:i2])))
        if j2 > j1:
            pieces.append(Piece("added", "".join(b[j1:j2])))
    return pieces


def diff_texts(old: str, new: str) -> TextDiff:
    a, b = paragraphs(old), paragraphs(new)
    blocks: list[Block] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            blocks.extend(Block("same", p, p) for p in a[i1:i2])
        elif tag == "delete":
            blocks.extend(Block("removed", old=p) for p in a[i1:i2])
        elif tag == "insert":
            blocks.extend(Block("added", new=p) for p in b[j1:j2])
        else:
            # Pair the replaced paragraphs in order; the rest are removed or added.
            olds, news = a[i1:i2], b[j1:j2]
            for k in range(max(len(olds), len(news))):
                if k < len(olds) and k < len(news):
                    blocks.append(Block("changed", olds[k], news[k], diff_words(olds[k], news[k])))
                elif k < len(olds):
                    blocks.append(Block("removed", old=olds[k]))
                else:
                    blocks.append(Block("added", new=news[k]))
    return TextDiff(blocks)


def unified(old: str, new: str, old_label: str, new_label: str, context: int = 3) -> str:
    """A unified diff of two texts, line by line, as ``diff -u`` prints it."""
    lines = difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                 fromfile=old_label, tofile=new_label, n=context)
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
                   for line in lines)
