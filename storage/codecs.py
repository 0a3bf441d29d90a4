"""Codec presets for parameter-sized arrays (Zarr v3 codecs applied to each inner chunk).

Error bounds, for a stored value x̂ of a computed value x (float32 arrays; float64 likewise):

* ``lossless``: Blosc with zstd and byte shuffle (floats' exponent bytes compress together).
  Bit-exact: x̂ = x.
* ``lossless-fast``: Blosc with lz4 and byte shuffle. Bit-exact. Compresses about twice as fast as
  zstd and decompresses three times as fast, for about a third more bytes (measured on the narrow
  MXResNet's brackets: 0.50 vs 0.37 of raw, 1.0 vs 0.5 GB/s a core): for sweeps whose workers'
  CPUs are the bottleneck (jobs/README.md: writes and the CPU).
* ``bitround``: round-to-nearest to ``keepbits`` = k mantissa bits (numcodecs BitRound), then Blosc
  zstd with byte shuffle, which gathers the zeroed low mantissa bytes into runs zstd removes. (Byte
  shuffle, not bit shuffle: on real brackets it stored 18% fewer bytes at k = 10, measured by
  ``benchmarks/bench_codecs.py``.)
  |x̂ − x| ≤ 2^−(k+1)·|x| for every element, so also ‖x̂ − x‖₂ ≤ 2^−(k+1)·‖x‖₂
  (k = 10: 4.9e-4). Zero, Inf and NaN are kept.
* ``float16``: stored as IEEE half precision, read back as the array's dtype.
  |x̂ − x| ≤ 2^−11·|x| for 2^−14 ≤ |x| ≤ 65504, and |x̂ − x| ≤ 2^−25 below 2^−14 (subnormals);
  a value above 65504 in magnitude cannot be stored, and writers refuse it
  (:func:`check_encodable`). Use ``bitround`` when brackets are tiny or huge.

Every preset ends with a CRC32C checksum, so a flipped byte in a chunk is detected on read.
``bitround`` and ``float16`` use numcodecs codecs, which zarr-python reads but the Zarr v3 spec
does not list: other Zarr implementations may not read those two presets.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from zarr.codecs import BloscCodec, BloscShuffle, Crc32cCodec
from zarr.errors import ZarrUserWarning

from .errors import StoreError
from .registry import Registry

__all__ = ["CODEC_PRESETS", "CodecPreset", "DEFAULT_KEEPBITS", "FLOAT16_MAX", "MANTISSA_BITS", "ArrayCodecs",
           "array_codecs",
           "compressors_for",
           "error_bound", "check_encodable"]

# we know these codecs are zarr-python specific (the module docstring says so); the warning would
# otherwise repeat on every array opened
warnings.filterwarnings("ignore", message="Numcodecs codecs are not in the Zarr version 3 specification",
                        category=ZarrUserWarning)

DEFAULT_KEEPBITS = 10
FLOAT16_MAX = 65504.0
MANTISSA_BITS = {"float32": 23, "float64": 52}  # stored mantissa bits: bitround keeps 1..these


@dataclass(frozen=True)
class ArrayCodecs:
    """The filters (array-to-array) and compressors (bytes-to-bytes) of one preset."""

    filters: tuple[Any, ...]
    compressors: tuple[Any, ...]


def _check_preset(preset: str) -> None:
    CODEC_PRESETS[preset]  # an unknown preset is one error line naming the known ones


def _check(preset: str, level: int, keepbits: int, dtype: str) -> None:
    _check_preset(preset)
    if not 1 <= level <= 9:
        raise StoreError("compression level out of range", expected="1..9 (Blosc's levels)", found=str(level),
                         fix="set storage.level between 1 and 9")
    if dtype not in MANTISSA_BITS:
        raise StoreError("unsupported dtype for parameter-sized arrays", expected="float32 or float64",
                         found=dtype, fix="set precision=float32 or float64")
    if preset == "bitround" and not 1 <= keepbits <= MANTISSA_BITS[dtype]:
        raise StoreError("storage.keepbits out of range", expected=f"1..{MANTISSA_BITS[dtype]} for {dtype}",
                         found=str(keepbits), fix=f"set storage.keepbits={DEFAULT_KEEPBITS}")


def _zstd_crc(level: int, typesize: int | None = None) -> tuple[Any, ...]:
    """Blosc zstd with byte shuffle (over ``typesize``-byte items: the array's, unless a filter changed it),
    then CRC32C: the bytes-to-bytes codecs every preset ends with."""
    extra = {} if typesize is None else {"typesize": typesize}
    return (BloscCodec(cname="zstd", clevel=level, shuffle=BloscShuffle.shuffle, **extra), Crc32cCodec())


def _lossless(level: int, keepbits: int, dtype: str) -> ArrayCodecs:
    return ArrayCodecs((), _zstd_crc(level))


def _lossless_fast(level: int, keepbits: int, dtype: str) -> ArrayCodecs:
    return ArrayCodecs((), (BloscCodec(cname="lz4", clevel=level, shuffle=BloscShuffle.shuffle), Crc32cCodec()))


def _bitround(level: int, keepbits: int, dtype: str) -> ArrayCodecs:
    from zarr.codecs.numcodecs import BitRound

    return ArrayCodecs((BitRound(keepbits=keepbits),), _zstd_crc(level))


def _float16(level: int, keepbits: int, dtype: str) -> ArrayCodecs:
    from zarr.codecs.numcodecs import AsType

    return ArrayCodecs((AsType(encode_dtype="float16", decode_dtype=dtype),), _zstd_crc(level, typesize=2))


def _exact(keepbits: int) -> dict[str, float]:
    return {"rel": 0.0, "abs": 0.0, "max": float("inf")}


@dataclass(frozen=True)
class CodecPreset:
    """A codec preset (``storage.codec``): ``codecs(level, keepbits, dtype)`` gives its Zarr v3 codecs (checksum
    last), ``bound(keepbits)`` its elementwise error bound |x̂ − x| ≤ max(rel·|x|, abs), valid for |x| ≤ max."""

    name: str
    help: str
    codecs: Callable[[int, int, str], ArrayCodecs]
    bound: Callable[[int], dict[str, float]] = _exact


CODEC_PRESETS: Registry[CodecPreset] = Registry("storage.codec", (
    CodecPreset("lossless", "zstd (Blosc, byte shuffle) + crc32c; exact", _lossless),
    CodecPreset("lossless-fast", "lz4 (Blosc, byte shuffle) + crc32c; exact; ~2x faster to write than lossless, "
                                 "~1/3 larger", _lossless_fast),
    CodecPreset("bitround", "keep k mantissa bits, zstd (Blosc, byte shuffle) + crc32c; |error| <= 2^-(k+1)|x|",
                _bitround, lambda keepbits: {"rel": 2.0 ** -(keepbits + 1), "abs": 0.0, "max": float("inf")}),
    CodecPreset("float16", "IEEE half precision, zstd (Blosc, byte shuffle) + crc32c; |error| <= 2^-11|x| "
                           "(|x| >= 2^-14)", _float16,
                lambda keepbits: {"rel": 2.0 ** -11, "abs": 2.0 ** -25, "max": FLOAT16_MAX}),
), what="codec preset", error=StoreError)


def array_codecs(preset: str, level: int = 1, keepbits: int = DEFAULT_KEEPBITS, dtype: str = "float32") -> ArrayCodecs:
    """The Zarr v3 codecs of ``preset`` for a parameter-sized array of ``dtype`` (checksum last)."""
    _check(preset, level, keepbits, dtype)
    return CODEC_PRESETS[preset].codecs(level, keepbits, dtype)


def compressors_for(level: int = 1) -> list[Any]:
    """The lossless preset's bytes-to-bytes codecs, for the small arrays every store keeps exactly
    (losses, logit deltas)."""
    return list(array_codecs("lossless", level).compressors)


def error_bound(preset: str, keepbits: int = DEFAULT_KEEPBITS) -> dict[str, float]:
    """The preset's elementwise bound |x̂ − x| ≤ max(rel·|x|, abs) (valid for |x| ≤ ``max``)."""
    return CODEC_PRESETS[preset].bound(keepbits)


def check_encodable(preset: str, values: np.ndarray, what: str) -> None:
    """Refuse values a lossy preset cannot hold (float16: finite values above 65504 in magnitude)."""
    if preset != "float16" or values.size == 0:
        return
    finite = values[np.isfinite(values)]
    peak = float(np.abs(finite).max()) if finite.size else 0.0
    if peak > FLOAT16_MAX:
        raise StoreError(f"{what} exceed float16's range", expected=f"|x| <= {FLOAT16_MAX:g}", found=f"{peak:.3g}",
                         fix="use storage.codec=bitround (or lossless) for this sweep")


def encode_roundtrip(values: np.ndarray, preset: str, level: int = 1, keepbits: int = DEFAULT_KEEPBITS,
                     inner: int = 1 << 18) -> tuple[int, np.ndarray]:
    """(bytes the rows of ``values`` (N × D) take under ``preset``, stored as a store stores them:
    one inner chunk of ``inner`` elements per row segment, in one shard; the values read back).

    In memory: a calibration for ``lie-sweep plan`` and the codec benchmark, not a store.
    """
    import zarr

    values = np.ascontiguousarray(values)
    dtype = str(values.dtype)
    codecs = array_codecs(preset, level, keepbits, dtype)
    check_encodable(preset, values, "values")
    held: dict = {}
    store = zarr.storage.MemoryStore(store_dict=held)
    n, d = values.shape
    chunk = max(1, min(inner, d))
    arr = zarr.create_array(store, shape=(n, d), chunks=(1, chunk), shards=(n, -(-d // chunk) * chunk), dtype=dtype,
                            filters=codecs.filters, compressors=codecs.compressors, fill_value=0.0)
    arr[:] = values
    nbytes = sum(len(buf.to_bytes()) for key, buf in held.items() if not key.endswith("zarr.json"))
    return int(nbytes), np.asarray(arr[:])
