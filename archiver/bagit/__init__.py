"""The BagIt format (RFC 8493): parse, read, write, hash, verify. Knows nothing of captures."""
