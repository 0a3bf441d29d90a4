"""Codec presets for parameter-sized arrays (Zarr v3 codecs applied to each inner chunk).

* ``lossless``: Blosc with zstd and byte shuffle (floats' exponent bytes compress together),
  then a CRC32C checksum of each compressed chunk. Bit-exact.

Every preset ends with a CRC32C checksum, so a flipped byte in a chunk is detected on read.
"""

from __future__ import annotations

from typing import Any

from zarr.codecs import BloscCodec, BloscShuffle, Crc32cCodec

from .errors import StoreError

__all__ = ["CODEC_PRESETS", "compressors_for"]

CODEC_PRESETS: dict[str, str] = {
    "lossless": "zstd (Blosc, byte shuffle) + crc32c; exact",
}


def compressors_for(preset: str, level: int = 1) -> list[Any]:
    """The Zarr v3 bytes-to-bytes codecs of ``preset`` (compression first, checksum last)."""
    if preset not in CODEC_PRESETS:
        raise StoreError("unknown codec preset", expected=" or ".join(CODEC_PRESETS), found=repr(preset),
                         fix="set storage.codec to one of those")
    if not 1 <= level <= 9:
        raise StoreError("compression level out of range", expected="1..9 (Blosc's zstd levels)", found=str(level),
                         fix="set storage.level between 1 and 9")
    return [BloscCodec(cname="zstd", clevel=level, shuffle=BloscShuffle.shuffle), Crc32cCodec()]
