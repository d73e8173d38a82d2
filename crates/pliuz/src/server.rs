//! `pliuz serve`: opens the store, starts the workers and the HTTP server,
//! assembles the edges' routers, and shuts all of it down cleanly on
//! SIGINT/SIGTERM. [`Server::bind`] + [`Server::run_until_stopped`] let a
//! test or an embedder run the same thing in-process (on port 0).

use crate::approval::Actor;
use crate::auth::Role;
use crate::config::Settings;
use crate::http::{AppState, Extras};
use crate::service::directory::InitialPassword;
use crate::service::ControlPlane;
use axum::extract::DefaultBodyLimit;
use axum::response::IntoResponse;
use axum::Router;
use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::sync::Arc;

/// The whole application over one state: the JSON API, the inbox and the
/// Slack endpoint, with the shared answers for unknown routes, the body
/// limit, panic catching and request tracing.
pub fn app(state: AppState, slack: Option<Arc<crate::slack::Slack>>) -> Router {
    let body_limit = state.cp.settings.max_body_bytes;
    crate::api::router()
        .merge(crate::inbox::router())
        .merge(crate::slack::router(slack))
        .fallback(crate::api::not_found)
        .method_not_allowed_fallback(crate::api::method_not_allowed)
        // Inside the fallbacks' reach and around each route, so the matched
        // route template is known when a request is counted.
        .layer(axum::middleware::from_fn_with_state(
            state.cp.metrics.clone(),
            crate::metrics::track_http,
        ))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            crate::http::error::Problem::internal().into_response()
        }))
        .layer(
            tower_http::trace::TraceLayer::new_for_http()
                .make_span_with(crate::redact::request_span),
        )
        .with_state(state)
}

/// `pliuz serve`: runs until SIGINT or SIGTERM.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let (_addr, server) = Server::bind(settings).await?;
    server.run_until_stopped(wait_for_signal()).await
}

/// A started server: the store is open and checked, the first admin
/// exists, the port is bound. Nothing is served until
/// [`Server::run_until_stopped`].
pub struct Server {
    cp: ControlPlane,
    listener: tokio::net::TcpListener,
    connection_limits: crate::listener::ConnectionLimits,
    audit_signer: Arc<crate::audit::Signer>,
}

impl Server {
    /// Opens the store, checks the audit log, records the policies, creates
    /// the first admin if needed and binds `settings.listen` (port 0 picks a
    /// free port). Returns the bound address and the server to run.
    pub async fn bind(mut settings: Settings) -> anyhow::Result<(SocketAddr, Server)> {
        let connection_limits = crate::listener::ConnectionLimits::from_env()?;
        // Bind first: a start that cannot listen must not create the first
        // admin (its one-time password would be printed and then lost), and the
        // URL printed must be the real one (`--listen 127.0.0.1:0` picks a port).
        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot listen on {}: {e} (choose another with --listen or PLIUZ_LISTEN)",
                    settings.listen
                )
            })?;
        let addr = listener.local_addr()?;
        if settings.public_url == format!("http://{}", settings.listen) {
            settings.public_url = format!("http://{addr}");
        }
        settings.listen = addr;
        let cp = ControlPlane::open(settings).await?;
        crate::file_modes::warn_if_loose(&cp.settings);
        // Replicas starting together on one database take turns here, so the
        // first admin and `policy.loaded` are written once.
        let startup = cp.startup_lock().await?;
        let audit_signer = Arc::new(crate::audit::Signer::load(&cp.settings.audit, true)?);
        // Fail at start, not at the first run, if the encryption key is unusable.
        crate::encryption::DataKey::load(
            cp.settings.encryption_key.as_ref(),
            &cp.settings.encryption_key_file,
        )?;
        cp.record_verifier_key(&audit_signer.verifier_key())
            .await
            .map_err(|e| anyhow::anyhow!("cannot record the audit verifier key: {e}"))?;
        // A log that lost or rewrote what this server signed is refused, before
        // anything is written to it.
        crate::audit::witness::check_at_start(&cp, &audit_signer).await?;
        cp.init_policies()
            .await
            .map_err(|e| anyhow::anyhow!("cannot load the policies from the database: {e}"))?;
        cp.record_policy_load()
            .await
            .map_err(|e| anyhow::anyhow!("cannot record the loaded policies: {e}"))?;
        bootstrap_admin(&cp).await?;
        startup.release().await?;
        warn_unknown_approvers(&cp).await;
        Ok((
            addr,
            Server {
                cp,
                listener,
                connection_limits,
                audit_signer,
            },
        ))
    }

    /// Starts the workers and serves until `stop` completes (or the server
    /// fails), then shuts down within `shutdown_grace` and signs the final
    /// audit checkpoint.
    pub async fn run_until_stopped(self, stop: impl Future<Output = ()>) -> anyhow::Result<()> {
        let Server {
            cp,
            listener,
            connection_limits,
            audit_signer,
        } = self;
        let listen = listener.local_addr()?;
        let (trigger, shutdown) = crate::shutdown::channel();
        let mut workers = tokio::task::JoinSet::new();
        workers.spawn(crate::expiry::run(cp.clone(), shutdown.clone()));
        workers.spawn(crate::reminders::run(cp.clone(), shutdown.clone()));
        if let Some(settings) = &cp.settings.email {
            let mailer = Arc::new(crate::mailer::Mailer::new(settings)?);
            workers.spawn(crate::mailer::run(cp.clone(), mailer, shutdown.clone()));
        }
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
        workers.spawn(cp.relay_run_changes(shutdown.clone()));
        workers.spawn(crate::audit::worker::run(
            cp.clone(),
            audit_signer.clone(),
            shutdown.clone(),
        ));
        workers.spawn(cp.relay_changes(shutdown.clone()));
        workers.spawn(cp.relay_policy_changes(shutdown.clone()));

        let extras = Extras {
            audit_signer: Some(audit_signer.clone()),
            shutdown: Some(shutdown.clone()),
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
            policies = cp.policies().iter().count(),
            "pliuz is serving"
        );
        let app = app(state, slack);
        let server_shutdown = shutdown.clone();
        let server = crate::listener::serve(listener, app, connection_limits, async move {
            server_shutdown.wait().await;
        })
        .into_future();
        tokio::pin!(server);
        tokio::select! {
            served = &mut server => served?,
            () = stop => {}
        }
        let grace = cp.settings.shutdown_grace;
        let deadline = tokio::time::Instant::now() + grace;
        tracing::info!(grace = ?grace, "shutting down");
        // Long-polls and live pages answer at once; other requests may finish
        // within three quarters of the grace period, the rest is for the log.
        cp.drain();
        trigger.fire();
        let drain_until = tokio::time::Instant::now() + grace.mul_f64(0.75);
        match tokio::time::timeout_at(drain_until, &mut server).await {
            Ok(served) => served?,
            Err(_) => {
                tracing::warn!("requests still running at the end of the grace period are cut off")
            }
        }
        if tokio::time::timeout_at(deadline, async {
            while workers.join_next().await.is_some() {}
        })
        .await
        .is_err()
        {
            tracing::warn!("background workers did not stop in time; stopping them");
            workers.abort_all();
        }
        final_checkpoint(&cp, &audit_signer, deadline).await
    }
}

/// Stops all writes, then signs a checkpoint over every entry of the log.
/// A failure is an error of the whole shutdown, so it cannot go unnoticed.
async fn final_checkpoint(
    cp: &ControlPlane,
    signer: &crate::audit::Signer,
    deadline: tokio::time::Instant,
) -> anyhow::Result<()> {
    let sealed = tokio::time::timeout_at(deadline, cp.stop_writes()).await;
    let signed = tokio::time::timeout_at(deadline, crate::audit::sign_checkpoint(cp, signer)).await;
    let problem = match (sealed, signed) {
        (Ok(()), Ok(Ok(c))) => {
            tracing::info!(size = c.size, "signed the final audit checkpoint; it covers every entry");
            return Ok(());
        }
        (Err(_), Ok(Ok(c))) => format!("a write was still running at the end of the grace period, so the checkpoint of {} entries may not cover it", c.size),
        (_, Ok(Err(e))) => e.to_string(),
        (_, Err(_)) => "the grace period ran out first".to_owned(),
    };
    // For the report only, and briefly: the store may be what is stuck.
    let brief = std::time::Duration::from_secs(1);
    let size = tokio::time::timeout(brief, cp.audit_size())
        .await
        .ok()
        .and_then(|r| r.ok());
    let signed = tokio::time::timeout(brief, cp.latest_checkpoint())
        .await
        .ok()
        .and_then(|r| r.ok())
        .flatten()
        .map(|(s, _)| s);
    tracing::error!(%problem, log_size = ?size, signed_size = ?signed, "could not sign the final audit checkpoint");
    anyhow::bail!(
        "could not sign the final audit checkpoint: {problem}. Entries after the last signed checkpoint ({}) stay unsigned until the next start signs them",
        signed.map_or_else(|| "none".to_owned(), |s| format!("{s} entries"))
    )
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

/// Approvers that match nobody are logged at start (see `approver_check`).
async fn warn_unknown_approvers(cp: &ControlPlane) {
    match cp.list_users().await {
        Ok(users) => {
            for warning in crate::approver_check::unknown_approvers(&cp.policies(), &users) {
                tracing::warn!("{warning}");
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot list users to check the policies' approvers"),
    }
}

/// On the very first start, create an admin so someone can log in. The
/// password is printed once, here, and never again.
async fn bootstrap_admin(cp: &ControlPlane) -> anyhow::Result<()> {
    if cp.count_users().await? > 0 {
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
    if cp.settings.log_format == crate::config::LogFormat::Json {
        // One JSON line like every other, so log collectors keep parsing.
        if given.is_some() {
            tracing::warn!(%email, login_url = %url, "first start: created the admin with the password from PLIUZ_ADMIN_PASSWORD");
        } else {
            tracing::warn!(%email, %password, login_url = %url, "first start: created the admin user; this password is shown only this once; add people with `pliuz users create`");
        }
        return Ok(());
    }
    if given.is_some() {
        eprintln!("\n  First start: created admin {email} with the password from PLIUZ_ADMIN_PASSWORD.\n  Log in at {url}/\n");
    } else {
        eprintln!(
            "\n  First start: created the admin user.\n    Log in at  {url}/\n    email:     {email}\n    password:  {password}\n  This password is shown only this once. Add people with `pliuz users create`.\n"
        );
    }
    Ok(())
}
