//! A shutdown signal shared by the server and its background workers.

use tokio::sync::watch;

#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

pub struct Trigger(watch::Sender<bool>);

pub fn channel() -> (Trigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (Trigger(tx), Shutdown(rx))
}

impl Trigger {
    pub fn fire(&self) {
        let _ = self.0.send(true);
    }
}

impl Shutdown {
    pub async fn wait(&self) {
        let mut rx = self.0.clone();
        while !*rx.borrow() {
            if rx.changed().await.is_err() {
                return;
            }
        }
    }
}

/// Waits for `shutdown`; forever when there is none (an app assembled
/// without a server, as in tests).
pub async fn stopped(shutdown: Option<&Shutdown>) {
    match shutdown {
        Some(s) => s.wait().await,
        None => std::future::pending().await,
    }
}
