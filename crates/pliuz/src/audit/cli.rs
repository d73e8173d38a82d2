//! `pliuz audit ...` commands. `verify` and `verify-receipt` are offline:
//! they read only files and the keys given on the command line, never the
//! database or the server. The others open the store (safe beside a running
//! server: SQLite WAL, or the shared PostgreSQL database).

use super::signer::{write_key_file, Signer};
use super::witness::Witness;
use crate::audit_event::AuditEvent;
use crate::config::{Overrides, Settings};
use clap::Subcommand;
use pliuz_audit::{SigningKey, Verifier};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Print the current checkpoint verifier key (name+id+base64).
    Key,
    /// Print every verifier key the log has used, oldest first.
    Keys,
    /// Print the newest signed checkpoint, signing one that covers the whole log first.
    Checkpoint,
    /// Write the whole log to DIR (entries.jsonl, checkpoints/<size>, keys.txt) for offline verification.
    Export {
        /// A new directory.
        #[arg(long)]
        out: PathBuf,
    },
    /// Verify an export offline against trusted verifier keys; names the first bad entry.
    Verify {
        /// The directory written by `pliuz audit export`.
        dir: PathBuf,
        /// Do not stop at the first problem: list every bad entry and checkpoint.
        #[arg(long)]
        all: bool,
        /// A trusted verifier key (repeatable; give old keys too after a rotation).
        #[arg(long = "key")]
        keys: Vec<String>,
        /// A file of trusted verifier keys, one per line.
        #[arg(long)]
        keys_file: Option<PathBuf>,
    },
    /// Verify a receipt (GET /api/v1/approvals/{id}/receipt) offline.
    VerifyReceipt {
        /// The receipt, a JSON file as the API returned it.
        file: PathBuf,
        /// A trusted verifier key (repeatable).
        #[arg(long = "key")]
        keys: Vec<String>,
        /// A file of trusted verifier keys, one per line.
        #[arg(long)]
        keys_file: Option<PathBuf>,
    },
    /// Re-check the live log in the database: every entry, stored hash, checkpoint and key,
    /// and that the log still extends every checkpoint this server remembers signing.
    Check {
        /// Do not stop at the first problem: list every bad entry and checkpoint.
        #[arg(long)]
        all: bool,
    },
    /// Watch a Pliuz server's log from elsewhere: fails (exit 1) on any fork or rollback.
    ///
    /// Keeps the newest verified checkpoint in --state; each round fetches the newest
    /// checkpoint and a consistency proof over the audit API. The API token (any agent key
    /// or user token) comes from PLIUZ_MONITOR_TOKEN or --token-file. Exit 2: could not
    /// check (with --once; the loop retries).
    Monitor {
        /// The server's base URL, e.g. https://pliuz.example.com.
        #[arg(long)]
        url: String,
        /// The monitor's state file (created on the first run).
        #[arg(long)]
        state: PathBuf,
        /// A trusted verifier key (repeatable). Without one, the server's keys are pinned on first use.
        #[arg(long = "key")]
        keys: Vec<String>,
        /// A file of trusted verifier keys, one per line.
        #[arg(long)]
        keys_file: Option<PathBuf>,
        /// A file holding the API token (instead of PLIUZ_MONITOR_TOKEN).
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// Check once and exit (for cron).
        #[arg(long)]
        once: bool,
        /// Time between checks in the loop, e.g. 60s, 5m.
        #[arg(long, default_value = "60s")]
        interval: String,
    },
    /// After a deliberate restore of an older database backup: record the rollback in the
    /// log, keep the old checkpoint file aside and start a new checkpoint chain.
    AcceptRollback,
    /// Replace the checkpoint signing key. The old verifier key stays valid for older checkpoints.
    RotateKey {
        /// Print the new private key on stdout instead of writing the key file
        /// (for keys given through PLIUZ_AUDIT_SIGNING_KEY).
        #[arg(long)]
        print: bool,
    },
}

/// `--key` values plus the lines of `--keys-file`.
fn key_strings(keys: &[String], file: Option<&Path>) -> anyhow::Result<Vec<String>> {
    let mut all: Vec<String> = keys.to_vec();
    if let Some(f) = file {
        let text = std::fs::read_to_string(f)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", f.display()))?;
        all.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned),
        );
    }
    Ok(all)
}

fn monitor_token(file: Option<&Path>) -> anyhow::Result<String> {
    let token = match file {
        Some(f) => std::fs::read_to_string(f)
            .map_err(|e| anyhow::anyhow!("cannot read the token file {}: {e}", f.display()))?,
        None => std::env::var("PLIUZ_MONITOR_TOKEN").unwrap_or_default(),
    };
    let token = token.trim().to_owned();
    if token.is_empty() {
        anyhow::bail!(
            "the audit API needs a token: set PLIUZ_MONITOR_TOKEN or give --token-file (any agent key or user token works; `pliuz agents create monitor`)"
        );
    }
    Ok(token)
}

fn trusted_keys(keys: &[String], file: Option<&Path>) -> anyhow::Result<Vec<Verifier>> {
    let all = key_strings(keys, file)?;
    if all.is_empty() {
        anyhow::bail!(
            "give the verifier key(s) you trust with --key (from `pliuz audit key` or your records, not from the export itself)"
        );
    }
    all.iter()
        .map(|k| {
            k.trim()
                .parse::<Verifier>()
                .map_err(|e| anyhow::anyhow!("--key {k}: {e}"))
        })
        .collect()
}

pub async fn run(command: AuditCommand, over: &Overrides) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::Verify {
            dir,
            all,
            keys,
            keys_file,
        } => {
            let verifiers = trusted_keys(&keys, keys_file.as_deref())?;
            let dir2 = dir.clone();
            let result = tokio::task::spawn_blocking(move || {
                if all {
                    pliuz_audit::verify_export_all(&dir2, &verifiers)
                } else {
                    pliuz_audit::verify_export(&dir2, &verifiers).map_err(|e| vec![e])
                }
            })
            .await?;
            match result {
                Ok(r) => {
                    println!(
                        "OK: {} entries, {} checkpoints (newest covers {}), origin {}",
                        r.entries,
                        r.checkpoints.len(),
                        r.checkpoints.last().copied().unwrap_or(0),
                        r.origin
                    );
                    for k in &r.signed_by {
                        println!("signed by {k}");
                    }
                    if r.unsigned_tail > 0 {
                        println!(
                            "warning: the last {} entries are not covered by any checkpoint",
                            r.unsigned_tail
                        );
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(errors) => {
                    for e in &errors {
                        eprintln!("FAILED: {}: {}", dir.display(), e.message);
                    }
                    if let Some(i) = errors.first().and_then(|e| e.index) {
                        eprintln!("first bad index: {i}");
                    }
                    if all {
                        eprintln!("{} problem(s) found", errors.len());
                    }
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        AuditCommand::VerifyReceipt {
            file,
            keys,
            keys_file,
        } => {
            let verifiers = trusted_keys(&keys, keys_file.as_deref())?;
            let text = std::fs::read_to_string(&file)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
            let receipt: pliuz_audit::Receipt = match serde_json::from_str(&text) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("FAILED: {} is not a receipt: {e}", file.display());
                    return Ok(ExitCode::FAILURE);
                }
            };
            match pliuz_audit::verify_receipt(&receipt, &verifiers) {
                Ok(r) => {
                    println!(
                        "OK: approval {}: {} entries included in the log {} of size {}",
                        r.approval_id,
                        r.entries.len(),
                        r.checkpoint.origin,
                        r.checkpoint.size
                    );
                    for e in &r.entries {
                        println!("  {} {} {} by {}", e.index, e.time, e.kind, e.actor);
                    }
                    for k in &r.signed_by {
                        println!("signed by {k}");
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("FAILED: {}: {e}", file.display());
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        AuditCommand::Key => {
            let settings = Settings::load(over)?;
            let signer = Signer::load(&settings.audit, true)?;
            println!("{}", signer.verifier_key());
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Keys => {
            let settings = Settings::load(over)?;
            let signer = Signer::load(&settings.audit, false).ok();
            let cp = crate::service::ControlPlane::open(settings).await?;
            for k in super::known_verifiers(&cp, signer.as_ref()).await? {
                println!("{k}");
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Checkpoint => {
            let settings = Settings::load(over)?;
            let signer = Signer::load(&settings.audit, true)?;
            let cp = crate::service::ControlPlane::open(settings).await?;
            // Also when a stored checkpoint already covers the log: a log cut
            // back to an older checkpoint's size must not be vouched for.
            Witness::for_settings(&cp.settings).guard(&cp).await?;
            let c = super::sign_checkpoint(&cp, &signer).await?;
            print!("{}", c.note);
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Export { out } => {
            let settings = Settings::load(over)?;
            let signer = match Signer::load(&settings.audit, true) {
                Ok(s) => Some(s),
                Err(e) => {
                    eprintln!("warning: {e:#}; exporting only what is already signed");
                    None
                }
            };
            let cp =
                crate::service::ControlPlane::open_for(settings, crate::service::Opener::Command)
                    .await?;
            let s = super::export::export(&cp, signer.as_ref(), &out).await?;
            eprintln!(
                "Exported {} entries, {} checkpoints and {} verifier key(s) to {}.",
                s.entries,
                s.checkpoints.len(),
                s.keys.len(),
                out.display()
            );
            eprintln!(
                "Verify offline with: pliuz audit verify {} --key <trusted verifier key>",
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Check { all } => {
            let settings = Settings::load(over)?;
            let signer = Signer::load(&settings.audit, false).ok();
            let cp = crate::service::ControlPlane::open(settings).await?;
            let r = super::verify_log(&cp, signer.as_ref(), all).await?;
            // What this server remembers signing, outside the database.
            let witness = Witness::for_settings(&cp.settings);
            let verifiers = super::witness::verifiers(&cp, signer.as_ref()).await?;
            let (remembered, problems) = witness.check_all(&cp, &verifiers).await?;
            for p in &r.problems {
                eprintln!("FAILED: {}", p.message);
            }
            for p in &problems {
                eprintln!("FAILED: {p}");
            }
            if !r.problems.is_empty() || !problems.is_empty() {
                if all {
                    eprintln!("{} problem(s) found", r.problems.len() + problems.len());
                }
                return Ok(ExitCode::FAILURE);
            }
            println!(
                "OK: {} entries, {} checkpoints, {} unsigned; consistent with {remembered} checkpoints remembered in {}",
                r.entries,
                r.checkpoints.len(),
                r.unsigned_tail,
                witness.path().display()
            );
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Monitor {
            url,
            state,
            keys,
            keys_file,
            token_file,
            once,
            interval,
        } => {
            // Exit 1 means the log misbehaved; a usage problem is exit 2.
            let setup = || -> anyhow::Result<(super::monitor::Monitor, std::time::Duration)> {
                let keys = key_strings(&keys, keys_file.as_deref())?;
                let token = monitor_token(token_file.as_deref())?;
                let interval = crate::policy::parse_duration(&interval)
                    .map_err(|e| anyhow::anyhow!("--interval: {e}"))?;
                if interval.is_zero() {
                    anyhow::bail!("--interval must be more than 0s");
                }
                let m = super::monitor::Monitor::new(&url, state.clone(), token, keys)
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                Ok((m, interval))
            };
            match setup() {
                Ok((m, interval)) => Ok(super::monitor::run(m, once, interval).await),
                Err(e) => {
                    eprintln!("error: {e:#}");
                    Ok(ExitCode::from(2))
                }
            }
        }
        AuditCommand::AcceptRollback => accept_rollback(over).await,
        AuditCommand::RotateKey { print } => rotate_key(over, print).await,
    }
}

async fn rotate_key(over: &Overrides, print: bool) -> anyhow::Result<ExitCode> {
    let settings = Settings::load(over)?;
    let from_env = settings.audit.signing_key.is_some();
    if from_env && !print {
        anyhow::bail!(
            "the signing key comes from PLIUZ_AUDIT_SIGNING_KEY; run `pliuz audit rotate-key --print`, put the printed key in that variable and restart"
        );
    }
    let old = Signer::load(&settings.audit, true)?;
    let origin = settings.audit.origin.clone();
    let key_file = settings.audit.signing_key_file.clone();
    let cp = crate::service::ControlPlane::open(settings).await?;

    // 1. Seal everything so far under the old key.
    let sealed = super::sign_checkpoint(&cp, &old).await?;
    let old_key = old.key();
    let new =
        SigningKey::generate(&origin).map_err(|e| anyhow::anyhow!("cannot generate a key: {e}"))?;

    // 2. Install the new key (the running server notices the file change).
    let old_text = std::fs::read_to_string(&key_file).ok();
    if !print {
        write_key_file(&key_file, &new, true)?;
    }
    cp.record_verifier_key(&new.verifier_key()).await?;

    // 3. Record the rotation in the log itself.
    let recorded = cp
        .record_event(AuditEvent::AuditKeyRotated {
            previous_key: old_key.verifier_key(),
            key: new.verifier_key(),
            sealed_at_size: sealed.size,
        })
        .await;
    if let Err(e) = recorded {
        if !print {
            if let Some(t) = old_text {
                let _ = std::fs::write(&key_file, t);
            }
        }
        anyhow::bail!("could not record the rotation, the old key stays: {e}");
    }

    // 4. Sign the log, rotation entry included, with the new key.
    let new_vkey = new.verifier_key();
    let new_text = new.to_private_string();
    let signer = Signer::from_key(new);
    let c = super::sign_checkpoint(&cp, &signer).await?;
    eprintln!(
        "Rotated the audit signing key.\n  old verifier key: {}\n  new verifier key: {new_vkey}\n  checkpoint {} was the last signed by the old key; checkpoint {} is signed by the new one.\nKeep the old verifier key: checkpoints up to {} verify only with it (it stays in /api/v1/audit/keys and in exports).",
        old_key.verifier_key(),
        sealed.size,
        c.size,
        sealed.size,
    );
    if print {
        eprintln!("Set PLIUZ_AUDIT_SIGNING_KEY to the private key below and restart pliuz:");
        println!("{new_text}");
    } else {
        eprintln!("New key written to {}.", key_file.display());
        println!("{new_vkey}");
    }
    Ok(ExitCode::SUCCESS)
}

async fn accept_rollback(over: &Overrides) -> anyhow::Result<ExitCode> {
    let settings = Settings::load(over)?;
    let signer = Signer::load(&settings.audit, false)?;
    let cp = crate::service::ControlPlane::open(settings).await?;
    let witness = Witness::for_settings(&cp.settings);
    let Some(newest) = witness.newest()? else {
        eprintln!(
            "Nothing to accept: no signed checkpoint is remembered in {}.",
            witness.path().display()
        );
        return Ok(ExitCode::SUCCESS);
    };
    let problem = match witness.check_log(&cp, &newest).await {
        Ok(()) => {
            eprintln!(
                "Nothing to accept: the log extends the newest remembered checkpoint ({} entries).",
                newest.checkpoint.size
            );
            return Ok(ExitCode::SUCCESS);
        }
        Err(e) if e.is_inconsistency() => e.to_string(),
        Err(e) => return Err(e.into()),
    };
    let log_size = cp.audit_size().await?;
    let archived = witness.archive()?;
    let recorded = cp
        .record_event(AuditEvent::AuditRollbackAccepted {
            remembered_size: newest.checkpoint.size,
            remembered_checkpoint: newest.note.clone(),
            remembered_signed_at: newest.signed_at.clone(),
            log_size,
            problem: problem.clone(),
            archived_file: archived
                .file_name()
                .and_then(|n| n.to_str())
                .map(str::to_owned),
        })
        .await;
    if let Err(e) = recorded {
        let _ = std::fs::rename(&archived, witness.path());
        anyhow::bail!("could not record the rollback in the log; nothing changed: {e}");
    }
    let c = super::sign_checkpoint(&cp, &signer).await?;
    eprintln!(
        "Accepted the rollback: {problem}.\n  Recorded as an audit.rollback_accepted entry; checkpoint {} starts a new chain.\n  The old checkpoint file is kept at {}.\n  Monitors that saw the old log will report this rollback: once you have checked it, give them a fresh state file.",
        c.size,
        archived.display()
    );
    Ok(ExitCode::SUCCESS)
}
