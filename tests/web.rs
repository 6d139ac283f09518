//! The web pages over plain HTTP (`src/web.rs`): each page and asset is served
//! with its type and cache headers, revalidation gives 304, links inside the
//! pages resolve, and nothing outside `static/` can be reached.

use crate::support::{http_get as get, http_request as request, start_default};

#[tokio::test]
async fn pages_are_served_as_html_with_cache_and_security_headers() {
    let srv = start_default();
    for (path, marker) in [
        ("/", "I'm a student"),
        ("/student", "/static/student.js"),
        ("/teacher", "/static/teacher.js"),
        ("/dashboard", "/static/dashboard.js"),
    ] {
        let r = get(srv.port, path).await;
        assert_eq!(r.status, 200, "GET {path}");
        assert_eq!(
            r.header("content-type"),
            "text/html; charset=utf-8",
            "GET {path}"
        );
        assert_eq!(r.header("cache-control"), "no-cache", "GET {path}");
        assert!(r.header("etag").starts_with('"'), "GET {path}: ETag");
        assert!(
            r.header("content-security-policy")
                .contains("default-src 'self'"),
            "GET {path}: CSP"
        );
        assert_eq!(r.header("x-content-type-options"), "nosniff", "GET {path}");
        assert!(
            r.text().contains(marker),
            "GET {path}: body lacks {marker:?}"
        );
    }
}

#[tokio::test]
async fn assets_have_their_mime_type() {
    let srv = start_default();
    for (path, mime, marker) in [
        ("/static/app.css", "text/css; charset=utf-8", ":root"),
        (
            "/static/student.js",
            "text/javascript; charset=utf-8",
            "presence:student:",
        ),
        (
            "/static/vendor/phoenix.mjs",
            "text/javascript; charset=utf-8",
            "var Socket = class",
        ),
        (
            "/static/vendor/phoenix.LICENSE.md",
            "text/markdown; charset=utf-8",
            "MIT License",
        ),
        ("/static/favicon.svg", "image/svg+xml", "<svg"),
    ] {
        let r = get(srv.port, path).await;
        assert_eq!(r.status, 200, "GET {path}");
        assert_eq!(r.header("content-type"), mime, "GET {path}");
        assert_eq!(r.header("cache-control"), "no-cache", "GET {path}");
        assert!(
            r.text().contains(marker),
            "GET {path}: body lacks {marker:?}"
        );
    }
}

#[tokio::test]
async fn unchanged_files_revalidate_with_304_and_head_has_no_body() {
    let srv = start_default();
    let first = get(srv.port, "/static/app.css").await;
    let etag = first.header("etag").to_owned();
    let again = request(
        srv.port,
        "GET",
        "/static/app.css",
        &format!("If-None-Match: {etag}\r\n"),
    )
    .await;
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty(), "304 with a body");
    assert_eq!(again.header("etag"), etag);
    let stale = request(
        srv.port,
        "GET",
        "/static/app.css",
        "If-None-Match: \"0000\"\r\n",
    )
    .await;
    assert_eq!(stale.status, 200, "a different ETag gets the file");

    let head = request(srv.port, "HEAD", "/teacher", "").await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty(), "HEAD with a body");
    assert_eq!(head.header("content-type"), "text/html; charset=utf-8");
}

#[tokio::test]
async fn every_link_and_import_in_the_pages_resolves() {
    let srv = start_default();
    let mut targets = Vec::new();
    for page in ["/", "/student", "/teacher", "/dashboard"] {
        let html = get(srv.port, page).await.text();
        for attr in ["src=\"", "href=\""] {
            for part in html.split(attr).skip(1) {
                let link = part.split('"').next().unwrap_or_default();
                if link.starts_with('/') && !link.starts_with("//") && !link.starts_with("/#") {
                    targets.push(link.to_owned());
                }
            }
        }
    }
    // ES module imports are relative to /static/.
    for script in [
        "common.js",
        "index.js",
        "student.js",
        "teacher.js",
        "past-chats.js",
        "conversation.js",
        "compose.js",
        "announcements.js",
        "waiting-list.js",
        "queue-controls.js",
        "dashboard.js",
        "charts.js",
    ] {
        let js = get(srv.port, &format!("/static/{script}")).await.text();
        for part in js.split("from \"./").skip(1) {
            let module = part.split('"').next().unwrap_or_default();
            targets.push(format!("/static/{module}"));
        }
    }
    assert!(
        targets.iter().any(|t| t == "/static/vendor/phoenix.mjs"),
        "{targets:?}"
    );
    assert!(
        targets.iter().any(|t| t == "/static/app.css"),
        "{targets:?}"
    );
    for target in targets {
        assert_eq!(get(srv.port, &target).await.status, 200, "GET {target}");
    }
}

#[tokio::test]
async fn unknown_files_are_404() {
    let srv = start_default();
    for path in [
        "/static/nope.js",
        "/static/",
        "/static",
        "/static/vendor",
        "/static/vendor/",
        "/index.html",
        "/students",
        "/student/extra",
    ] {
        assert_eq!(get(srv.port, path).await.status, 404, "GET {path}");
    }
    let post = request(srv.port, "POST", "/", "Content-Length: 0\r\n").await;
    assert_eq!(post.status, 404, "POST /");
}

#[tokio::test]
async fn no_path_leaves_static() {
    let srv = start_default();
    for path in [
        "/static/../Cargo.toml",
        "/static/../../Cargo.toml",
        "/static/vendor/../../Cargo.toml",
        "/static/%2e%2e/Cargo.toml",
        "/static/%2E%2E/%2E%2E/Cargo.toml",
        "/static/..%2fCargo.toml",
        "/static/vendor/..%2F..%2FCargo.toml",
        "/static/..%5cCargo.toml",
        "/static/%2fetc%2fpasswd",
        "/static//etc/passwd",
        "/static/.%2e/src/web.rs",
        "/static/vendor/%00phoenix.mjs",
        "/static/%c0%ae%c0%ae/Cargo.toml",
        "/static/.gitignore",
    ] {
        let r = get(srv.port, path).await;
        assert_ne!(r.status, 200, "GET {path} served something");
        assert!(
            !r.text().contains("[package]") && !r.text().contains("root:"),
            "GET {path} leaked a file: {}",
            r.text()
        );
    }
}
