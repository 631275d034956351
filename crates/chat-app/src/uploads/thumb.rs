//! Thumbnails: every accepted image's header is read on upload (which also proves it is
//! the format its magic bytes claim) and, when it can be decoded within the budget,
//! shrunk to a PNG of at most 320 × 320.
//!
//! Decoding is where a small file can cost a lot: a 136 KB PNG can declare 8 000 × 6 000
//! pixels (144 MB decoded), a 40 KB one 100 000 × 100 000 (a decompression bomb). So:
//!
//! - the header is read first: over [`MAX_SIDE`] on a side the image is refused (`415`);
//! - what decoding would allocate is worked out from the header and held against
//!   [`MAX_DECODED_BYTES`], far under what the old full decode allowed: a thumbnail
//!   needs no more. An image over it is still accepted, with no thumbnail, and served
//!   as a download (it was never decoded, so it is never shown inline);
//! - JPEG, the format of large photos, is decoded scaled in the DCT (`jpeg-decoder`'s
//!   1/2, 1/4, 1/8 scaling to the smallest size still covering the thumbnail): a
//!   48-megapixel photo decodes to 1 000 × 750. A progressive JPEG holds its
//!   coefficients at full size whatever the scale, and is counted so;
//! - the decoders get the same budget as their own memory limits (`image::Limits`,
//!   `jpeg_decoder`'s buffer limit) as a second guard;
//! - at most [`MAX_AT_ONCE`] decodes run at a time, on threads of their own
//!   ([`Thumbnailer`]), never on the async workers.

use std::io::Cursor;
use std::sync::Arc;

use bytes::Bytes;
use image::metadata::Orientation;
use image::{DynamicImage, GrayImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};
use jpeg_decoder::{CodingProcess, PixelFormat};
use tokio::sync::Semaphore;

use super::sniff::Kind;

/// Largest side of a thumbnail, in pixels.
pub const THUMB_SIDE: u32 = 320;
/// Largest width or height of an accepted image (the header says it): past it, `415`.
pub const MAX_SIDE: u32 = 10_000;
/// Most bytes one thumbnail's decode may allocate: 64 MiB, e.g. a 16-megapixel RGBA
/// PNG (4 096 × 4 096 × 4), a 5K screenshot, or any baseline JPEG up to [`MAX_SIDE`]
/// (decoded scaled). Over it: no thumbnail.
pub const MAX_DECODED_BYTES: u64 = 64 * 1024 * 1024;
/// Images decoded at once on this node (each within [`MAX_DECODED_BYTES`]).
pub const MAX_AT_ONCE: usize = 2;

/// Why an image is refused (`415`).
#[derive(Debug, thiserror::Error)]
pub enum ThumbError {
    /// Over [`MAX_SIDE`].
    #[error("the image is too large (at most {MAX_SIDE} × {MAX_SIDE} pixels)")]
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
        Kind::Gif => Some(ImageFormat::Gif),
        Kind::Webp => Some(ImageFormat::WebP),
        _ => None,
    }
}

/// A PNG thumbnail of `data`, an image of `kind`, at most [`THUMB_SIDE`] on each side
/// (smaller images keep their size; EXIF orientation applied); `None` when decoding it
/// would pass [`MAX_DECODED_BYTES`]. Blocking: CPU-bound.
pub fn thumbnail(data: &[u8], kind: Kind) -> Result<Option<Vec<u8>>, ThumbError> {
    let decoded = if kind == Kind::Jpeg {
        jpeg(data)?
    } else {
        generic(data, kind)?
    };
    let Some((image, orientation)) = decoded else {
        return Ok(None);
    };
    // Shrunk first, then turned: the box is square, so the order does not change the
    // result, and turning the thumbnail copies 320 × 320 pixels instead of the image.
    let mut thumb = if image.width() > THUMB_SIDE || image.height() > THUMB_SIDE {
        image.thumbnail(THUMB_SIDE, THUMB_SIDE)
    } else {
        image
    };
    thumb.apply_orientation(orientation);
    let mut png = Vec::new();
    thumb
        .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
        .map_err(invalid)?;
    Ok(Some(png))
}

type Decoded = Option<(DynamicImage, Orientation)>;

/// PNG, GIF (first frame), WebP: decoded whole, within the budget.
fn generic(data: &[u8], kind: Kind) -> Result<Decoded, ThumbError> {
    let format = format(kind).ok_or_else(|| ThumbError::Invalid("not an image".into()))?;
    let mut reader = ImageReader::with_format(Cursor::new(data), format);
    reader.limits(limits());
    let mut decoder = match reader.into_decoder() {
        Ok(decoder) => decoder,
        // The header alone passes a limit: a side over MAX_SIDE.
        Err(image::ImageError::Limits(_)) => return Err(ThumbError::TooLarge),
        Err(other) => return Err(invalid(other)),
    };
    let (width, height) = decoder.dimensions();
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(ThumbError::TooLarge);
    }
    if decoder.total_bytes() > MAX_DECODED_BYTES {
        return Ok(None);
    }
    let orientation = decoder.orientation().map_err(invalid)?;
    match DynamicImage::from_decoder(decoder) {
        Ok(image) => Ok(Some((image, orientation))),
        // The decoder needed more than its budget on the way (the second guard).
        Err(image::ImageError::Limits(_)) => Ok(None),
        Err(other) => Err(invalid(other)),
    }
}

/// JPEG: decoded scaled in the DCT to the smallest size that still covers the
/// thumbnail.
fn jpeg(data: &[u8]) -> Result<Decoded, ThumbError> {
    let jpeg_error = |e: jpeg_decoder::Error| ThumbError::Invalid(e.to_string());
    let mut decoder = jpeg_decoder::Decoder::new(Cursor::new(data));
    decoder.read_info().map_err(jpeg_error)?;
    let info = decoder
        .info()
        .ok_or_else(|| ThumbError::Invalid("no JPEG frame".into()))?;
    let (width, height) = (u32::from(info.width), u32::from(info.height));
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(ThumbError::TooLarge);
    }
    let components: u64 = match info.pixel_format {
        PixelFormat::L8 => 1,
        PixelFormat::RGB24 => 3,
        PixelFormat::CMYK32 => 4,
        // 16-bit lossless JPEG: rare, and not scalable.
        PixelFormat::L16 => return Ok(None),
    };
    if info.coding_process == CodingProcess::Lossless {
        return Ok(None);
    }
    let side = THUMB_SIDE as u16;
    let (out_w, out_h) = decoder.scale(side, side).map_err(jpeg_error)?;
    // The output and one plane per component at the output size, plus, for a
    // progressive JPEG, every coefficient (2 bytes) at full size: components are
    // counted at full resolution (an upper bound for subsampled colour).
    let output = u64::from(out_w) * u64::from(out_h) * components * 2;
    let coefficients = if info.coding_process == CodingProcess::DctProgressive {
        (u64::from(width) + 15) * (u64::from(height) + 15) * components * 2
    } else {
        0
    };
    if output + coefficients > MAX_DECODED_BYTES {
        return Ok(None);
    }
    decoder.set_max_decoding_buffer_size(usize::try_from(MAX_DECODED_BYTES).unwrap_or(usize::MAX));
    let pixels = decoder.decode().map_err(jpeg_error)?;
    let orientation = decoder
        .exif_data()
        .and_then(Orientation::from_exif_chunk)
        .unwrap_or(Orientation::NoTransforms);
    let (w, h) = (u32::from(out_w), u32::from(out_h));
    let short = || ThumbError::Invalid("JPEG decoded short".into());
    let image = match info.pixel_format {
        PixelFormat::L8 => {
            DynamicImage::ImageLuma8(GrayImage::from_raw(w, h, pixels).ok_or_else(short)?)
        }
        PixelFormat::RGB24 => {
            DynamicImage::ImageRgb8(RgbImage::from_raw(w, h, pixels).ok_or_else(short)?)
        }
        PixelFormat::CMYK32 => DynamicImage::ImageRgb8(
            RgbImage::from_raw(w, h, cmyk_to_rgb(&pixels)).ok_or_else(short)?,
        ),
        PixelFormat::L16 => return Ok(None),
    };
    Ok(Some((image, orientation)))
}

/// `jpeg-decoder`'s CMYK (Adobe's inverted form) as RGB, for a thumbnail.
fn cmyk_to_rgb(cmyk: &[u8]) -> Vec<u8> {
    cmyk.chunks_exact(4)
        .flat_map(|p| {
            let [c, m, y, k] = [p[0], p[1], p[2], p[3]].map(u16::from);
            [c * k / 255, m * k / 255, y * k / 255].map(|v| v as u8)
        })
        .collect()
}

fn invalid(error: image::ImageError) -> ThumbError {
    match error {
        image::ImageError::Limits(_) => ThumbError::TooLarge,
        other => ThumbError::Invalid(other.to_string()),
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// Makes thumbnails on [`MAX_AT_ONCE`] threads of its own, never on the async workers.
///
/// Its own threads rather than the runtime's blocking pool: the allocator keeps freed
/// memory per thread for a while, so decodes spread over the blocking pool's many
/// threads (it grows when other blocking work, such as password hashing, holds some)
/// left up to a decode's worth of memory cached on each; two threads cache at most two.
#[derive(Clone)]
pub struct Thumbnailer {
    permits: Arc<Semaphore>,
    jobs: std::sync::mpsc::Sender<Job>,
}

impl Default for Thumbnailer {
    fn default() -> Self {
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let queue = Arc::new(std::sync::Mutex::new(queue));
        for n in 0..MAX_AT_ONCE {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("thumbnail-{n}"))
                .spawn(move || loop {
                    // The lock is held only to take a job, never while running it.
                    let job = match queue.lock() {
                        Ok(queue) => queue.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return, // the Thumbnailer is gone
                    }
                });
            if let Err(error) = spawned {
                tracing::error!(%error, "cannot start a thumbnail thread");
            }
        }
        Self {
            permits: Arc::new(Semaphore::new(MAX_AT_ONCE)),
            jobs,
        }
    }
}

impl Thumbnailer {
    /// [`thumbnail`] on a thumbnail thread, waiting (first come, first served) for one of
    /// the [`MAX_AT_ONCE`] permits first. The permit moves into the job: if the request
    /// ends early, the decode still holds it until it finishes, so no more than
    /// [`MAX_AT_ONCE`] ever run or wait on the threads.
    pub async fn make(&self, data: Bytes, kind: Kind) -> Result<Option<Vec<u8>>, ThumbError> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ThumbError::Failed)?;
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let made = std::panic::catch_unwind(|| thumbnail(&data, kind))
                .unwrap_or(Err(ThumbError::Failed));
            // Released before the answer: the decode's memory is freed by now.
            drop(permit);
            let _ = done.send(made);
        });
        self.jobs.send(job).map_err(|_| ThumbError::Failed)?;
        result.await.map_err(|_| ThumbError::Failed)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageBuffer, Rgb, Rgba, RgbaImage};

    fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut out = Vec::new();
        image.write_to(&mut Cursor::new(&mut out), format).unwrap();
        out
    }

    fn decode_png(png: &[u8]) -> DynamicImage {
        image::load_from_memory_with_format(png, ImageFormat::Png).unwrap()
    }

    fn thumb_size(data: &[u8], kind: Kind) -> (u32, u32) {
        let thumb = decode_png(&thumbnail(data, kind).unwrap().expect("a thumbnail"));
        (thumb.width(), thumb.height())
    }

    #[test]
    fn a_large_image_is_shrunk_to_fit_320_keeping_its_ratio() {
        let image: RgbImage = ImageBuffer::from_fn(800, 400, |x, _| Rgb([(x % 256) as u8, 0, 0]));
        let image = DynamicImage::ImageRgb8(image);
        let png = encode(&image, ImageFormat::Png);
        assert_eq!(thumb_size(&png, Kind::Png), (320, 160));
        // JPEG goes through the scaled decoder: 800 × 400 decodes at 1/2, then shrinks.
        let jpeg = encode(&image, ImageFormat::Jpeg);
        assert_eq!(thumb_size(&jpeg, Kind::Jpeg), (320, 160));
        let tall = DynamicImage::ImageLuma8(ImageBuffer::from_pixel(300, 2000, image::Luma([7])));
        assert_eq!(
            thumb_size(&encode(&tall, ImageFormat::Jpeg), Kind::Jpeg),
            (48, 320)
        );
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
            assert_eq!(thumb_size(&data, kind), (40, 30), "{format:?}");
        }
        // The JPEG's colours survive the scaled decoder.
        let jpeg = encode(&image, ImageFormat::Jpeg);
        let thumb = decode_png(&thumbnail(&jpeg, Kind::Jpeg).unwrap().unwrap()).to_rgb8();
        let Rgb([r, g, b]) = *thumb.get_pixel(20, 15);
        assert!(r < 40 && (80..120).contains(&g) && b > 170, "{r} {g} {b}");
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

    /// A JPEG whose frame header declares `width` × `height` (a 16 × 16 image patched).
    fn jpeg_header(width: u16, height: u16, progressive: bool) -> Vec<u8> {
        let image = DynamicImage::ImageRgb8(ImageBuffer::from_pixel(16, 16, Rgb([1, 2, 3])));
        let mut jpeg = encode(&image, ImageFormat::Jpeg);
        let sof = jpeg
            .windows(2)
            .position(|w| w == [0xff, 0xc0])
            .expect("a baseline frame");
        // SOF: marker, length (2), precision (1), height (2), width (2).
        jpeg[sof + 5..sof + 7].copy_from_slice(&height.to_be_bytes());
        jpeg[sof + 7..sof + 9].copy_from_slice(&width.to_be_bytes());
        if progressive {
            jpeg[sof + 1] = 0xc2;
        }
        jpeg
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
    fn a_huge_declared_side_is_refused_from_the_header() {
        for (w, h) in [(100_000, 100_000), (MAX_SIDE + 1, 1), (1, MAX_SIDE + 1)] {
            let bomb = png_header(w, h);
            assert!(bomb.len() < 100, "the test PNG is small");
            assert!(
                matches!(thumbnail(&bomb, Kind::Png), Err(ThumbError::TooLarge)),
                "{w}×{h}"
            );
        }
        let jpeg = jpeg_header(MAX_SIDE as u16 + 1, 100, false);
        assert!(matches!(
            thumbnail(&jpeg, Kind::Jpeg),
            Err(ThumbError::TooLarge)
        ));
    }

    #[test]
    fn over_the_decode_budget_there_is_no_thumbnail_and_nothing_is_decoded() {
        let started = std::time::Instant::now();
        // RGB: 8 000 × 6 000 is 144 MB decoded, 10 000² 300 MB, 5 000² 75 MB.
        for (w, h) in [(8_000, 6_000), (MAX_SIDE, MAX_SIDE), (5_000, 5_000)] {
            let bomb = png_header(w, h);
            assert!(matches!(thumbnail(&bomb, Kind::Png), Ok(None)), "{w}×{h}");
        }
        // A progressive JPEG keeps every coefficient at full size: counted so.
        assert!(matches!(
            thumbnail(&jpeg_header(8_000, 6_000, true), Kind::Jpeg),
            Ok(None)
        ));
        // Refused from the header: nothing was decoded, so it is quick.
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn the_worst_image_within_the_budget_still_gets_its_thumbnail() {
        // 4 096 × 3 072 RGBA: 48 MiB decoded.
        let image: RgbaImage = ImageBuffer::from_pixel(4096, 3072, Rgba([10, 20, 30, 255]));
        let png = encode(&DynamicImage::ImageRgba8(image), ImageFormat::Png);
        assert_eq!(thumb_size(&png, Kind::Png), (320, 240));
    }

    #[test]
    fn a_big_baseline_jpeg_is_decoded_scaled() {
        // 4 000 × 4 000 baseline: 48 MB at full size, 500 × 500 at 1/8. The scan is a
        // 16 × 16 image's; the decoder fills the rest, as it does for any truncated
        // JPEG. (The scaled decode is what lets this pass: full size would not fit the
        // budget next to its planes.)
        let jpeg = jpeg_header(4_000, 4_000, false);
        assert!(jpeg.len() < 1_000);
        assert_eq!(thumb_size(&jpeg, Kind::Jpeg), (320, 320));
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
            thumbnail(b"\xff\xd8\xff\xe0 not a jpeg", Kind::Jpeg),
            Err(ThumbError::Invalid(_))
        ));
        assert!(matches!(
            thumbnail(b"hello", Kind::Text),
            Err(ThumbError::Invalid(_))
        ));
    }

    #[tokio::test]
    async fn the_thumbnailer_runs_on_its_own_threads_and_survives_a_failed_decode() {
        let image = DynamicImage::ImageRgb8(ImageBuffer::from_pixel(500, 500, Rgb([5, 5, 5])));
        let png = Bytes::from(encode(&image, ImageFormat::Png));
        let thumbs = Thumbnailer::default();
        let broken = thumbs
            .make(Bytes::from_static(b"\x89PNG\r\n\x1a\n"), Kind::Png)
            .await;
        assert!(matches!(broken, Err(ThumbError::Invalid(_))));
        let made: Vec<_> = (0..5)
            .map(|_| thumbs.make(png.clone(), Kind::Png))
            .collect();
        for thumb in made {
            let thumb = decode_png(&thumb.await.unwrap().unwrap());
            assert_eq!((thumb.width(), thumb.height()), (320, 320));
        }
        assert_eq!(thumbs.permits.available_permits(), MAX_AT_ONCE);
    }
}
