//! `[[static]]`: files served beside the sockets (Phoenix's `Plug.Static`), so a page
//! and its scripts come from the gateway's own origin and reach `/socket` without CORS
//! or a second server.
//!
//! Every file is read once, at start (and by `phx-gateway check`), and served from
//! memory: a request never touches the disk, so no request path can reach a file that
//! was not listed at start (no traversal, no symlink games), and the memory they hold
//! is known before the first connection ([`MAX_TOTAL_BYTES`] at most).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use phx_server::{status_response, Body, Endpoint, HttpHandler};

/// The most bytes all static files together may hold: they live in memory for the
/// gateway's life. A site larger than this belongs on a web server or a CDN.
pub const MAX_TOTAL_BYTES: usize = 64 * 1024 * 1024;

/// One `[[static]]` table: a URL path and where its files are.
#[derive(Debug, Clone)]
pub enum Mount {
    /// `path = "/"`, `file = "index.html"`: one URL, one file.
    File { path: String, file: PathBuf },
    /// `path = "/assets/"`, `dir = "assets"`: `/assets/<name>` for every regular file
    /// directly in the directory whose name is plain (letters, digits, `.`, `-`, `_`,
    /// not starting with `.`).
    Dir { path: String, dir: PathBuf },
}

/// A file as served.
#[derive(Debug, Clone)]
struct Asset {
    content_type: &'static str,
    data: Bytes,
}

/// Every static file by URL path, read at start.
#[derive(Debug, Clone, Default)]
pub struct StaticFiles {
    files: HashMap<String, Asset>,
    bytes: usize,
}

/// Why a mount could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StaticError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} is not a directory")]
    NotADirectory(PathBuf),
    #[error("static files would hold more than {MAX_TOTAL_BYTES} bytes (64 MiB): serve a site this large from a web server")]
    TooLarge,
}

/// A plain file name: what a `dir` mount serves.
fn plain(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json" | "map") => "application/json",
        Some("txt") => "text/plain; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        Some("wasm") => "application/wasm",
        _ => "application/octet-stream",
    }
}

impl StaticFiles {
    /// Reads one mount's files; a URL already taken by an earlier mount keeps its file.
    pub fn add(&mut self, mount: &Mount) -> Result<(), StaticError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| StaticError::Read {
                path: path.to_owned(),
                source,
            })
        };
        let mut found: Vec<(String, PathBuf)> = Vec::new();
        match mount {
            Mount::File { path, file } => found.push((path.clone(), file.clone())),
            Mount::Dir { path, dir } => {
                let entries = std::fs::read_dir(dir).map_err(|source| {
                    if dir.is_file() {
                        StaticError::NotADirectory(dir.clone())
                    } else {
                        StaticError::Read {
                            path: dir.clone(),
                            source,
                        }
                    }
                })?;
                for entry in entries.flatten() {
                    let name = entry.file_name();
                    let Some(name) = name.to_str().filter(|n| plain(n)) else {
                        continue;
                    };
                    // Regular files (a symlink is followed once, here, at start).
                    if entry.path().is_file() {
                        found.push((format!("{path}{name}"), entry.path()));
                    }
                }
            }
        }
        for (url, file) in found {
            if self.files.contains_key(&url) {
                continue;
            }
            let data = read(&file)?;
            self.bytes += data.len();
            if self.bytes > MAX_TOTAL_BYTES {
                return Err(StaticError::TooLarge);
            }
            self.files.insert(
                url,
                Asset {
                    content_type: content_type(&file),
                    data: Bytes::from(data),
                },
            );
        }
        Ok(())
    }

    /// How many files are served.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether nothing is served.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    fn answer(&self, method: &Method, path: &str) -> Response<Body> {
        if method != Method::GET && method != Method::HEAD {
            let mut resp = status_response(StatusCode::METHOD_NOT_ALLOWED, "");
            resp.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            return resp;
        }
        let Some(asset) = self.files.get(path) else {
            return status_response(StatusCode::NOT_FOUND, "not found");
        };
        let data = if method == Method::HEAD {
            Bytes::new()
        } else {
            asset.data.clone()
        };
        let mut resp = Response::new(Body::new(data));
        let headers = resp.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
        headers.insert(CONTENT_LENGTH, HeaderValue::from(asset.data.len()));
        // Revalidated on every load: a deploy shows at once.
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        headers.insert(
            "x-content-type-options",
            HeaderValue::from_static("nosniff"),
        );
        resp
    }
}

impl HttpHandler for StaticFiles {
    async fn call(&self, req: Request<Incoming>, _endpoint: &Endpoint) -> Response<Body> {
        self.answer(req.method(), req.uri().path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> (tempdir::Dir, StaticFiles) {
        let dir = tempdir::Dir::new();
        std::fs::create_dir(dir.path().join("assets")).unwrap();
        std::fs::write(dir.path().join("index.html"), "<h1>hi</h1>").unwrap();
        std::fs::write(dir.path().join("assets/app.js"), "x()").unwrap();
        std::fs::write(dir.path().join("assets/.env"), "SECRET=1").unwrap();
        std::fs::write(dir.path().join("secret.txt"), "no").unwrap();
        std::fs::create_dir(dir.path().join("assets/sub")).unwrap();
        std::fs::write(dir.path().join("assets/sub/deep.js"), "no").unwrap();
        let mut files = StaticFiles::default();
        files
            .add(&Mount::File {
                path: "/".into(),
                file: dir.path().join("index.html"),
            })
            .unwrap();
        files
            .add(&Mount::Dir {
                path: "/assets/".into(),
                dir: dir.path().join("assets"),
            })
            .unwrap();
        (dir, files)
    }

    mod tempdir {
        pub struct Dir(std::path::PathBuf);
        impl Dir {
            pub fn new() -> Self {
                use std::sync::atomic::{AtomicU64, Ordering};
                static N: AtomicU64 = AtomicU64::new(0);
                let path = std::env::temp_dir().join(format!(
                    "phx-gateway-static-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed)
                ));
                std::fs::create_dir_all(&path).unwrap();
                Self(path)
            }
            pub fn path(&self) -> &std::path::Path {
                &self.0
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[test]
    fn only_listed_plain_files_are_served() {
        let (_dir, files) = files();
        assert_eq!(files.len(), 2);
        let ok = files.answer(&Method::GET, "/");
        assert_eq!(ok.status(), StatusCode::OK);
        assert_eq!(ok.headers()[CONTENT_TYPE], "text/html; charset=utf-8");
        let js = files.answer(&Method::GET, "/assets/app.js");
        assert_eq!(js.headers()[CONTENT_TYPE], "text/javascript; charset=utf-8");
        assert_eq!(js.headers()["x-content-type-options"], "nosniff");
        for path in [
            "/assets/.env",
            "/assets/sub/deep.js",
            "/assets/../secret.txt",
            "/secret.txt",
            "/index.html",
            "/assets/",
        ] {
            assert_eq!(
                files.answer(&Method::GET, path).status(),
                StatusCode::NOT_FOUND,
                "{path}"
            );
        }
        assert_eq!(
            files.answer(&Method::POST, "/").status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
        let head = files.answer(&Method::HEAD, "/assets/app.js");
        assert_eq!(head.headers()[CONTENT_LENGTH], "3");
    }

    #[test]
    fn a_missing_directory_or_file_is_an_error() {
        let mut files = StaticFiles::default();
        let err = files
            .add(&Mount::Dir {
                path: "/a/".into(),
                dir: "/surely/not/here".into(),
            })
            .unwrap_err();
        assert!(err.to_string().starts_with("cannot read /surely/not/here"));
        let err = files
            .add(&Mount::File {
                path: "/a".into(),
                file: "/surely/not/here.js".into(),
            })
            .unwrap_err();
        assert!(err.to_string().starts_with("cannot read"));
    }
}
