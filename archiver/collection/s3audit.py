"""Auditing a collection root on S3: ``audit --root s3://bucket/prefix``.

The same rotation as a local audit (``audit.plan_audit``, ``audit.run_audit``)
over the collection's complete bags, with the state taken from the merged
event log (``s3root.S3Collection.read_events``). Every bag that is due is
**read and hashed in full** through ``S3Bag`` (every byte downloaded), and
each outcome is logged at once as an event object of its own.

A bag the log knows that has neither a completion marker nor a receipt is
*missing*, unless a writer holds a live claim on it (being written now:
neither present nor missing). ``audit --server-checksums`` (server-attested
fixity without downloading) is a different function with its own labels; it
is not this one.

    >>> report = audit_s3_collection(S3Collection("s3://library/texts"), max_age=timedelta(days=90))
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Callable

from archiver.bagit.verify import BagReport
from archiver.clock import utc_now
from archiver.collection.audit import AuditReport, plan_audit, run_audit
from archiver.collection.s3root import S3Collection, cached_event_log


def audit_s3_collection(collection: S3Collection, max_age: timedelta = timedelta(days=90),
                        limit: int | None = None, processes: int | None = None, now: datetime | None = None,
                        on_progress: Callable[..., None] | None = None,
                        tsa_ca: bytes | None = None) -> AuditReport:
    """Verify (reading every byte) the bags of the S3 collection that are due;
    log a fixity event object for each. StorageError (exit 3) when S3 cannot be read."""
    from archiver.exchange.check import verify_any

    collection.check_readable()
    busy = collection.in_progress()
    log = cached_event_log(collection)  # only event objects not read before are fetched
    events = [logged.event for logged in log.events if logged.event.bag not in busy]
    plan = plan_audit(collection.complete_bags(), events, now or utc_now(), max_age, limit)

    def verify(bag: str) -> BagReport:
        return verify_any(collection.reader(bag), "full", processes, tsa_ca=tsa_ca)

    report = run_audit(collection.location, plan, verify, lambda event: collection.log_events([event]),
                       lambda bag: f"bag {bag} has no completion marker or receipt at {collection.location}",
                       on_progress)
    report.torn_events = log.torn
    return report
