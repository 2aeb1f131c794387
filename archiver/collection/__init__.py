"""A collection root and its .archiver/: event log, capture record, audit, catalogue."""
