"""CMYK JPEG fixtures for tests/data/decode_test.ts, and Pillow's RGB decode of each.

  python3 scripts/make_cmyk_fixtures.py tests/fixtures/data

Writes, for a 23x17 CMYK test image:
- cmyk-adobe.jpg: saved by Pillow (Adobe APP14 marker, inverted CMYK as Photoshop writes it);
- cmyk-plain.jpg: the same file with its APP14 marker removed (a plain 4-component JPEG);
- ycck.jpg: the same pixels compressed by libjpeg-turbo's tjCompress2 from CMYK, which writes
  YCCK (Adobe transform 2), the form most CMYK photos in ImageNet take;
- cmyk-photo.jpg: source-q90.jpg (a photo) converted to CMYK by Pillow and saved (Adobe);
- NAME.rgb: Pillow's `Image.open(NAME.jpg).convert("RGB").tobytes()`.
"""
import ctypes
import sys
from pathlib import Path

from PIL import Image

W, H = 23, 17


def test_image() -> Image.Image:
    px = bytearray()
    for y in range(H):
        for x in range(W):
            px += bytes([(x * 11) % 256, (y * 15) % 256, ((x + y) * 7) % 256, (x * y * 3) % 256])
    return Image.frombytes("CMYK", (W, H), bytes(px))


def strip_app14(jpeg: bytes) -> bytes:
    out, i = bytearray(jpeg[:2]), 2
    while i < len(jpeg):
        marker, length = jpeg[i + 1], int.from_bytes(jpeg[i + 2 : i + 4], "big")
        if marker == 0xDA:  # start of scan: the rest is entropy-coded data
            out += jpeg[i:]
            break
        if marker != 0xEE:
            out += jpeg[i : i + 2 + length]
        i += 2 + length
    return bytes(out)


def ycck(img: Image.Image) -> bytes:
    tj = ctypes.CDLL("libturbojpeg.so.0")
    tj.tjInitCompress.restype = ctypes.c_void_p
    handle = ctypes.c_void_p(tj.tjInitCompress())
    # TurboJPEG's CMYK is "normal" (not inverted); Pillow's CMYK;I save inverts, so invert here
    # too so that all three files hold the same picture.
    src = bytes(255 - b for b in img.tobytes())
    buf, size = ctypes.POINTER(ctypes.c_ubyte)(), ctypes.c_ulong(0)
    TJPF_CMYK, TJSAMP_420 = 11, 2
    rc = tj.tjCompress2(handle, src, W, 0, H, TJPF_CMYK, ctypes.byref(buf), ctypes.byref(size),
                        TJSAMP_420, 90, 0)
    assert rc == 0, "tjCompress2 failed"
    data = bytes(ctypes.string_at(buf, size.value))
    tj.tjFree(buf)
    tj.tjDestroy(handle)
    return data


def main(out: Path) -> None:
    img = test_image()
    img.save(out / "cmyk-adobe.jpg", quality=90)
    adobe = (out / "cmyk-adobe.jpg").read_bytes()
    assert b"Adobe" in adobe, "Pillow wrote no APP14 marker"
    (out / "cmyk-plain.jpg").write_bytes(strip_app14(adobe))
    (out / "ycck.jpg").write_bytes(ycck(img))
    with Image.open(out / "source-q90.jpg") as photo:
        photo.convert("CMYK").save(out / "cmyk-photo.jpg", quality=85)
    for name in ["cmyk-adobe", "cmyk-plain", "ycck", "cmyk-photo"]:
        with Image.open(out / f"{name}.jpg") as im:
            assert im.mode == "CMYK", (name, im.mode)
            (out / f"{name}.rgb").write_bytes(im.convert("RGB").tobytes())
            print(name, im.info.get("adobe_transform"), Image.__version__)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
