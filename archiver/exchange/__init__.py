"""Exchange: bags leave archiver as serialised archives (tar, tar.gz, zip) checked
against BagIt profiles, and bags made elsewhere come in by ``ingest``."""
