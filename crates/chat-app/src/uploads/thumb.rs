//! Thumbnails: every accepted image is decoded once on upload, which also proves it is
//! the image its magic bytes claim, and shrunk to a PNG of at most 320 × 320.
//!
//! Decoding is where a small file can cost a lot: a 40 KB PNG can declare 100 000 ×
//! 100 000 pixels (a decompression bomb, 40 GB decoded). So the declared size is checked
//! against [`MAX_SIDE`] and [`MAX_DECODED_BYTES`] before any pixel is decoded, the
//! decoder gets the same bounds as `image::Limits`, at most [`MAX_AT_ONCE`] decodes run
//! at a time, and they run on the blocking pool, never on the async workers.

use std::io::Cursor;
use std::sync::Arc;

use bytes::Bytes;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};
use tokio::sync::Semaphore;

use super::sniff::Kind;

/// Largest side of a thumbnail, in pixels.
pub const THUMB_SIDE: u32 = 320;
/// Largest width or height of an image that is decoded.
pub const MAX_SIDE: u32 = 10_000;
/// Most bytes an image may take decoded (and the decoder's allocation limit): 160 MiB,
/// e.g. a 48-megapixel RGB photo (8000 × 6000 × 3).
pub const MAX_DECODED_BYTES: u64 = 160 * 1024 * 1024;
/// Images decoded at once on this node (each may take up to [`MAX_DECODED_BYTES`]).
pub const MAX_AT_ONCE: usize = 2;

/// Why an image gets no thumbnail, and so is refused (`415`).
#[derive(Debug, thiserror::Error)]
pub enum ThumbError {
    /// Over [`MAX_SIDE`] or [`MAX_DECODED_BYTES`].
    #[error("the image is too large to process (at most {MAX_SIDE} × {MAX_SIDE} pixels)")]
    TooLarge,
    /// Not decodable as the image its bytes announce.
    #[error("the image cannot be decoded: {0}")]
    Invalid(String),
    /// The blocking task failed (panicked) or the node is shutting down.
    #[error("the thumbnail could not be made")]
    Failed,
}

/// The decoding bounds given to `image`.
fn limits() -> Limits {
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODED_BYTES);
    limits
}

fn format(kind: Kind) -> Option<ImageFormat> {
    match kind {
        Kind::Png => Some(ImageFormat::Png),
        Kind::Jpeg => Some(ImageFormat::Jpeg),
        Kind::Gif => Some(ImageFormat::Gif),
        Kind::Webp => Some(ImageFormat::WebP),
        _ => None,
    }
}

/// A PNG thumbnail of `data`, an image of `kind`, at most [`THUMB_SIDE`] on each side
/// (smaller images keep their size; EXIF orientation applied). Blocking: CPU-bound.
pub fn thumbnail(data: &[u8], kind: Kind) -> Result<Vec<u8>, ThumbError> {
    let format = format(kind).ok_or_else(|| ThumbError::Invalid("not an image".into()))?;
    let mut reader = ImageReader::with_format(Cursor::new(data), format);
    reader.limits(limits());
    let mut decoder = reader.into_decoder().map_err(refusal)?;
    let (width, height) = decoder.dimensions();
    if width > MAX_SIDE || height > MAX_SIDE || decoder.total_bytes() > MAX_DECODED_BYTES {
        return Err(ThumbError::TooLarge);
    }
    let orientation = decoder.orientation().map_err(refusal)?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(refusal)?;
    image.apply_orientation(orientation);
    let thumb = if image.width() > THUMB_SIDE || image.height() > THUMB_SIDE {
        image.thumbnail(THUMB_SIDE, THUMB_SIDE)
    } else {
        image
    };
    let mut png = Vec::new();
    thumb
        .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
        .map_err(refusal)?;
    Ok(png)
}

fn refusal(error: image::ImageError) -> ThumbError {
    match error {
        image::ImageError::Limits(_) => ThumbError::TooLarge,
        other => ThumbError::Invalid(other.to_string()),
    }
}

/// Makes thumbnails off the async workers, [`MAX_AT_ONCE`] at a time.
#[derive(Clone)]
pub struct Thumbnailer {
    permits: Arc<Semaphore>,
}

impl Default for Thumbnailer {
    fn default() -> Self {
        Self {
            permits: Arc::new(Semaphore::new(MAX_AT_ONCE)),
        }
    }
}

impl Thumbnailer {
    /// [`thumbnail`] on the blocking pool, waiting for a permit first.
    pub async fn make(&self, data: Bytes, kind: Kind) -> Result<Vec<u8>, ThumbError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| ThumbError::Failed)?;
        tokio::task::spawn_blocking(move || thumbnail(&data, kind))
            .await
            .map_err(|_| ThumbError::Failed)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageBuffer, Rgb, RgbImage};

    fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut out = Vec::new();
        image.write_to(&mut Cursor::new(&mut out), format).unwrap();
        out
    }

    fn decode_png(png: &[u8]) -> DynamicImage {
        image::load_from_memory_with_format(png, ImageFormat::Png).unwrap()
    }

    #[test]
    fn a_large_image_is_shrunk_to_fit_320_keeping_its_ratio() {
        let image: RgbImage = ImageBuffer::from_fn(800, 400, |x, _| Rgb([(x % 256) as u8, 0, 0]));
        let png = encode(&DynamicImage::ImageRgb8(image), ImageFormat::Png);
        let thumb = decode_png(&thumbnail(&png, Kind::Png).unwrap());
        assert_eq!((thumb.width(), thumb.height()), (320, 160));
    }

    #[test]
    fn a_small_image_keeps_its_size_and_every_format_decodes() {
        let image = DynamicImage::ImageRgb8(ImageBuffer::from_pixel(40, 30, Rgb([9, 99, 199])));
        for (format, kind) in [
            (ImageFormat::Png, Kind::Png),
            (ImageFormat::Jpeg, Kind::Jpeg),
            (ImageFormat::Gif, Kind::Gif),
            (ImageFormat::WebP, Kind::Webp),
        ] {
            let data = encode(&image, format);
            assert_eq!(super::super::sniff::sniff(&data), Ok(kind));
            let thumb = decode_png(&thumbnail(&data, kind).unwrap());
            assert_eq!((thumb.width(), thumb.height()), (40, 30), "{format:?}");
        }
    }

    /// A PNG whose header declares `width` × `height` followed by one tiny compressed
    /// row: what a decompression bomb looks like before its pixels.
    fn png_header(width: u32, height: u32) -> Vec<u8> {
        let image = DynamicImage::ImageRgb8(ImageBuffer::from_pixel(1, 1, Rgb([0, 0, 0])));
        let mut png = encode(&image, ImageFormat::Png);
        // IHDR data starts at byte 16: width, height (big-endian); then fix its CRC.
        png[16..20].copy_from_slice(&width.to_be_bytes());
        png[20..24].copy_from_slice(&height.to_be_bytes());
        let crc = crc32(&png[12..29]);
        png[29..33].copy_from_slice(&crc.to_be_bytes());
        png
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xffff_ffffu32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn a_huge_declared_size_is_refused_before_decoding() {
        let started = std::time::Instant::now();
        for (w, h) in [(100_000, 100_000), (MAX_SIDE + 1, 1), (1, MAX_SIDE + 1)] {
            let bomb = png_header(w, h);
            assert!(bomb.len() < 100, "the test PNG is small");
            assert!(
                matches!(thumbnail(&bomb, Kind::Png), Err(ThumbError::TooLarge)),
                "{w}×{h}"
            );
        }
        // Within each side but over the byte budget: 10 000 × 10 000 RGB is 300 MB.
        assert!(matches!(
            thumbnail(&png_header(MAX_SIDE, MAX_SIDE), Kind::Png),
            Err(ThumbError::TooLarge)
        ));
        // Refused from the header: nothing was decoded, so it is quick.
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn a_truncated_image_is_invalid() {
        let image = DynamicImage::ImageRgb8(ImageBuffer::from_pixel(64, 64, Rgb([1, 2, 3])));
        let png = encode(&image, ImageFormat::Png);
        assert!(matches!(
            thumbnail(&png[..png.len() / 2], Kind::Png),
            Err(ThumbError::Invalid(_))
        ));
        assert!(matches!(
            thumbnail(b"\x89PNG\r\n\x1a\n", Kind::Png),
            Err(ThumbError::Invalid(_))
        ));
        assert!(matches!(
            thumbnail(b"hello", Kind::Text),
            Err(ThumbError::Invalid(_))
        ));
    }

    #[tokio::test]
    async fn the_thumbnailer_runs_off_the_async_workers() {
        let image = DynamicImage::ImageRgb8(ImageBuffer::from_pixel(500, 500, Rgb([5, 5, 5])));
        let png = Bytes::from(encode(&image, ImageFormat::Png));
        let thumb = Thumbnailer::default().make(png, Kind::Png).await.unwrap();
        let thumb = decode_png(&thumb);
        assert_eq!((thumb.width(), thumb.height()), (320, 320));
    }
}
