//! The `pliuz` command line: `serve` and the admin commands. Commands that
//! create a secret print it alone on stdout; everything else goes to stderr.

use crate::approval::Actor;
use crate::auth::Role;
use crate::config::{Overrides, Settings};
use crate::service::directory::{group_change_text, InitialPassword};
use clap::{Parser, Subcommand};
use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "pliuz",
    version,
    about = "Human approval for AI agent tool calls"
)]
pub struct Cli {
    /// Settings and policies file (pliuz.toml). Env: PLIUZ_CONFIG.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Where the embedded database and keys live. Env: PLIUZ_DATA_DIR. Default ./pliuz-data.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// sqlite://PATH or postgres://... Env: PLIUZ_DATABASE_URL. Default: SQLite in the data dir.
    #[arg(long, global = true)]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the control plane (API, inbox, Slack, workers).
    Serve {
        /// Address to listen on. Env: PLIUZ_LISTEN. Default 127.0.0.1:8700.
        #[arg(long)]
        listen: Option<String>,
    },
    /// Agent API keys.
    Agents {
        #[command(subcommand)]
        command: AgentsCommand,
    },
    /// People who decide, administer or audit.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Policy files.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// The tamper-evident audit log.
    Audit {
        #[command(subcommand)]
        command: crate::audit::cli::AuditCommand,
    },
}

#[derive(Debug, Subcommand)]
enum AgentsCommand {
    /// Create an agent; prints its API key (shown once), then with
    /// --webhook-url the webhook signing secret (shown once).
    Create {
        /// A name for the agent, e.g. support-bot (shown to approvers).
        name: String,
        /// Where to POST this agent's events (approval.decided, run.ready).
        #[arg(long)]
        webhook_url: Option<String>,
    },
    /// Set or change an agent's webhook URL; prints a new signing secret (shown once).
    SetWebhook {
        /// The agent's name.
        name: String,
        #[arg(long)]
        url: String,
    },
    /// A new signing secret for an agent's webhook (same URL); prints it (shown once).
    RotateWebhookSecret {
        /// The agent's name.
        name: String,
    },
    /// List agents.
    List,
    /// Revoke an agent's key at once.
    Revoke {
        /// The agent's name, as given to `agents create`.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum UsersCommand {
    /// Create a user. The password comes from stdin with --password-stdin;
    /// otherwise a one-time setup link is printed.
    Create {
        /// The person's e-mail address (their log-in name).
        email: String,
        /// What they may do: approver (decide), admin (manage) or auditor (read the log).
        #[arg(long, value_parser = ["approver", "admin", "auditor"])]
        role: String,
        /// Groups (repeatable), e.g. --group finance.
        #[arg(long = "group")]
        groups: Vec<String>,
        /// Read the password from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Issue a personal API token (printed once) so this person can decide over the API.
    Token {
        /// The person's e-mail address.
        email: String,
        /// A note to tell this token from others, e.g. "ci".
        #[arg(long)]
        label: Option<String>,
    },
    /// List a person's API tokens (ids and labels, never the secrets).
    Tokens {
        /// The person's e-mail address.
        email: String,
    },
    /// Revoke one of a person's API tokens, by the id `users tokens` lists.
    RevokeToken {
        /// The person's e-mail address.
        email: String,
        /// The token's id.
        id: String,
    },
    /// Change a user's role.
    SetRole {
        /// The person's e-mail address.
        email: String,
        #[arg(value_parser = ["approver", "admin", "auditor"])]
        role: String,
    },
    /// Revoke all of a person's API tokens.
    RevokeTokens {
        /// The person's e-mail address.
        email: String,
    },
    /// List users.
    List,
    /// Add a user to a group.
    AddGroup {
        /// The person's e-mail address.
        email: String,
        /// The group's name, e.g. finance (as in a policy's `group:finance`).
        group: String,
    },
    /// Remove a user from a group.
    RemoveGroup {
        /// The person's e-mail address.
        email: String,
        /// The group's name, e.g. finance (as in a policy's `group:finance`).
        group: String,
    },
    /// Stop a user from logging in or using tokens.
    Disable {
        /// The person's e-mail address.
        email: String,
    },
    /// Undo `disable`.
    Enable {
        /// The person's e-mail address.
        email: String,
    },
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Validate a policy file (default: --config) and report each mistake with its line.
    Check {
        /// The pliuz.toml or policy file to check (default: --config / PLIUZ_CONFIG).
        file: Option<PathBuf>,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    crate::file_modes::private_umask();
    // `serve` starts its log once its settings (and `log_format`) are read.
    if !matches!(cli.command, Command::Serve { .. }) {
        match crate::config::LogFormat::from_env() {
            Ok(format) => init_tracing(false, format.unwrap_or_default()),
            Err(e) => {
                eprintln!("error: {e:#}");
                return ExitCode::FAILURE;
            }
        }
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Lists approvers that match nobody, when the database can be reached
/// without creating it. Warnings only: groups may be created later.
async fn check_approvers_against_store(set: &crate::policy::PolicySet, over: &Overrides) {
    let settings = match Settings::load(over) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("note: approvers not checked against users: {e:#}");
            return;
        }
    };
    let url = &settings.database_url;
    if let Some(path) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        let path = path.split('?').next().unwrap_or(path);
        if !std::path::Path::new(path).exists() {
            eprintln!(
                "note: approvers not checked against users: no database at {path} yet (pass --data-dir or --database-url)"
            );
            return;
        }
    }
    let users = crate::service::users_in(url, std::time::Duration::from_secs(10)).await;
    match users {
        Ok(users) => {
            let warnings = crate::approver_check::unknown_approvers(set, &users);
            for w in &warnings {
                eprintln!("warning: {w}");
            }
            if warnings.is_empty() {
                eprintln!("every approver matches at least one active user");
            }
        }
        Err(e) => eprintln!("note: approvers not checked against users: {e}"),
    }
}

fn init_tracing(serving: bool, format: crate::config::LogFormat) {
    use tracing_subscriber::EnvFilter;
    let default = if serving {
        "info,sqlx=warn,tower_http=warn"
    } else {
        "warn"
    };
    let filter = EnvFilter::try_from_env("PLIUZ_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Secrets are scrubbed from each finished line, whatever its format.
        .with_writer(crate::redact::RedactingStderr);
    let _ = match format {
        // Colour codes only for a person at a terminal, not in log files.
        crate::config::LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        // One object per line; the current span's fields (the request's
        // method and redacted URI) are included.
        crate::config::LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut over = Overrides {
        config: cli.config,
        data_dir: cli.data_dir,
        listen: None,
        database_url: cli.database_url,
    };
    match cli.command {
        Command::Serve { listen } => {
            over.listen = listen;
            let settings = Settings::load(&over)?;
            init_tracing(true, settings.log_format);
            crate::server::serve(settings).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Policy {
            command: PolicyCommand::Check { file },
        } => {
            let Some(path) = file
                .or(over.config)
                .or_else(|| std::env::var("PLIUZ_CONFIG").ok().map(PathBuf::from))
            else {
                anyhow::bail!("name a file: `pliuz policy check pliuz.toml` (or pass --config)");
            };
            match crate::config::check_file(&path) {
                Ok(set) => {
                    eprintln!("{}: OK, {} policies", path.display(), set.iter().count());
                    over.config = Some(path);
                    check_approvers_against_store(&set, &over).await;
                    Ok(ExitCode::SUCCESS)
                }
                Err(errors) => {
                    for e in &errors {
                        eprintln!("{e}");
                    }
                    eprintln!("{} mistake(s) found", errors.len());
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Audit { command } => crate::audit::cli::run(command, &over).await,
        Command::Agents { command } => {
            let cp = crate::service::ControlPlane::open(Settings::load(&over)?).await?;
            let actor = Actor::System;
            match command {
                AgentsCommand::Create { name, webhook_url } => {
                    if let Some(url) = &webhook_url {
                        crate::service::webhooks::check_url(url)
                            .map_err(|m| anyhow::anyhow!("--webhook-url: {m}"))?;
                    }
                    let key = cp.create_agent(&actor, &name).await?;
                    eprintln!(
                        "Created agent '{name}'. Its API key is below; it is shown only once."
                    );
                    println!("{key}");
                    if let Some(url) = webhook_url {
                        let secret = cp.set_agent_webhook(&actor, &name, &url).await.map_err(|e| {
                            anyhow::anyhow!("the agent was created, but its webhook was not set: {e}; run `pliuz agents set-webhook {name} --url URL`")
                        })?;
                        eprintln!("Its webhook signing secret (for {url}) is below; it is shown only once.");
                        println!("{secret}");
                    }
                }
                AgentsCommand::SetWebhook { name, url } => {
                    let secret = cp.set_agent_webhook(&actor, &name, &url).await?;
                    eprintln!("Webhook of agent '{name}' set to {url}. Its new signing secret is below; it is shown only once (the old one no longer signs).");
                    println!("{secret}");
                }
                AgentsCommand::RotateWebhookSecret { name } => {
                    let secret = cp.rotate_agent_webhook_secret(&actor, &name).await?;
                    eprintln!("New signing secret for the webhook of agent '{name}' below; it is shown only once (the old one no longer signs).");
                    println!("{secret}");
                }
                AgentsCommand::List => {
                    println!("NAME\tCREATED\tSTATUS");
                    for a in cp.list_agents().await? {
                        let status = if a.revoked_at.is_some() {
                            "revoked"
                        } else {
                            "active"
                        };
                        println!(
                            "{}\t{}\t{status}",
                            a.name,
                            crate::service::format_time(a.created_at)
                        );
                    }
                }
                AgentsCommand::Revoke { name } => {
                    cp.revoke_agent(&actor, &name).await?;
                    eprintln!("Revoked agent '{name}'.");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Users { command } => {
            let cp = crate::service::ControlPlane::open(Settings::load(&over)?).await?;
            let actor = Actor::System;
            match command {
                UsersCommand::Create {
                    email,
                    role,
                    groups,
                    password_stdin,
                } => {
                    let role = Role::parse(&role).ok_or_else(|| {
                        anyhow::anyhow!("role must be approver, admin or auditor")
                    })?;
                    let password = if password_stdin {
                        let mut line = String::new();
                        std::io::stdin().lock().read_line(&mut line)?;
                        InitialPassword::Given(line.trim_end_matches(['\r', '\n']).to_owned())
                    } else {
                        InitialPassword::SetupLink
                    };
                    let created = cp
                        .create_user(&actor, &email, role, &groups, password)
                        .await?;
                    match created.setup_token {
                        Some(token) => {
                            eprintln!(
                                "Created {} ({role}). Send them this one-time link to set a password (valid 72 hours):",
                                created.user.email
                            );
                            println!("{}/setup/{token}", cp.settings.public_url);
                        }
                        None => eprintln!("Created {} ({role}).", created.user.email),
                    }
                }
                UsersCommand::Token { email, label } => {
                    let issued = cp
                        .issue_user_token(&actor, &email, label.as_deref())
                        .await?;
                    if std::io::stdout().is_terminal() {
                        eprintln!("API token {} for {email} (shown only once):", issued.id);
                    }
                    println!("{}", issued.token);
                }
                UsersCommand::Tokens { email } => {
                    println!("ID\tLABEL\tCREATED\tSTATUS");
                    for t in cp.user_tokens(&email).await? {
                        println!(
                            "{}\t{}\t{}\t{}",
                            t.id,
                            t.label.unwrap_or_default(),
                            crate::service::format_time(t.created_at),
                            if t.revoked_at.is_some() {
                                "revoked"
                            } else {
                                "active"
                            }
                        );
                    }
                }
                UsersCommand::RevokeToken { email, id } => {
                    cp.revoke_user_token(&actor, &email, &id).await?;
                    eprintln!("Revoked token {id} of {email}.");
                }
                UsersCommand::SetRole { email, role } => {
                    let role = Role::parse(&role).ok_or_else(|| {
                        anyhow::anyhow!("role must be approver, admin or auditor")
                    })?;
                    let user = cp.set_user_role(&actor, &email, role).await?;
                    eprintln!("{} is now {}.", user.email, user.role);
                }
                UsersCommand::RevokeTokens { email } => {
                    let n = cp.revoke_user_tokens(&actor, &email).await?;
                    eprintln!("Revoked {n} token(s) of {email}.");
                }
                UsersCommand::List => {
                    println!("EMAIL\tROLE\tGROUPS\tSTATUS");
                    for u in cp.list_users().await? {
                        println!(
                            "{}\t{}\t{}\t{}",
                            u.email,
                            u.role,
                            u.groups.join(","),
                            if u.disabled { "disabled" } else { "active" }
                        );
                    }
                }
                UsersCommand::AddGroup { email, group } => {
                    let changed = cp.change_group(&actor, &email, &group, true).await?;
                    eprintln!("{}", group_change_text(&email, &group, true, changed));
                }
                UsersCommand::RemoveGroup { email, group } => {
                    let changed = cp.change_group(&actor, &email, &group, false).await?;
                    eprintln!("{}", group_change_text(&email, &group, false, changed));
                }
                UsersCommand::Disable { email } => {
                    cp.set_user_disabled(&actor, &email, true).await?;
                    eprintln!("Disabled {email}.");
                }
                UsersCommand::Enable { email } => {
                    cp.set_user_disabled(&actor, &email, false).await?;
                    eprintln!("Enabled {email}.");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
