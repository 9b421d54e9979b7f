"""Identifiers."""
import os
import time
import uuid


def time_ordered_uuid() -> uuid.UUID:
    """A UUID whose first 48 bits are the Unix time in ms (UUIDv7 layout), so ids index in order."""
    ms = int(time.time() * 1000)
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms << 80) | rand
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
    return uuid.UUID(int=value)
