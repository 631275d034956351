//! What an uploaded file is, from its bytes only: the name's extension is never asked,
//! so `x.png` holding HTML is refused rather than served to a browser under a type it
//! chose. Only types a browser cannot run as a document are accepted, and every one of
//! them is served with `nosniff` and a sandboxing CSP besides (see `http`).

/// The accepted file types (docs/chat.md, "Uploads").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// PNG (also APNG, which starts the same).
    Png,
    /// JPEG.
    Jpeg,
    /// GIF.
    Gif,
    /// WebP.
    Webp,
    /// PDF, always served as a download.
    Pdf,
    /// UTF-8 text that does not begin like markup.
    Text,
    /// ZIP, including ZIP-based containers (docx, odt, epub, jar…), served as a ZIP.
    Zip,
}

impl Kind {
    /// The MIME type stored with the file and sent as its `Content-Type` (text gets
    /// `; charset=utf-8` there, see [`Kind::header_value`]).
    pub fn content_type(self) -> &'static str {
        match self {
            Kind::Png => "image/png",
            Kind::Jpeg => "image/jpeg",
            Kind::Gif => "image/gif",
            Kind::Webp => "image/webp",
            Kind::Pdf => "application/pdf",
            Kind::Text => "text/plain",
            Kind::Zip => "application/zip",
        }
    }

    /// The kind a stored `content_type` names (the inverse of [`Kind::content_type`]).
    pub fn from_content_type(content_type: &str) -> Option<Kind> {
        [
            Kind::Png,
            Kind::Jpeg,
            Kind::Gif,
            Kind::Webp,
            Kind::Pdf,
            Kind::Text,
            Kind::Zip,
        ]
        .into_iter()
        .find(|k| k.content_type() == content_type)
    }

    /// The `Content-Type` header: text is declared UTF-8 so no browser guesses a
    /// charset (UTF-7 and friends).
    pub fn header_value(self) -> &'static str {
        match self {
            Kind::Text => "text/plain; charset=utf-8",
            other => other.content_type(),
        }
    }

    /// Images are shown inline and get a thumbnail; everything else is a download.
    pub fn is_image(self) -> bool {
        matches!(self, Kind::Png | Kind::Jpeg | Kind::Gif | Kind::Webp)
    }
}

/// Why content is refused (`415`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SniffError {
    /// HTML, SVG, XML: text a browser would render as a document.
    #[error("markup (HTML, SVG, XML) is not accepted")]
    Markup,
    /// A recognised type that is not on the list.
    #[error("{0} files are not accepted (PNG, JPEG, GIF, WebP, PDF, UTF-8 text or ZIP)")]
    NotAccepted(&'static str),
    /// Neither a recognised binary type nor UTF-8 text.
    #[error("unrecognised content: accepted are PNG, JPEG, GIF, WebP, PDF, UTF-8 text and ZIP")]
    Unknown,
}

/// The kind of `data` (non-empty: the caller refuses empty bodies first).
pub fn sniff(data: &[u8]) -> Result<Kind, SniffError> {
    if let Some(found) = infer::get(data) {
        let accepted = match found.mime_type() {
            "image/png" => Some(Kind::Png),
            "image/jpeg" => Some(Kind::Jpeg),
            "image/gif" => Some(Kind::Gif),
            "image/webp" => Some(Kind::Webp),
            "application/pdf" => Some(Kind::Pdf),
            // `text/x-shellscript` (`#!…`) is plain text; the text rules below decide.
            "text/x-shellscript" => None,
            "text/html" | "text/xml" | "image/svg+xml" => return Err(SniffError::Markup),
            _ if is_zip(data) => Some(Kind::Zip),
            other => return Err(SniffError::NotAccepted(other)),
        };
        if let Some(kind) = accepted {
            return Ok(kind);
        }
    }
    if is_zip(data) {
        return Ok(Kind::Zip);
    }
    text(data)
}

/// A ZIP local file header or an empty archive's end record. ZIP-based formats (docx,
/// epub, jar…) are ZIPs to the browser as well, since they are served as
/// `application/zip` downloads.
fn is_zip(data: &[u8]) -> bool {
    data.starts_with(b"PK\x03\x04") || data.starts_with(b"PK\x05\x06")
}

/// Plain UTF-8 text: valid UTF-8, no NUL and no C0 control other than tab, line feed,
/// form feed and carriage return (binary files have plenty), and not beginning with
/// `<` after an optional byte-order mark and white space: HTML, SVG and XML all do, and
/// WHATWG sniffing looks there too.
fn text(data: &[u8]) -> Result<Kind, SniffError> {
    let Ok(text) = std::str::from_utf8(data) else {
        return Err(SniffError::Unknown);
    };
    if text
        .bytes()
        .any(|b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\x0c' | b'\r'))
    {
        return Err(SniffError::Unknown);
    }
    let start = text.trim_start_matches('\u{feff}').trim_start();
    if start.starts_with('<') {
        return Err(SniffError::Markup);
    }
    Ok(Kind::Text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0";
    const JPEG: &[u8] = b"\xff\xd8\xff\xe0\0\x10JFIF\0\x01\x01\0\0\x01\0\x01\0\0";
    const GIF: &[u8] = b"GIF89a\x01\0\x01\0\x80\0\0\0\0\0\xff\xff\xff";
    const WEBP: &[u8] = b"RIFF\x1a\0\0\0WEBPVP8L\x0d\0\0\0\x2f\0\0\0";

    #[test]
    fn accepted_types_are_found_from_their_bytes() {
        assert_eq!(sniff(PNG), Ok(Kind::Png));
        assert_eq!(sniff(JPEG), Ok(Kind::Jpeg));
        assert_eq!(sniff(GIF), Ok(Kind::Gif));
        assert_eq!(sniff(WEBP), Ok(Kind::Webp));
        assert_eq!(sniff(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"), Ok(Kind::Pdf));
        assert_eq!(sniff(b"PK\x03\x04\x14\0\0\0\x08\0"), Ok(Kind::Zip));
        assert_eq!(
            sniff(b"PK\x05\x06\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"),
            Ok(Kind::Zip)
        );
        assert_eq!(sniff("héllo\tworld\r\n".as_bytes()), Ok(Kind::Text));
        assert_eq!(sniff(b"#!/bin/sh\necho hi\n"), Ok(Kind::Text));
        assert_eq!(sniff("\u{feff}a < b\n".as_bytes()), Ok(Kind::Text));
    }

    #[test]
    fn markup_is_refused_whatever_its_case_or_leading_space() {
        for markup in [
            &b"<!DOCTYPE html><script>alert(1)</script>"[..],
            b"<html><body>x</body></html>",
            b"  \n<ScRiPt>alert(1)</script>",
            b"<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(1)\"/>",
            b"<?xml version=\"1.0\"?><svg/>",
            "\u{feff}<p>hi</p>".as_bytes(),
            b"<!-- comment -->",
        ] {
            assert_eq!(sniff(markup), Err(SniffError::Markup), "{markup:?}");
        }
    }

    #[test]
    fn other_types_and_binary_are_refused() {
        assert!(matches!(
            sniff(b"\x1f\x8b\x08\0\0\0\0\0\0\x03"),
            Err(SniffError::NotAccepted("application/gzip"))
        ));
        assert!(matches!(
            sniff(b"BM\x3a\0\0\0\0\0\0\0\x36\0\0\0\x28\0"),
            Err(SniffError::NotAccepted(_)) | Err(SniffError::Unknown)
        ));
        assert!(sniff(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0").is_err());
        assert!(matches!(
            sniff(b"Rar!\x1a\x07\x01\0"),
            Err(SniffError::NotAccepted(_))
        ));
        assert_eq!(sniff(b"\xff\xfe\xfd not utf-8"), Err(SniffError::Unknown));
        assert_eq!(sniff(b"text with a NUL\0 byte"), Err(SniffError::Unknown));
        assert_eq!(sniff(b"escape \x1b[31m"), Err(SniffError::Unknown));
    }

    #[test]
    fn content_types_round_trip_and_only_images_are_images() {
        for kind in [
            Kind::Png,
            Kind::Jpeg,
            Kind::Gif,
            Kind::Webp,
            Kind::Pdf,
            Kind::Text,
            Kind::Zip,
        ] {
            assert_eq!(Kind::from_content_type(kind.content_type()), Some(kind));
            assert_eq!(
                kind.is_image(),
                kind.content_type().starts_with("image/"),
                "{kind:?}"
            );
        }
        assert_eq!(Kind::Text.header_value(), "text/plain; charset=utf-8");
        assert_eq!(Kind::from_content_type("text/html"), None);
    }
}
