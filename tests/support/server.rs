//! Starting a server for a test: on 127.0.0.1, port 0, in its own thread and actix
//! System, hermetic unless the test asks for transcripts.

use tutor_queue::Config;

/// A server started on 127.0.0.1:<port> in its own thread and actix System.
/// The thread lives until the test process exits.
pub struct Server {
    pub port: u16,
}

/// Starts a server. Hermetic: a config that keeps the default data directory
/// (`./data`, inside the repository) records no transcripts; a test that
/// wants them points `data_dir` at a temporary directory.
pub fn start(mut config: Config) -> Server {
    if config.data_dir == Config::default().data_dir {
        config.transcripts = false;
    }
    // TQ_TEST_ENGINE=redis runs the server on the shared engine, in a deployment
    // of its own on the Redis TQ_TEST_REDIS_URL names.
    if std::env::var("TQ_TEST_ENGINE").is_ok_and(|e| e == "redis") && config.redis_url.is_none() {
        let url =
            std::env::var("TQ_TEST_REDIS_URL").expect("TQ_TEST_REDIS_URL for TQ_TEST_ENGINE=redis");
        config.redis_url = Some(url);
        config.redis_deployment = format!("it-{:016x}", rand::random::<u64>());
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("local_addr").port();
    std::thread::Builder::new()
        .name(format!("tutor-queue-{port}"))
        .spawn(move || {
            let result = actix_web::rt::System::new().block_on(tutor_queue::run(listener, config));
            eprintln!("tutor-queue server on port {port} stopped: {result:?}");
        })
        .expect("spawn server thread");
    Server { port }
}

pub fn start_default() -> Server {
    start(Config::default())
}
