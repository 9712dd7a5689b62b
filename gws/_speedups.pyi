# Type stub for the optional C accelerator gws/_speedups.c (see gws.frames).
from typing import Any, Optional, Tuple, Union

def apply_mask(data: Union[bytes, bytearray, memoryview], key: bytes) -> bytes:
    """apply_mask(data, key) -> bytes: XOR data with the 4-byte masking key."""

# -- the receive path (gws.frames has the pure-Python equivalents) --

def parse_frame(
    data: Union[bytes, bytearray, memoryview], expect_masked: bool, max_size: int
) -> Optional[Tuple[int, Union[bytes, str], int]]:
    """parse_frame(data, expect_masked, max_size) -> (opcode, payload, end) or None."""

class PayloadBuffer:
    """PayloadBuffer(n): n writable bytes; take_payload() hands them over."""

    def __init__(self, n: int) -> None: ...
    def __len__(self) -> int: ...
    def __buffer__(self, flags: int) -> memoryview: ...

def take_payload(buffer: Any, key: Optional[bytes]) -> bytes:
    """take_payload(buffer, key) -> bytes: a filled PayloadBuffer's payload, unmasked with key."""

def frame_bytes(
    b0: int, payload: Union[bytes, bytearray, memoryview, str], key: Optional[bytes]
) -> bytes:
    """frame_bytes(b0, payload, key) -> bytes: one whole frame, the payload
    (bytes-like, or str sent as UTF-8) masked with key unless key is None."""
