"""The web room: look at a collection without a terminal.

- ``collection.py`` reads a collection for the pages, read-only: the
  catalogue's SQLite opened with ``mode=ro``, the event log, and bag files
  through ``LocalBag`` (which never follows a symlink out of a bag).
- ``views.py`` turns those reads into one plain dict per page; that dict is
  the page's JSON twin and what the template renders.
- ``app.py`` is the starlette app of ``archiver serve``; ``static_site.py``
  writes the same pages as files for ``archiver site``.
- ``diff.py`` compares two canonical texts (paragraphs, then words).
- ``captured.py`` serves the archived HTML of a bag's WARC, for the
  sandboxed "as captured" view.
"""
