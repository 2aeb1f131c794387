"""The state of one verification: ``BagCheck``, what every check step reads and adds to.

``archiver.bagit.verify`` makes one per bag; the steps in ``tagfiles`` (bagit.txt,
bag-info.txt, Payload-Oxum) and ``checks`` (manifests, completeness, fetch.txt,
names, checksums) take it and add their findings to ``check.out``. Which rules
apply depends on the bag's BagIt version: ``check.report_rule`` reports a rule
that RFC 8493 made a MUST as a problem in a 1.0 bag and as a warning in an
older one (``archiver.bagit.report.VERSIONED_RULES``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from archiver.bagit.hashing import ProgressCallback
from archiver.bagit.reader import BagReader
from archiver.bagit.report import Collector, rule_applies


@dataclass
class BagCheck:
    reader: BagReader
    mode: str                                     # full | completeness | fast
    processes: int | None = None
    on_progress: ProgressCallback | None = None
    out: Collector = field(default_factory=Collector)
    version: str | None = None                    # from bagit.txt; None if unreadable
    encoding: str = "utf-8"                       # Python's codec name for the tag files
    payload_files: int = 0
    payload_bytes: int = 0
    sizes: dict[str, int] = field(default_factory=dict)  # learnt by hashing, for files listed without one

    def rule_applies(self, rule: str) -> bool:
        """Whether a rule RFC 8493 added is a MUST for this bag's version."""
        return rule_applies(rule, self.version)

    def report_rule(self, code: str, path: str, message: str, unique: bool = False) -> None:
        """A finding under a versioned rule: a problem if the bag's version has
        the rule, a warning if it predates it."""
        self.out.add(code, path, message, error=self.rule_applies(code), unique=unique)
