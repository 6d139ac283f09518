//! Starts the real tutor-queue server in-process on port 0 (its own thread and actix
//! System), recording transcripts in a temporary directory (never `./data` in the
//! repository) that the caller holds for the test's length.

#![allow(dead_code)]

/// The server with its default config.
pub fn start_server() -> (u16, tempfile::TempDir) {
    start_server_with(|_| {})
}

/// `start_server`, with the config changed by `change` first.
pub fn start_server_with(
    change: impl FnOnce(&mut tutor_queue::Config),
) -> (u16, tempfile::TempDir) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("local addr").port();
    let data = tempfile::tempdir().expect("temp data dir");
    let mut config = tutor_queue::Config {
        data_dir: data.path().to_owned(),
        ..tutor_queue::Config::default()
    };
    change(&mut config);
    std::thread::Builder::new()
        .name(format!("tutor-queue-{port}"))
        .spawn(move || {
            let result = actix_web::rt::System::new().block_on(tutor_queue::run(listener, config));
            eprintln!("tutor-queue on port {port} stopped: {result:?}");
        })
        .expect("spawn server thread");
    (port, data)
}

/// The secret the token tests share with the server.
pub const SECRET: &str = "the load-client test secret, 32+ bytes";

/// A server that accepts tokens signed with [`SECRET`].
pub fn start_token_server(
    change: impl FnOnce(&mut tutor_queue::Config),
) -> (u16, tempfile::TempDir) {
    start_server_with(|config| {
        config.tokens =
            Some(tutor_queue::identity::TokenKeys::from_secret(SECRET.as_bytes()).expect("keys"));
        change(config);
    })
}
