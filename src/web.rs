//! The web pages: serves `static/` (the student and teacher pages, their CSS,
//! their ES modules and the vendored phoenix.js) over plain HTTP from the
//! server itself, so no other web server and no build step is needed.
//!
//! Routes: `/` (index.html), `/student`, `/teacher`, `/dashboard` (the
//! statistics, issue 14), and `/static/{path}` for
//! any file under `static/`. In debug builds the files are read from disk on
//! each request (edit and reload); release builds embed them in the binary
//! (`rust-embed`). Every response carries an `ETag` (the file's SHA-256) and
//! `Cache-Control: no-cache`, so browsers revalidate and get `304` when
//! nothing changed; asset URLs are not versioned, so nothing may be cached
//! blindly.
//!
//! This module owns only reading and answering for those files. It must never
//! serve anything outside `static/`: asset paths are checked segment by
//! segment before any lookup, and whatever a client sends ends in a `404`,
//! never a panic.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{guard, web, HttpRequest, HttpResponse};
use rust_embed::RustEmbed;

/// The files of `static/`.
#[derive(RustEmbed)]
#[folder = "static/"]
struct Assets;

/// The page routes and the file each serves.
pub const PAGES: [(&str, &str); 4] = [
    ("/", "index.html"),
    ("/student", "student.html"),
    ("/teacher", "teacher.html"),
    ("/dashboard", "dashboard.html"),
];

/// Pages may load scripts, styles and images from this server only, and open
/// WebSockets back to it; nothing inline, nothing framed.
const PAGE_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

/// Registers the page and asset routes (GET and HEAD) on an actix-web app.
pub fn configure(config: &mut web::ServiceConfig) {
    for (path, file) in PAGES {
        config.route(
            path,
            web::route()
                .guard(get_or_head())
                .to(move |req: HttpRequest| async move { respond(&req, file) }),
        );
    }
    config.route(
        "/static/{path:.*}",
        web::route().guard(get_or_head()).to(asset),
    );
}

fn get_or_head() -> impl guard::Guard {
    guard::Any(guard::Get()).or(guard::Head())
}

async fn asset(req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    match safe_asset_path(&path) {
        Some(file) => respond(&req, file),
        None => not_found(),
    }
}

/// `path` if it names a file inside `static/` by plain segments: ASCII
/// letters, digits, `-`, `_` and `.`, no empty segment and no segment that
/// starts with a dot (so no `..`, no hidden files, no absolute paths, no
/// backslashes, no percent-decoded surprises).
pub fn safe_asset_path(path: &str) -> Option<&str> {
    let plain = |segment: &str| {
        !segment.is_empty()
            && !segment.starts_with('.')
            && segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    };
    (path.len() <= 256 && path.split('/').all(plain)).then_some(path)
}

/// Answers with the file `file` of `static/`, or 404 if it does not exist.
fn respond(req: &HttpRequest, file: &str) -> HttpResponse {
    let Some(asset) = Assets::get(file) else {
        return not_found();
    };
    let etag = etag_of(&asset.metadata.sha256_hash());
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|tag| tag.trim() == etag || tag.trim() == "*")
        });

    let mut response = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
    if file.ends_with(".html") {
        response.insert_header((header::CONTENT_SECURITY_POLICY, PAGE_POLICY));
    }
    if fresh {
        return response.finish();
    }
    response
        .insert_header((
            header::CONTENT_TYPE,
            content_type(asset.metadata.mimetype()),
        ))
        .body(asset.data.into_owned())
}

/// The `Content-Type` for a guessed MIME type: JavaScript as `text/javascript`
/// (RFC 9239; `mime_guess` says `application/javascript` for `.mjs`), and
/// text with its charset, since every text file here is UTF-8.
fn content_type(mime: &str) -> HeaderValue {
    let mime = match mime {
        "application/javascript" => "text/javascript",
        other => other,
    };
    let value = if mime.starts_with("text/") {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_owned()
    };
    HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("application/octet-stream"))
}

fn etag_of(hash: &[u8; 32]) -> String {
    let hex: String = hash[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

fn not_found() -> HttpResponse {
    HttpResponse::NotFound()
        .insert_header((header::CONTENT_TYPE, "text/plain; charset=utf-8"))
        .body("not found")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_asset_paths_are_accepted() {
        for path in ["app.css", "vendor/phoenix.mjs", "student.js", "a-b_c.1.txt"] {
            assert_eq!(safe_asset_path(path), Some(path), "{path}");
        }
    }

    #[test]
    fn paths_that_could_leave_static_are_refused() {
        for path in [
            "",
            "..",
            "../Cargo.toml",
            "vendor/../../Cargo.toml",
            "/etc/passwd",
            "vendor//phoenix.mjs",
            "./app.css",
            ".hidden",
            "vendor/",
            "..\\Cargo.toml",
            "C:\\Windows",
            "a%2e%2e",
            "nul\0byte",
            "spa ce.css",
            "ünï.css",
        ] {
            assert_eq!(safe_asset_path(path), None, "{path:?}");
        }
        assert_eq!(safe_asset_path(&"a".repeat(257)), None);
    }

    #[test]
    fn every_page_and_the_vendored_client_exist() {
        for (_, file) in PAGES {
            assert!(Assets::get(file).is_some(), "static/{file} is missing");
        }
        let phoenix = Assets::get("vendor/phoenix.mjs").expect("static/vendor/phoenix.mjs");
        assert_eq!(
            content_type(phoenix.metadata.mimetype()),
            "text/javascript; charset=utf-8"
        );
        assert!(Assets::get("vendor/phoenix.LICENSE.md").is_some());
    }

    #[test]
    fn content_types() {
        for (guessed, sent) in [
            ("application/javascript", "text/javascript; charset=utf-8"),
            ("text/javascript", "text/javascript; charset=utf-8"),
            ("text/html", "text/html; charset=utf-8"),
            ("image/svg+xml", "image/svg+xml"),
            ("bad\nvalue", "application/octet-stream"),
        ] {
            assert_eq!(content_type(guessed), sent, "{guessed}");
        }
    }

    #[test]
    fn etag_is_quoted_hex() {
        assert_eq!(etag_of(&[0xab; 32]), format!("\"{}\"", "ab".repeat(16)));
    }
}
