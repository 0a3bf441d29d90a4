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


def compressors_for(preset: str, level: int = 3) -> list[Any]:
    """The Zarr v3 bytes-to-bytes codecs of ``preset`` (compression first, checksum last)."""
    if preset not in CODEC_PRESETS:
        raise StoreError("unknown codec preset", expected=" or ".join(CODEC_PRESETS), found=repr(preset),
                         fix="set storage.codec to one of those")
    if not 1 <= level <= 22:
        raise StoreError("zstd level out of range", expected="1..22", found=str(level),
                         fix="set storage.level between 1 and 22")
    return [BloscCodec(cname="zstd", clevel=min(level, 9), shuffle=BloscShuffle.shuffle), Crc32cCodec()]
