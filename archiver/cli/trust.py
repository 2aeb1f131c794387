"""Options shared by the verbs that make or check RFC 3161 time-stamps."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from archiver.errors import UsageError

TimestampUrlOption = typer.Option(
    None, "--timestamp-url", metavar="URL",
    help="An RFC 3161 Time-Stamp Authority: stamp each new bag's tagmanifest-sha512.txt "
         "(token kept as tagmanifest-sha512.txt.tsr). A TSA failure leaves the bag unstamped, "
         "said in its capture event.")

TsaCaOption = typer.Option(
    None, "--tsa-ca", metavar="FILE",
    help="PEM certificate(s) of the Time-Stamp Authority's CA: check the signature of RFC 3161 "
         "tokens (without it the signature is NOT checked, and a warning says so).")


def read_tsa_ca(path: Optional[Path]) -> bytes | None:
    """The PEM bytes of --tsa-ca; UsageError (exit 2) naming the file if unusable."""
    if path is None:
        return None
    from archiver.bagit.timestamp import load_ca

    try:
        pem = path.read_bytes()
        load_ca(pem)
    except OSError as exc:
        raise UsageError(f"--tsa-ca {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise UsageError(f"--tsa-ca {path}: not a PEM certificate file ({exc})") from exc
    return pem
