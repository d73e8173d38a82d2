//! `pliuz audit monitor`: an independent witness of a Pliuz audit log,
//! meant to run anywhere but on the server it watches.
//!
//! It keeps the newest checkpoint it has verified in a state file. Each
//! round it fetches the server's newest checkpoint over the audit API,
//! verifies its signature with trusted keys, and proves it extends the
//! remembered one with an RFC 9162 consistency proof fetched from the
//! server. A smaller checkpoint is a rollback, an unprovable one a fork;
//! either stops the monitor with exit code 1 and prints both signed notes
//! (together they prove the log misbehaved). The state file is only ever
//! advanced, never rolled back. See `docs/audit.md`.

use crate::private_file;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use pliuz_audit::{Checkpoint, Verifier};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

pub const STATE_FORMAT: &str = "pliuz-monitor/v1";
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// What the monitor remembers between rounds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub format: String,
    pub url: String,
    pub origin: String,
    /// Trusted verifier keys (from `--key`, or pinned on first use).
    pub keys: Vec<String>,
    pub size: u64,
    /// Base64 root hash of `checkpoint`.
    pub root: String,
    /// The newest verified checkpoint, as the server signed it.
    pub checkpoint: String,
    pub checked_at: String,
}

/// Why a round did not pass.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// The log misbehaved: rollback, fork, untrusted or foreign checkpoint.
    #[error("{0}")]
    Integrity(String),
    /// The monitor could not check (network, server error, state file).
    #[error("{0}")]
    Unavailable(String),
}

pub struct Monitor {
    base: String,
    state_file: PathBuf,
    token: String,
    keys: Vec<String>,
    http: reqwest::Client,
}

/// What one successful round saw.
#[derive(Debug)]
pub enum Round {
    First { size: u64 },
    Unchanged { size: u64 },
    Grew { from: u64, to: u64 },
}

fn unavailable(m: impl Into<String>) -> MonitorError {
    MonitorError::Unavailable(m.into())
}

impl Monitor {
    pub fn new(
        url: &str,
        state_file: PathBuf,
        token: String,
        keys: Vec<String>,
    ) -> Result<Monitor, MonitorError> {
        let base = url.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(unavailable(format!(
                "--url {url}: give the server's base URL, e.g. https://pliuz.example.com"
            )));
        }
        for k in &keys {
            k.parse::<Verifier>()
                .map_err(|e| unavailable(format!("--key {k}: {e}")))?;
        }
        let http = reqwest::Client::builder()
            .timeout(HTTP_TIMEOUT)
            .build()
            .map_err(|e| unavailable(format!("cannot set up HTTP: {e}")))?;
        Ok(Monitor {
            base,
            state_file,
            token,
            keys,
            http,
        })
    }

    async fn get(&self, path: &str) -> Result<String, MonitorError> {
        let url = format!("{}{path}", self.base);
        let r = self
            .http
            .get(&url)
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| unavailable(format!("cannot reach {url}: {e}")))?;
        let status = r.status();
        let body = r
            .text()
            .await
            .map_err(|e| unavailable(format!("reading {url}: {e}")))?;
        if !status.is_success() {
            let detail = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["detail"].as_str().map(str::to_owned))
                .unwrap_or_else(|| body.chars().take(300).collect());
            return Err(unavailable(format!("{url} answered {status}: {detail}")));
        }
        Ok(body)
    }

    fn load_state(&self) -> Result<Option<State>, MonitorError> {
        let text = match std::fs::read_to_string(&self.state_file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(unavailable(format!(
                    "cannot read the state file {}: {e}",
                    self.state_file.display()
                )))
            }
        };
        let state: State = serde_json::from_str(&text).map_err(|e| {
            unavailable(format!(
                "the state file {} is not a monitor state ({e}); it is never rewritten on failure, so restore it rather than delete it",
                self.state_file.display()
            ))
        })?;
        if state.format != STATE_FORMAT {
            return Err(unavailable(format!(
                "the state file {} has format {:?}, expected {STATE_FORMAT:?}",
                self.state_file.display(),
                state.format
            )));
        }
        Ok(Some(state))
    }

    /// Written atomically: a crash leaves the old state or the new one.
    fn save_state(&self, state: &State) -> Result<(), MonitorError> {
        let text = serde_json::to_string_pretty(state)
            .map_err(|e| unavailable(format!("cannot encode the state: {e}")))?;
        private_file::publish(&self.state_file, format!("{text}\n").as_bytes(), true).map_err(
            |e| {
                unavailable(format!(
                    "cannot write the state file {}: {e}",
                    self.state_file.display()
                ))
            },
        )?;
        Ok(())
    }

    /// The keys to trust: `--key`, else those pinned in the state, else
    /// (first run) the server's published keys.
    async fn trusted(&self, state: Option<&State>) -> Result<(Vec<String>, bool), MonitorError> {
        if !self.keys.is_empty() {
            return Ok((self.keys.clone(), false));
        }
        if let Some(s) = state {
            return Ok((s.keys.clone(), false));
        }
        let body = self.get("/api/v1/audit/keys").await?;
        let v: serde_json::Value = serde_json::from_str(&body)
            .map_err(|e| unavailable(format!("/api/v1/audit/keys is not JSON: {e}")))?;
        let keys: Vec<String> = v["keys"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|k| k.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        if keys.is_empty() {
            return Err(unavailable("the server lists no verifier keys"));
        }
        Ok((keys, true))
    }

    /// One check. `Ok` when the server's newest checkpoint extends the
    /// remembered one (the state then advances to it).
    pub async fn round(&self) -> Result<Round, MonitorError> {
        let state = self.load_state()?;
        let (keys, pinned_now) = self.trusted(state.as_ref()).await?;
        let verifiers: Vec<Verifier> = keys.iter().filter_map(|k| k.parse().ok()).collect();
        let note = self.get("/api/v1/audit/checkpoint").await?;
        let new = pliuz_audit::open_checkpoint(&note, &verifiers).map_err(|e| {
            MonitorError::Integrity(format!(
                "UNTRUSTED: the server's newest checkpoint does not verify with the trusted keys ({e}). If the operator rotated the key, check the new one out of band and add it with --key.\n--- checkpoint ---\n{note}"
            ))
        })?;
        let new_root = B64.encode(new.root);
        let advance = |keys: Vec<String>| State {
            format: STATE_FORMAT.to_owned(),
            url: self.base.clone(),
            origin: new.origin.clone(),
            keys,
            size: new.size,
            root: new_root.clone(),
            checkpoint: note.clone(),
            checked_at: crate::service::format_time(crate::service::now_millis()),
        };
        let Some(old) = state else {
            if pinned_now {
                eprintln!(
                    "warning: trusting on first use the verifier keys {} published by {}; pass --key to pin keys you checked out of band",
                    keys.join(", "),
                    self.base
                );
            }
            self.save_state(&advance(keys))?;
            return Ok(Round::First { size: new.size });
        };
        let old_cp = Checkpoint::parse_unverified_note(&old.checkpoint).map_err(|e| {
            unavailable(format!(
                "the state file {} holds an unreadable checkpoint: {e}",
                self.state_file.display()
            ))
        })?;
        // A finding of tampering, with both checkpoints as its evidence.
        let integrity = |finding: String| {
            MonitorError::Integrity(format!(
                "{finding}\n--- remembered checkpoint (verified {}) ---\n{}--- checkpoint served now ---\n{note}",
                old.checked_at, old.checkpoint
            ))
        };
        if new.origin != old_cp.origin {
            return Err(integrity(format!(
                "FORK: the server now serves log {:?}, but the state follows log {:?}",
                new.origin, old_cp.origin
            )));
        }
        if new.size < old_cp.size {
            return Err(integrity(format!(
                "ROLLBACK: log {} was seen with {} entries, but now serves a checkpoint for only {}: entries were removed",
                new.origin,
                old_cp.size,
                new.size
            )));
        }
        if new.size == old_cp.size {
            if new.root != old_cp.root {
                return Err(integrity(format!(
                    "FORK: two different signed roots for {} entries of log {}",
                    new.size, new.origin
                )));
            }
            return Ok(Round::Unchanged { size: new.size });
        }
        let body = self
            .get(&format!(
                "/api/v1/audit/proof/consistency?from={}&size={}",
                old_cp.size, new.size
            ))
            .await?;
        let v: serde_json::Value = serde_json::from_str(&body)
            .map_err(|e| unavailable(format!("the consistency proof is not JSON: {e}")))?;
        let proof: Option<Vec<pliuz_audit::Hash>> = v["proof"].as_array().and_then(|a| {
            a.iter()
                .map(|h| {
                    h.as_str()
                        .and_then(|s| B64.decode(s).ok())
                        .and_then(|b| pliuz_audit::Hash::try_from(b.as_slice()).ok())
                })
                .collect()
        });
        let Some(proof) = proof else {
            return Err(integrity(format!(
                "FORK: the server answered no well-formed consistency proof from {} to {} entries",
                old_cp.size, new.size
            )));
        };
        // Verified against the two *signed* roots, not the roots in the answer.
        if let Err(e) =
            pliuz_audit::verify_consistency(old_cp.size, new.size, &proof, &old_cp.root, &new.root)
        {
            return Err(integrity(format!(
                "FORK: the checkpoint for {} entries does not extend the one for {} seen before ({e}): signed entries were rewritten",
                new.size,
                old_cp.size
            )));
        }
        self.save_state(&advance(keys))?;
        Ok(Round::Grew {
            from: old_cp.size,
            to: new.size,
        })
    }
}

fn report(r: &Round, base: &str) {
    match r {
        Round::First { size } => {
            println!("OK: first checkpoint of {base}: {size} entries; remembered")
        }
        Round::Unchanged { size } => println!("OK: {base} unchanged at {size} entries"),
        Round::Grew { from, to } => {
            println!("OK: {base} grew from {from} to {to} entries; consistency proof verified")
        }
    }
}

/// Runs the monitor: once (`--once`, for cron) or every `interval` until
/// a fork or rollback is found (exit 1) or it is interrupted (exit 0).
/// Exit 2: it could not check (only with `--once`; the loop retries).
pub async fn run(m: Monitor, once: bool, interval: Duration) -> ExitCode {
    loop {
        match m.round().await {
            Ok(r) => report(&r, &m.base),
            Err(MonitorError::Integrity(msg)) => {
                eprintln!("FAILED: {msg}");
                eprintln!(
                    "The state file {} was left as it was.",
                    m.state_file.display()
                );
                return ExitCode::from(1);
            }
            Err(MonitorError::Unavailable(msg)) => {
                eprintln!("error: could not check: {msg}");
                if once {
                    return ExitCode::from(2);
                }
            }
        }
        if once {
            return ExitCode::SUCCESS;
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = tokio::signal::ctrl_c() => return ExitCode::SUCCESS,
        }
    }
}
