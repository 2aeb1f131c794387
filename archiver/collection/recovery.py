"""Recovery of unlogged bags: a run killed between a bag's rename and its
``capture`` event leaves a complete bag unknown to the log, the catalogue and
re-checks. ``record_unlogged_bags`` logs it, marked as recovered, from the
bag's own metadata (read through ``CaptureRecord``).
"""

from __future__ import annotations

from pathlib import Path

from archiver.collection.capture_log import log_captured
from archiver.collection.events import read_events
from archiver.collection.record import CaptureRecord, DamagedCapture
from archiver.collection.root import list_bag_dirs, remote_of
from archiver.durable import held_by_a_live_writer

RECOVERED_NOTE = ("bag found without a capture event (a run interrupted between writing the "
                  "bag and logging it, or a bag copied in); recorded from its metadata.json")


def record_unlogged_bags(root: Path) -> list[str]:
    """Log a ``capture`` event for every archiver bag in ``root`` that has none;
    return their names. Bags a live run still holds, damaged bags (``verify`` and
    ``audit`` report those) and folders that are not archiver captures (no
    metadata.json with a url) are left."""
    remote = remote_of(root)
    if remote is not None:
        return remote.record_unlogged_bags()
    recorded = {e.bag for e in read_events(root).events if e.type == "capture" and e.bag}
    logged = []
    for bag_dir in list_bag_dirs(root):
        if bag_dir.name in recorded or held_by_a_live_writer(bag_dir):
            continue
        try:
            record = CaptureRecord.read(bag_dir, text=False)
        except DamagedCapture:
            continue
        if not record.url:
            continue
        log_captured(root, bag_dir.name, record, recovered=RECOVERED_NOTE)
        logged.append(bag_dir.name)
    return logged
