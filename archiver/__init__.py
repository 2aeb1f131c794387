"""archiver: snapshot texts from the web into verified BagIt bags.

The library never prints and never exits; ``archiver.cli`` is the only module
that talks to a terminal.
"""

__version__ = "0.1.0"
AGENT = f"archiver/{__version__}"
