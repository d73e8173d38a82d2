//! `pliuz serve`: opens the store, starts the workers and the HTTP server,
//! and shuts all of it down cleanly on SIGINT/SIGTERM.

use crate::api::{self, AppState};
use crate::approval::Actor;
use crate::auth::Role;
use crate::config::Settings;
use crate::notify::Notifier;
use crate::service::directory::InitialPassword;
use crate::service::ControlPlane;
use crate::store::Store;
use std::sync::Arc;

/// State owned by the edges (inbox sessions, Slack client, audit signer).
#[derive(Default)]
pub struct Extras {
    /// Signs audit checkpoints (`crate::audit`); `None` only in tests.
    pub audit_signer: Option<Arc<crate::audit::Signer>>,
    /// Web inbox state: the log-in rate limiter (`crate::inbox`).
    pub inbox: crate::inbox::InboxState,
    /// Fires at shutdown, so live inbox streams (SSE) end and the server can stop.
    pub shutdown: Option<crate::shutdown::Shutdown>,
    /// The Slack integration (`crate::slack`), when `[slack]` is configured.
    pub slack: Option<Arc<crate::slack::Slack>>,
}

/// Opens the store for the given settings (used by `serve` and the admin CLI).
pub async fn control_plane(settings: Settings) -> anyhow::Result<ControlPlane> {
    let store = Store::open(&settings.database_url).await?;
    Ok(ControlPlane::new(
        store,
        Arc::new(settings),
        Notifier::new(),
    ))
}

pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let listen = settings.listen;
    let cp = control_plane(settings).await?;
    cp.record_policy_load().await?;
    bootstrap_admin(&cp).await?;
    let audit_signer = Arc::new(crate::audit::Signer::load(&cp.settings.audit, true)?);
    // Fail at start, not at the first run, if the encryption key is unusable.
    crate::encryption::DataKey::for_settings(&cp.settings)?;
    cp.store
        .record_verifier_key(&audit_signer.verifier_key())
        .await?;

    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on {listen}: {e} (choose another with --listen or PLIUZ_LISTEN)"
        )
    })?;
    let (trigger, shutdown) = crate::shutdown::channel();
    let mut workers = tokio::task::JoinSet::new();
    workers.spawn(crate::expiry::run(cp.clone(), shutdown.clone()));
    let slack = match &cp.settings.slack {
        Some(settings) => Some(crate::slack::Slack::new(settings)?),
        None => None,
    };
    if let Some(slack) = &slack {
        workers.spawn(crate::outbox::run(
            cp.clone(),
            slack.clone(),
            shutdown.clone(),
        ));
    }
    workers.spawn(crate::webhooks::run(cp.clone(), shutdown.clone()));
    {
        let store = cp.store.clone();
        let url = cp.settings.database_url.clone();
        let notifier = cp.notifier.clone();
        let shutdown = shutdown.clone();
        workers.spawn(async move { store.relay_run_changes(url, notifier, shutdown).await });
    }
    workers.spawn(crate::audit::worker::run(
        cp.clone(),
        audit_signer.clone(),
        shutdown.clone(),
    ));
    {
        let store = cp.store.clone();
        let url = cp.settings.database_url.clone();
        let notifier = cp.notifier.clone();
        let shutdown = shutdown.clone();
        workers.spawn(async move { store.relay_changes(url, notifier, shutdown).await });
    }

    #[allow(clippy::needless_update)] // other edges add their fields to Extras
    let extras = Extras {
        audit_signer: Some(audit_signer.clone()),
        shutdown: Some(shutdown.clone()),
        slack,
        ..Extras::default()
    };
    let state = AppState {
        cp: cp.clone(),
        extras: Arc::new(extras),
    };
    tracing::info!(
        address = %listen,
        public_url = %cp.settings.public_url,
        data_dir = %cp.settings.data_dir.display(),
        policies = cp.policies.iter().count(),
        "pliuz is serving"
    );
    let app = api::router(state);
    let server_shutdown = shutdown.clone();
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        server_shutdown.wait().await;
    });
    let signal = async {
        wait_for_signal().await;
        tracing::info!("shutting down");
        trigger.fire();
    };
    let (served, ()) = tokio::join!(server, signal);
    served?;
    while workers.join_next().await.is_some() {}
    // Nothing writes any more: sign everything up to here.
    match crate::audit::sign_checkpoint(&cp, &audit_signer).await {
        Ok(c) => tracing::info!(size = c.size, "signed the final audit checkpoint"),
        Err(e) => tracing::warn!(error = %e, "could not sign the final audit checkpoint"),
    }
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// On the very first start, create an admin so someone can log in. The
/// password is printed once, here, and never again.
async fn bootstrap_admin(cp: &ControlPlane) -> anyhow::Result<()> {
    if cp.store.count_users().await? > 0 {
        return Ok(());
    }
    let email = std::env::var("PLIUZ_ADMIN_EMAIL").unwrap_or_else(|_| "admin@localhost".to_owned());
    let given = std::env::var("PLIUZ_ADMIN_PASSWORD")
        .ok()
        .filter(|p| !p.is_empty());
    let password = given.clone().unwrap_or_else(crate::auth::new_password);
    cp.create_user(
        &Actor::System,
        &email,
        Role::Admin,
        &[],
        InitialPassword::Given(password.clone()),
    )
    .await
    .map_err(|e| anyhow::anyhow!("cannot create the first admin: {e}"))?;
    let url = &cp.settings.public_url;
    if given.is_some() {
        eprintln!("\n  First start: created admin {email} with the password from PLIUZ_ADMIN_PASSWORD.\n  Log in at {url}/\n");
    } else {
        eprintln!(
            "\n  First start: created the admin user.\n    Log in at  {url}/\n    email:     {email}\n    password:  {password}\n  This password is shown only this once. Add people with `pliuz users create`.\n"
        );
    }
    Ok(())
}
