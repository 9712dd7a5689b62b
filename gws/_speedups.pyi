# Type stub for the optional C accelerator gws/_speedups.c (see gws.frames).
from typing import Optional, Union

def apply_mask(data: Union[bytes, bytearray, memoryview], key: bytes) -> bytes:
    """apply_mask(data, key) -> bytes: XOR data with the 4-byte masking key."""

def frame_bytes(
    b0: int, payload: Union[bytes, bytearray, memoryview, str], key: Optional[bytes]
) -> bytes:
    """frame_bytes(b0, payload, key) -> bytes: one whole frame, the payload
    (bytes-like, or str sent as UTF-8) masked with key unless key is None."""
