"""atheris harness: permessage-deflate decompression of arbitrary bytes.

Only ProtocolError/MessageTooBig may escape, and no call returns more than its
limit (the max_size bound against decompression bombs).
"""

from __future__ import annotations

import sys

import _common  # noqa: F401 - puts the checkout on sys.path
import atheris

with atheris.instrument_imports():
    from gws.deflate import DeflateParams, PerMessageDeflate
    from gws.errors import MessageTooBig, ProtocolError


def TestOneInput(data: bytes) -> None:  # noqa: N802 - atheris' name
    fdp = atheris.FuzzedDataProvider(data)
    params = DeflateParams(
        server_no_context_takeover=fdp.ConsumeBool(),
        client_no_context_takeover=fdp.ConsumeBool(),
        server_max_window_bits=fdp.ConsumeIntInRange(8, 15),
        client_max_window_bits=fdp.ConsumeIntInRange(8, 15),
    )
    pmd = PerMessageDeflate(params, is_client=fdp.ConsumeBool())
    for _ in range(fdp.ConsumeIntInRange(1, 4)):
        limit = fdp.ConsumeIntInRange(0, 1 << 16) if fdp.ConsumeBool() else None
        fin = fdp.ConsumeBool()
        chunk = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 4096))
        try:
            out = pmd.decompress(chunk, fin, limit)
        except MessageTooBig:
            continue
        except ProtocolError as exc:
            if exc.code != 1007:
                raise
            continue
        if limit is not None and len(out) > limit:
            raise AssertionError("decompress returned more than its limit")


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
