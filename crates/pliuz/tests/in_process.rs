//! The whole server started inside the test process, on port 0, through
//! `server::Server::bind` + `run_until_stopped` (the other integration tests
//! spawn the real binary).

use pliuz::config::{Overrides, Settings};
use pliuz::server::Server;
use std::time::Duration;

#[tokio::test]
async fn the_server_runs_in_process_on_port_zero_and_stops_when_told() {
    let dir = tempfile::tempdir().expect("temp dir");
    let settings = Settings::load(&Overrides {
        data_dir: Some(dir.path().to_path_buf()),
        listen: Some("127.0.0.1:0".to_owned()),
        ..Overrides::default()
    })
    .expect("settings");
    let (addr, server) = Server::bind(settings).await.expect("bind");
    assert_ne!(addr.port(), 0, "port 0 is replaced by the bound port");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run_until_stopped(async {
        let _ = stopped.await;
    }));

    let client = reqwest::Client::new();
    let base = format!("http://{addr}");
    let get = |path: &str| client.get(format!("{base}{path}")).send();
    let health = get("/healthz").await.expect("healthz");
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.expect("body"), "ok");
    // The assembled app answers API, inbox and fallback routes alike.
    let unauthenticated = get("/api/v1/policies").await.expect("policies");
    assert_eq!(unauthenticated.status(), 401);
    assert_eq!(
        unauthenticated.headers()["content-type"],
        "application/problem+json"
    );
    let login = get("/login").await.expect("login page");
    assert_eq!(login.status(), 200);
    let missing = get("/no/such/route").await.expect("unknown route");
    assert_eq!(missing.status(), 404);

    stop.send(()).expect("server still running");
    let result = tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("stops within the grace period")
        .expect("task did not panic");
    assert!(result.is_ok(), "clean shutdown: {result:?}");
    assert!(
        reqwest::Client::new()
            .get(format!("{base}/healthz"))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_err(),
        "nothing listens after the stop"
    );
}
