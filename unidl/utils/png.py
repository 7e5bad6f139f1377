"""PNG files without dependencies: read the header, decode and encode 8-bit images with
``zlib``.

The pictures themselves are drawn by matplotlib (or graphviz); this module checks what they
wrote (size, content) and makes small images for tests. It handles what PNG writers commonly
produce: 8 bits per channel, grey, grey + alpha, RGB, RGBA or palette, not interlaced.

Example:
    >>> import numpy as np
    >>> from unidl.utils.png import decode_png, encode_png, png_info
    >>> pixels = np.zeros((2, 3, 3), np.uint8)
    >>> pixels[0, 1] = (255, 0, 0)
    >>> data = encode_png(pixels)
    >>> png_info(data).width, png_info(data).height
    (3, 2)
    >>> bool((decode_png(data) == pixels).all())
    True
"""

from __future__ import annotations

import struct
import zlib
from typing import NamedTuple

import numpy as np

__all__ = ["PNG_SIGNATURE", "PngInfo", "png_info", "decode_png", "encode_png"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # colour type -> samples per pixel


class PngInfo(NamedTuple):
    """The IHDR chunk of a PNG file."""

    width: int
    height: int
    bit_depth: int
    color_type: int
    interlace: int


def _chunks(data: bytes):
    """``(type, body)`` of each chunk, checking the signature and each CRC."""
    if data[:8] != PNG_SIGNATURE:
        raise ValueError("not a PNG file (the 8-byte signature is missing)")
    pos = 8
    while pos + 12 <= len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length] or b"\0" * 4)
        if len(body) != length or zlib.crc32(kind + body) != crc:
            raise ValueError(f"PNG chunk {kind!r} at byte {pos} is truncated or corrupt")
        yield kind.decode("latin-1"), body
        if kind == b"IEND":
            return
        pos += 12 + length
    raise ValueError("PNG file ends before its IEND chunk (truncated)")


def png_info(data: bytes) -> PngInfo:
    """Width, height, bit depth, colour type and interlace method from the IHDR chunk
    (the first chunk; the rest of the file is not read)."""
    if data[:8] != PNG_SIGNATURE:
        raise ValueError("not a PNG file (the 8-byte signature is missing)")
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise ValueError("PNG file without an IHDR chunk first")
    return PngInfo(*struct.unpack(">IIBBxxB", data[16:29]))


def _unfilter_row(kind: int, row: bytearray, prev: bytes, bpp: int) -> bytearray:
    """Undo one row's filter (0 none, 1 sub, 2 up, 3 average, 4 Paeth) in place."""
    n = len(row)
    if kind == 1:  # a running sum per channel
        sums = np.cumsum(np.frombuffer(bytes(row), np.uint8).reshape(-1, bpp), axis=0)
        return bytearray((sums & 0xFF).astype(np.uint8).tobytes())
    if kind == 2:
        up = np.frombuffer(bytes(row), np.uint8) + np.frombuffer(prev, np.uint8)
        return bytearray(up.tobytes())  # uint8 arithmetic wraps: the sum modulo 256
    if kind == 3:
        for i in range(n):
            a = row[i - bpp] if i >= bpp else 0
            row[i] = (row[i] + ((a + prev[i]) >> 1)) & 0xFF
    elif kind == 4:
        for i in range(n):
            a = row[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            row[i] = (row[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
    elif kind != 0:
        raise ValueError(f"PNG row has an unknown filter type {kind}")
    return row


def _unfilter(raw: bytes, height: int, stride: int, bpp: int) -> np.ndarray:
    """Undo the per-row filters of the decompressed image data."""
    out = bytearray()
    prev = bytes(stride)
    for y in range(height):
        pos = y * (stride + 1)
        row = _unfilter_row(raw[pos], bytearray(raw[pos + 1:pos + 1 + stride]), prev, bpp)
        out += row
        prev = bytes(row)
    return np.frombuffer(bytes(out), np.uint8).reshape(height, stride)


def decode_png(data: bytes) -> np.ndarray:
    """The pixels of an 8-bit, non-interlaced PNG: ``(height, width)`` for grey, else
    ``(height, width, channels)`` (palette images come back as RGB or RGBA)."""
    info = png_info(data)
    if info.bit_depth != 8 or info.interlace != 0 or info.color_type not in _CHANNELS:
        raise ValueError(f"decode_png reads 8-bit non-interlaced PNGs; this one has bit "
                         f"depth {info.bit_depth}, colour type {info.color_type}, interlace "
                         f"{info.interlace}")
    idat, palette, alpha = [], None, None
    for kind, body in _chunks(data):
        if kind == "IDAT":
            idat.append(body)
        elif kind == "PLTE":
            palette = np.frombuffer(body, np.uint8).reshape(-1, 3)
        elif kind == "tRNS":
            alpha = np.frombuffer(body, np.uint8)
    channels = _CHANNELS[info.color_type]
    stride = info.width * channels
    raw = zlib.decompress(b"".join(idat))
    if len(raw) != info.height * (stride + 1):
        raise ValueError("PNG image data has the wrong length for its size")
    pixels = _unfilter(raw, info.height, stride, channels)
    pixels = pixels.reshape(info.height, info.width, channels)
    if info.color_type == 3:
        if palette is None:
            raise ValueError("palette PNG without a PLTE chunk")
        rgb = palette[pixels[..., 0]]
        if alpha is not None:
            table = np.full(len(palette), 255, np.uint8)
            table[:len(alpha)] = alpha[:len(palette)]
            return np.concatenate([rgb, table[pixels[..., :1]]], axis=-1)
        return rgb
    return pixels[..., 0] if channels == 1 else pixels


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I",
                                                                   zlib.crc32(kind + body))


def encode_png(pixels) -> bytes:
    """An 8-bit PNG of ``pixels`` (uint8): ``(h, w)`` grey, ``(h, w, 3)`` RGB or
    ``(h, w, 4)`` RGBA; rows unfiltered, compressed with ``zlib``."""
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8:
        raise ValueError(f"encode_png takes uint8 pixels, got {pixels.dtype}")
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.ndim != 3 or pixels.shape[2] not in (1, 3, 4) or 0 in pixels.shape[:2]:
        raise ValueError(f"encode_png takes (h, w), (h, w, 3) or (h, w, 4) pixels, got "
                         f"shape {pixels.shape}")
    height, width, channels = pixels.shape
    color_type = {1: 0, 3: 2, 4: 6}[channels]
    rows = np.concatenate([np.zeros((height, 1), np.uint8),
                           np.ascontiguousarray(pixels).reshape(height, -1)], axis=1)
    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return (PNG_SIGNATURE + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(rows.tobytes(), 9)) + _chunk(b"IEND", b""))
