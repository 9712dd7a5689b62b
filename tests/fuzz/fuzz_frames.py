"""atheris harness: FrameDecoder on arbitrary bytes in arbitrary chunkings.

Only gws.ProtocolError (MessageTooBig included) may escape; every frame the
decoder returns must re-encode to exactly the bytes it consumed when its
length used the shortest encoding. Run: python tests/fuzz/fuzz_frames.py
-atheris_runs=1000000 (see README.md).
"""

from __future__ import annotations

import sys

import _common  # noqa: F401 - puts the checkout on sys.path
import atheris

with atheris.instrument_imports():
    from gws.errors import MessageTooBig, ProtocolError
    from gws.frames import FrameDecoder, encode_frame


def _check(frame, raw: bytes) -> None:
    n = raw[1] & 0x7F
    minimal = (
        n < 126
        or (n == 126 and len(frame.payload) >= 126)
        or (n == 127 and len(frame.payload) >= 65536)
    )
    if not minimal:
        return
    key = (
        raw[len(raw) - len(frame.payload) - 4 : len(raw) - len(frame.payload)]
        if frame.mask
        else None
    )
    again = encode_frame(
        frame.opcode,
        frame.payload,
        fin=frame.fin,
        rsv1=frame.rsv1,
        rsv2=frame.rsv2,
        rsv3=frame.rsv3,
        mask=frame.mask,
        mask_key=key,
    )
    if again != raw:
        raise AssertionError(f"re-encoding differs: {raw!r} -> {frame!r} -> {again!r}")


def TestOneInput(data: bytes) -> None:  # noqa: N802 - atheris' name
    fdp = atheris.FuzzedDataProvider(data)
    masked = fdp.ConsumeBool()
    rsv_allowed = fdp.ConsumeIntInRange(0, 7) << 4
    max_size = fdp.ConsumeIntInRange(0, 1 << 20) if fdp.ConsumeBool() else None
    chunk = fdp.ConsumeIntInRange(1, 64)
    body = fdp.ConsumeBytes(fdp.remaining_bytes())
    decoder = FrameDecoder(expect_masked=masked, max_size=max_size, rsv_allowed=rsv_allowed)
    consumed = 0
    fed = 0
    try:
        for i in range(0, len(body), chunk):
            decoder.feed(body[i : i + chunk])
            fed = min(i + chunk, len(body))
            while True:
                frame = decoder.next_frame()
                if frame is None:
                    break
                end = fed - decoder.buffered
                _check(frame, body[consumed:end])
                if frame.mask != masked:
                    raise AssertionError("mask expectation not enforced")
                if max_size is not None and len(frame.payload) > max_size:
                    raise AssertionError("max_size not enforced")
                consumed = end
    except MessageTooBig:
        if max_size is None:
            raise
    except ProtocolError as exc:
        if exc.code not in (1002, 1007, 1009):
            raise


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
