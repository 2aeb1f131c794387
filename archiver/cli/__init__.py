"""The ``archiver`` command line: the only package that imports typer and rich.

Every command opens its inputs, makes one library call, and turns archiver's
exceptions into a one-line message on stderr and an exit code:
0 all good · 1 ran and found problems · 2 usage error · 3 could not run.
With ``--json`` a command prints exactly one JSON document on stdout.

One module per verb group registers its commands on the one ``app``
(``common.py``): ``capture`` (snapshot, extract, rebuild), ``verify``
(verify, audit), ``replication`` (mirror, repair), ``catalog`` (catalog
rebuild, list, show, search, history).
"""

from archiver.cli import capture, catalog, replication, verify  # noqa: F401  (register the commands)
from archiver.cli import exchange  # noqa: F401  (export)
from archiver.cli.common import app

__all__ = ["app"]
