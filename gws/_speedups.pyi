# Type stub for the optional C accelerator gws/_speedups.c (see gws.frames).
from typing import Union

def apply_mask(data: Union[bytes, bytearray, memoryview], key: bytes) -> bytes:
    """apply_mask(data, key) -> bytes: XOR data with the 4-byte masking key."""
