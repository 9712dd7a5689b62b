"""atheris harness: parse_url never raises and returns a sane Url or an error."""

from __future__ import annotations

import sys

import _common  # noqa: F401 - puts the checkout on sys.path
import atheris

with atheris.instrument_imports():
    from gws.url import Url, parse_url


def TestOneInput(data: bytes) -> None:  # noqa: N802 - atheris' name
    fdp = atheris.FuzzedDataProvider(data)
    text = fdp.ConsumeUnicodeNoSurrogates(fdp.remaining_bytes())
    for url in (text, "ws://" + text, "wss://u:p@" + text):
        result, error = parse_url(url)
        if result is None:
            if not isinstance(error, str) or not error:
                raise AssertionError("parse_url failed without an error string")
            continue
        if error is not None or not isinstance(result, Url):
            raise AssertionError("parse_url returned both or neither")
        if not result.host or not 0 < result.port < 65536 or not result.pathname.startswith("/"):
            raise AssertionError(f"insane Url {result!r} from {url!r}")


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
