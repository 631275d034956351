//! The browser page and its assets, served from `js-client/` at run time.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use phx_server::{status_response, Body, Endpoint, HttpHandler};

/// Serves `/` (index.html), `/assets/*` (the page's files) and `/assets/phoenix.mjs`
/// (the `phoenix` npm package exactly as installed). Health is the endpoint's
/// `/healthz` and `/readyz` (docs/operating.md).
#[derive(Debug, Clone)]
pub struct Web {
    root: PathBuf,
}

impl Web {
    /// Serves files under `root` (the `js-client/` directory).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The phoenix.js module the page imports.
    pub fn phoenix_module(&self) -> PathBuf {
        self.root
            .join("node_modules/phoenix/priv/static/phoenix.mjs")
    }

    fn resolve(&self, path: &str) -> Option<PathBuf> {
        match path {
            "/" | "/index.html" => Some(self.root.join("index.html")),
            "/assets/phoenix.mjs" => Some(self.phoenix_module()),
            _ => {
                let name = path.strip_prefix("/assets/")?;
                // Plain file names only: no traversal, no subdirectories.
                let plain = !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
                (plain && !name.starts_with('.')).then(|| self.root.join("assets").join(name))
            }
        }
    }
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") | Some("mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        _ => "application/octet-stream",
    }
}

impl HttpHandler for Web {
    async fn call(&self, req: Request<Incoming>, _endpoint: &Endpoint) -> Response<Body> {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return status_response(StatusCode::METHOD_NOT_ALLOWED, "");
        }
        let Some(file) = self.resolve(req.uri().path()) else {
            return status_response(StatusCode::NOT_FOUND, "not found");
        };
        match tokio::fs::read(&file).await {
            Ok(data) => {
                let mut resp = Response::new(Body::new(Bytes::from(data)));
                resp.headers_mut().insert(
                    CONTENT_TYPE,
                    content_type(&file).parse().expect("static header"),
                );
                resp.headers_mut()
                    .insert(CACHE_CONTROL, "no-cache".parse().expect("static header"));
                resp
            }
            Err(_) => status_response(StatusCode::NOT_FOUND, "not found"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_asset_names_resolve() {
        let web = Web::new("/srv/js");
        assert_eq!(
            web.resolve("/").unwrap(),
            PathBuf::from("/srv/js/index.html")
        );
        assert_eq!(
            web.resolve("/assets/app.js").unwrap(),
            PathBuf::from("/srv/js/assets/app.js")
        );
        assert!(web.resolve("/assets/../Cargo.toml").is_none());
        assert!(web.resolve("/assets/.env").is_none());
        assert!(web.resolve("/assets/a/b.js").is_none());
        assert!(web.resolve("/etc/passwd").is_none());
        assert!(web
            .resolve("/assets/phoenix.mjs")
            .unwrap()
            .ends_with("phoenix/priv/static/phoenix.mjs"));
    }
}
