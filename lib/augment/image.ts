/**
 * The image type every augmentation works on: 8-bit RGB, interleaved, row-major, no padding.
 * Pixel (x, y) channel c lives at `data[(y * width + x) * 3 + c]`.
 */
export type RGBImage = { width: number; height: number; data: Uint8Array };

/** A fill colour for areas outside a transformed image, as Pillow's `fillcolor`. */
export type RGB = readonly [number, number, number];

/** A new image; zero-filled, or filled with `fill` when given. */
export function createImage(width: number, height: number, fill?: RGB): RGBImage {
  checkSize(width, height, "createImage");
  const data = new Uint8Array(width * height * 3);
  if (fill && (fill[0] | fill[1] | fill[2]) !== 0) fillPixels(data, fill);
  return { width, height, data };
}

/** A deep copy. */
export function cloneImage(img: RGBImage): RGBImage {
  return { width: img.width, height: img.height, data: img.data.slice() };
}

/** Throws a clear error unless `img` is a well-formed RGBImage; `where` names the caller. */
export function checkImage(img: RGBImage, where: string): void {
  if (img === null || typeof img !== "object" || !(img.data instanceof Uint8Array)) {
    throw new TypeError(`${where}: expected an RGBImage {width, height, data: Uint8Array}`);
  }
  checkSize(img.width, img.height, where);
  if (img.data.length !== img.width * img.height * 3) {
    throw new RangeError(
      `${where}: image data has ${img.data.length} bytes, expected ${img.width}x${img.height}x3 = ` +
        `${img.width * img.height * 3}`,
    );
  }
}

/** Checks a fill colour: three integers in [0, 255]. */
export function checkFill(fill: RGB, where: string): void {
  if (
    !Array.isArray(fill) || fill.length !== 3 ||
    !fill.every((v) => Number.isInteger(v) && v >= 0 && v <= 255)
  ) {
    throw new RangeError(`${where}: fill must be three integers in [0, 255], got ${fill}`);
  }
}

/** A copy of the `w x h` region whose top-left corner is (left, top); it must lie inside. */
export function crop(img: RGBImage, left: number, top: number, w: number, h: number): RGBImage {
  if (
    !Number.isInteger(left) || !Number.isInteger(top) || left < 0 || top < 0 ||
    left + w > img.width || top + h > img.height
  ) {
    throw new RangeError(
      `crop: region (${left}, ${top}) ${w}x${h} is not inside the ${img.width}x${img.height} image`,
    );
  }
  const out = createImage(w, h);
  const rowBytes = w * 3;
  for (let y = 0; y < h; y++) {
    const s = ((top + y) * img.width + left) * 3;
    out.data.set(img.data.subarray(s, s + rowBytes), y * rowBytes);
  }
  return out;
}

function checkSize(width: number, height: number, where: string): void {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new RangeError(`${where}: image size must be positive integers, got ${width}x${height}`);
  }
}

function fillPixels(data: Uint8Array, fill: RGB): void {
  const n = data.length;
  if (n === 0) return;
  data[0] = fill[0];
  data[1] = fill[1];
  data[2] = fill[2];
  // Doubling copy: log2(n) memmoves instead of a per-byte loop.
  let filled = 3;
  while (filled < n) {
    const len = Math.min(filled, n - filled);
    data.copyWithin(filled, 0, len);
    filled += len;
  }
}
