"""The capture pipeline: sources, fetch, charset, extract, canonical text, WARC, snapshot, rebuild."""
