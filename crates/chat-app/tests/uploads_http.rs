//! The upload API against the real binary, under attack: one user trickling as many
//! uploads as they can does not keep another user from uploading, and images made to
//! decode huge do not grow the server's memory past the decode budget (SECURITY.md,
//! "Chat app"). Peak memory is the server's own `VmHWM`; figures are printed.

mod binary;

use std::io::Cursor;
use std::time::{Duration, Instant};

use binary::{command, page_dir, request, App};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The app with uploads in a directory of its own and `env` on top.
fn start(env: &[(&str, &str)]) -> (App, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = command();
    cmd.env("STATIC_DIR", page_dir(true))
        .env("BIND", "127.0.0.1")
        .env("UPLOAD_DIR", dir.path().join("files"))
        .env("REGISTER_BURST", "100")
        .env("UPLOAD_BURST", "100");
    for (key, value) in env {
        cmd.env(key, value);
    }
    (App::start(cmd), dir)
}

async fn register(app: &App, name: &str) -> String {
    let body = format!(r#"{{"username":"{name}","password":"correct horse battery"}}"#);
    let (status, reply) = request(&app.addr, "POST", "/api/register", None, &body).await;
    assert_eq!(status, 201, "{reply}");
    let reply: serde_json::Value = serde_json::from_str(&reply).unwrap();
    reply["token"].as_str().unwrap().to_owned()
}

/// `POST /api/uploads?name=<name>` with `data`: (status, JSON reply).
async fn upload(addr: &str, token: &str, name: &str, data: &[u8]) -> (u16, serde_json::Value) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /api/uploads?name={name} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Authorization: Bearer {token}\r\nContent-Length: {}\r\n\r\n",
        data.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(data).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut out))
        .await
        .expect("an answer within 60 s")
        .unwrap();
    parse(&out)
}

fn parse(out: &[u8]) -> (u16, serde_json::Value) {
    let text = String::from_utf8_lossy(out);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or_default())
}

/// An upload that declares 1 MB and sends one byte every 300 ms, for as long as the
/// server lets it: (status, when it came).
async fn trickle(addr: String, token: String, i: usize) -> (u16, Duration) {
    let started = Instant::now();
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /api/uploads?name=trickle{i}.txt HTTP/1.1\r\nHost: localhost\r\n\
         Authorization: Bearer {token}\r\nContent-Length: 1000000\r\n\r\na"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let sender = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if write.write_all(b"a").await.is_err() {
                return;
            }
        }
    });
    let mut out = vec![0u8; 4096];
    let mut got = 0;
    let status = loop {
        match tokio::time::timeout(Duration::from_secs(150), read.read(&mut out[got..])).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break 0,
            Ok(Ok(n)) => {
                got += n;
                let text = String::from_utf8_lossy(&out[..got]);
                if let Some(status) = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()) {
                    break status;
                }
            }
        }
    };
    sender.abort();
    (status, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_users_trickling_uploads_leave_every_other_user_uploading() {
    let (app, _dir) = start(&[
        ("UPLOAD_MIN_RATE", "1024"),
        ("UPLOAD_RATE_WINDOW_MS", "2000"),
    ]);
    let mallory = register(&app, "mallory").await;
    let alice = register(&app, "alice").await;
    // As many as she can: more than every slot the node had (16) before bounds per user.
    let trickles: Vec<_> = (0..20)
        .map(|i| tokio::spawn(trickle(app.addr.clone(), mallory.clone(), i)))
        .collect();
    // Give them time to be read and admitted (or refused) first.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let started = Instant::now();
    let (status, reply) = upload(&app.addr, &alice, "hello.txt", b"hello from alice").await;
    let took = started.elapsed();
    assert_eq!(
        status, 201,
        "alice's upload while mallory trickles: {reply}"
    );
    eprintln!("alice's upload while 20 trickle: {took:?}");
    let mut statuses = Vec::new();
    for t in trickles {
        statuses.push(t.await.unwrap());
    }
    eprintln!("mallory's trickles: {statuses:?}");
    // Mallory got at most two slots; the rest were refused at once (429), and the two
    // were cut off for being too slow (408) long before the 2-minute body deadline.
    let refused = statuses.iter().filter(|(s, _)| *s == 429).count();
    let cut = statuses.iter().filter(|(s, _)| *s == 408).count();
    assert!(refused >= 18, "{statuses:?}");
    assert_eq!(refused + cut, 20, "{statuses:?}");
    for (status, when) in &statuses {
        if *status == 408 {
            assert!(*when < Duration::from_secs(30), "cut off after {when:?}");
        }
    }
}

// ---- Images that decode huge ----

/// Bits into bytes, least significant first (deflate's order).
#[derive(Default)]
struct Bits {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl Bits {
    fn put(&mut self, value: u64, len: u32) {
        self.acc |= value << self.n;
        self.n += len;
        while self.n >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }

    /// A Huffman code: most significant bit first.
    fn code(&mut self, code: u64, len: u32) {
        let reversed = (0..len).fold(0, |r, i| (r << 1) | ((code >> i) & 1));
        self.put(reversed, len);
    }

    fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            self.out.push(self.acc as u8);
        }
        self.out
    }
}

/// A zlib stream of `n` zero bytes: one literal, then copies of 258 at distance 1, in
/// one fixed-Huffman block (13 bits per 258 bytes).
fn zlib_zeros(n: usize) -> Vec<u8> {
    let mut bits = Bits::default();
    bits.put(1, 1); // final block
    bits.put(1, 2); // fixed Huffman codes
    bits.code(0x30, 8); // literal 0
    let mut left = n - 1;
    while left >= 258 {
        bits.code(0xc5, 8); // length 258 (symbol 285)
        bits.code(0, 5); // distance 1
        left -= 258;
    }
    for _ in 0..left {
        bits.code(0x30, 8);
    }
    bits.code(0, 7); // end of block
    let mut out = vec![0x78, 0x01];
    out.extend(bits.finish());
    let adler = ((n % 65521) as u32) << 16 | 1;
    out.extend(adler.to_be_bytes());
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    let table: Vec<u32> = (0..256u32)
        .map(|mut c| {
            for _ in 0..8 {
                c = if c & 1 == 1 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            c
        })
        .collect();
    !bytes.iter().fold(!0u32, |c, &b| {
        table[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8)
    })
}

fn chunk(png: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
    png.extend((data.len() as u32).to_be_bytes());
    let start = png.len();
    png.extend(kind);
    png.extend(data);
    let crc = crc32(&png[start..]);
    png.extend(crc.to_be_bytes());
}

/// A black PNG of `width` × `height`, 8 bits, `channels` 3 (RGB) or 4 (RGBA): small on
/// disk, `width × height × channels` bytes decoded.
fn black_png(width: u32, height: u32, channels: usize) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend(width.to_be_bytes());
    ihdr.extend(height.to_be_bytes());
    let colour = if channels == 4 { 6 } else { 2 };
    ihdr.extend([8, colour, 0, 0, 0]);
    chunk(&mut png, b"IHDR", &ihdr);
    let raw = (1 + width as usize * channels) * height as usize;
    chunk(&mut png, b"IDAT", &zlib_zeros(raw));
    chunk(&mut png, b"IEND", &[]);
    png
}

/// A JPEG whose frame declares `width` × `height` around a 16 × 16 image's scan.
fn declared_jpeg(width: u16, height: u16) -> Vec<u8> {
    let image = image::DynamicImage::ImageRgb8(image::RgbImage::new(16, 16));
    let mut jpeg = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut jpeg), image::ImageFormat::Jpeg)
        .unwrap();
    let sof = jpeg.windows(2).position(|w| w == [0xff, 0xc0]).unwrap();
    jpeg[sof + 5..sof + 7].copy_from_slice(&height.to_be_bytes());
    jpeg[sof + 7..sof + 9].copy_from_slice(&width.to_be_bytes());
    jpeg
}

/// Peak resident memory of `pid` so far, MiB.
fn peak_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib / 1024.0
}

/// Uploads every file of `files` at once, each on a connection of its own: each
/// (status, reply).
async fn at_once(
    app: &App,
    token: &str,
    files: &[(&str, Vec<u8>)],
) -> Vec<(u16, serde_json::Value)> {
    let tasks: Vec<_> = files
        .iter()
        .map(|(name, data)| {
            let (addr, token, name, data) = (
                app.addr.clone(),
                token.to_owned(),
                name.to_string(),
                data.clone(),
            );
            tokio::spawn(async move { upload(&addr, &token, &name, &data).await })
        })
        .collect();
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_made_to_decode_huge_keep_the_servers_memory_bounded() {
    // Four at once from one user (the default allows two).
    let (app, _dir) = start(&[("UPLOAD_USER_AT_ONCE", "4")]);
    let token = register(&app, "bomber").await;
    let pid = app.child.id();
    // Warm up: one ordinary image, so what follows measures the bombs alone.
    let (status, _) = upload(&app.addr, &token, "warm.png", &black_png(64, 64, 3)).await;
    assert_eq!(status, 201);

    // 8 000 × 6 000 RGB: under 1 MB on disk, 144 MB decoded. Four at once.
    let bomb = black_png(8_000, 6_000, 3);
    assert!(bomb.len() < 1_000_000, "{}", bomb.len());
    let before = peak_mib(pid);
    let files: Vec<(&str, Vec<u8>)> = (0..4).map(|_| ("bomb.png", bomb.clone())).collect();
    for (status, reply) in at_once(&app, &token, &files).await {
        // Accepted as a plain file: no thumbnail, never decoded.
        assert_eq!(status, 201, "{reply}");
        assert_eq!(reply["thumb_url"], serde_json::Value::Null, "{reply}");
    }
    let bombs = peak_mib(pid) - before;
    eprintln!(
        "4 PNG bombs (8000 x 6000, {} bytes each) at once: peak RSS +{bombs:.1} MiB",
        bomb.len()
    );
    assert!(bombs < 100.0, "peak RSS grew {bombs:.1} MiB");

    // A JPEG declaring 8 000 × 6 000 (144 MB at full size): decoded at 1/8.
    let jpeg = declared_jpeg(8_000, 6_000);
    let before = peak_mib(pid);
    let files: Vec<(&str, Vec<u8>)> = (0..2).map(|_| ("big.jpg", jpeg.clone())).collect();
    for (status, reply) in at_once(&app, &token, &files).await {
        assert_eq!(status, 201, "{reply}");
        assert!(reply["thumb_url"].is_string(), "{reply}");
    }
    let jpegs = peak_mib(pid) - before;
    eprintln!("2 JPEGs declaring 8000 x 6000 at once: peak RSS +{jpegs:.1} MiB");
    assert!(jpegs < 100.0, "peak RSS grew {jpegs:.1} MiB");

    // The worst image that still gets a thumbnail: 4 096 × 4 096 RGBA, 64 MiB decoded.
    // Three at once: two decode, the third waits.
    let worst = black_png(4_096, 4_096, 4);
    let before = peak_mib(pid);
    let files: Vec<(&str, Vec<u8>)> = (0..3).map(|_| ("worst.png", worst.clone())).collect();
    for (status, reply) in at_once(&app, &token, &files).await {
        assert_eq!(status, 201, "{reply}");
        assert!(reply["thumb_url"].is_string(), "{reply}");
    }
    let worst_growth = peak_mib(pid) - before;
    eprintln!("3 worst allowed PNGs (4096 x 4096 RGBA) at once: peak RSS +{worst_growth:.1} MiB");
    assert!(worst_growth < 240.0, "peak RSS grew {worst_growth:.1} MiB");
}
