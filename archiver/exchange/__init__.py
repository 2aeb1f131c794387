"""Exchange: collections in the forms other institutions' systems take.

Bags leave archiver as serialised archives (tar, tar.gz, zip) checked against
BagIt profiles (``serialise``, ``profiles``, ``derive``), as WACZ for replay
(``wacz``) and as OCFL objects for versioned storage (``ocfl``); bags made
elsewhere come in by ``ingest``.
"""
