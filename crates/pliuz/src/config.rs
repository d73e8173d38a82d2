//! Configuration in one place: `pliuz.toml` (optional), then environment
//! variables, then command-line flags. Validated once, at start.

use crate::approval::DecisionKind;
use crate::policy::{parse_duration, Approver, Condition, Policy, PolicyError, PolicySet};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

pub mod email;
pub mod oidc;
mod policy_reach;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8700";
pub const DEFAULT_DATA_DIR: &str = "./pliuz-data";
pub const DEFAULT_MAX_BODY_BYTES: usize = pliuz_audit::limits::DEFAULT_BODY_BYTES;
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Largest stored run state (`max_run_state_bytes`), and the bounds it may be set within.
pub const DEFAULT_MAX_RUN_STATE_BYTES: usize = 8 * 1024 * 1024;
pub const MAX_RUN_STATE_BYTES_RANGE: std::ops::RangeInclusive<usize> = 1024..=(256 * 1024 * 1024);
/// Accepted range of `audit.checkpoint_interval`: a shorter one keeps an idle
/// server busy signing.
pub const CHECKPOINT_INTERVAL_RANGE: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(24 * 3600));
/// Accepted range of `audit.checkpoint_every` (entries).
pub const CHECKPOINT_EVERY_RANGE: (i64, i64) = (1, 1_000_000);
/// Accepted range of `inbox.session_ttl`.
pub const SESSION_TTL_RANGE: (Duration, Duration) =
    (Duration::from_secs(60), Duration::from_secs(90 * 24 * 3600));
/// Shortest accepted `metrics.token`: a guessable token protects nothing.
pub const MIN_METRICS_TOKEN_CHARS: usize = 16;
/// Accepted range of a policy's `required_approvals`.
pub const REQUIRED_APPROVALS_RANGE: (i64, i64) = (1, u32::MAX as i64);

/// `Ok(v)` when `min <= v <= max`, else a message naming the setting and range.
/// `Err` with every mistake found, if any: settings are checked whole, so
/// that one try names every mistake rather than the first.
fn fail_on_any<E>(errors: Vec<E>) -> Result<(), Vec<E>> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn int_in(setting: &str, v: i64, (min, max): (i64, i64)) -> Result<i64, String> {
    if (min..=max).contains(&v) {
        Ok(v)
    } else {
        Err(format!(
            "{setting} must be between {min} and {max}, got {v}"
        ))
    }
}

fn body_bytes_in(setting: &str, v: i64) -> Result<usize, String> {
    use pliuz_audit::limits::{MAX_BODY_BYTES, MIN_BODY_BYTES};
    int_in(setting, v, (MIN_BODY_BYTES as i64, MAX_BODY_BYTES as i64))
        .map(|v| v as usize)
        .map_err(|m| format!("{m} (bytes; see docs/limits.md)"))
}

fn duration_in(
    setting: &str,
    s: &str,
    (min, max): (Duration, Duration),
) -> Result<Duration, String> {
    let d = parse_duration(s).map_err(|m| format!("{setting}: {m}"))?;
    if d < min || d > max {
        return Err(format!(
            "{setting} must be between {} and {}, got {s:?}",
            humantime::format_duration(min),
            humantime::format_duration(max)
        ));
    }
    Ok(d)
}

/// A number from the environment: unset or empty is `None`; anything that is
/// not a whole number is an error naming the variable.
fn env_int(name: &str) -> anyhow::Result<Option<i64>> {
    match env(name) {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse::<i64>()
            .map(Some)
            .map_err(|_| anyhow::anyhow!("{name} must be a whole number, got {v:?}")),
    }
}

/// A boolean from the environment: `true`/`1` or `false`/`0`.
fn env_bool(name: &str) -> anyhow::Result<Option<bool>> {
    match env(name).as_deref().map(str::trim) {
        None => Ok(None),
        Some("true" | "1") => Ok(Some(true)),
        Some("false" | "0") => Ok(Some(false)),
        Some(v) => anyhow::bail!("{name} must be true, false, 1 or 0, got {v:?}"),
    }
}

/// Everything the server and the admin commands need, resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// `sqlite://...` (default, inside `data_dir`) or `postgres://...`.
    pub database_url: String,
    /// Where people reach the server (links in Slack, printed log-in URL).
    pub public_url: String,
    pub max_body_bytes: usize,
    /// How long shutdown may take at most, from SIGTERM to exit.
    pub shutdown_grace: Duration,
    pub policies: PolicySet,
    pub audit: AuditSettings,
    pub slack: Option<SlackSettings>,
    pub inbox: InboxSettings,
    /// Largest run state `POST/PUT /api/v1/runs` accepts (`crate::service::runs`).
    pub max_run_state_bytes: usize,
    /// The data encryption key file (`crate::encryption`; generated on first start, mode 0600).
    pub encryption_key_file: PathBuf,
    /// The key given directly (`PLIUZ_ENCRYPTION_KEY`, base64); wins over the file.
    pub encryption_key: Option<crate::encryption::KeyText>,
    /// Single sign-on (`[oidc]`), when configured.
    pub oidc: Option<oidc::OidcSettings>,
    /// The e-mail channel (`[email]`), when configured.
    pub email: Option<email::EmailSettings>,
    /// `GET /metrics` (`[metrics]`).
    pub metrics: MetricsSettings,
    /// How log lines are written (`log_format`, `PLIUZ_LOG_FORMAT`).
    pub log_format: LogFormat,
    /// Where the policies live (`policy_source`, `PLIUZ_POLICY_SOURCE`).
    pub policy_source: PolicySource,
    /// The file the settings came from, if any.
    pub config_path: Option<PathBuf>,
}

/// Where the policies live.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PolicySource {
    /// The `[[policy]]` tables of the configuration file, read at start.
    #[default]
    File,
    /// The database, changed through the management API; the file's
    /// `[[policy]]` tables are imported on the first start with none stored.
    Database,
}

impl PolicySource {
    /// `file` or `database`; anything else is a mistake naming `setting`.
    pub fn parse(setting: &str, value: &str) -> Result<PolicySource, String> {
        match value.trim() {
            "file" => Ok(PolicySource::File),
            "database" => Ok(PolicySource::Database),
            other => Err(format!(
                "{setting} must be \"file\" or \"database\", got {other:?}"
            )),
        }
    }
}

/// One mistake in a policy given as JSON (the management API): the policy's
/// place in the list and the key it is on, when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefinitionError {
    pub index: usize,
    pub field: Option<String>,
    pub message: String,
}

/// Builds a policy set from definitions given as JSON objects with the keys
/// of a `[[policy]]` table, checked exactly as `pliuz policy check` checks a
/// file: each is written as a table of a generated file, one key a line, and
/// that file is parsed; every mistake comes back, named by its key. `null`
/// values count as absent. `default_policy` applies when one of them has
/// that name. The set's `source` is the generated file. `email_configured`
/// says whether the server has an `[email]` section (the generated file has
/// none), so that `email = true` is refused only when mail cannot be sent.
pub fn policies_from_definitions(
    defs: &[&serde_json::Value],
    default_policy: Option<&str>,
    email_configured: bool,
) -> Result<PolicySet, Vec<DefinitionError>> {
    use std::fmt::Write;
    let mut text = String::new();
    // Line (1-based) -> (policy index, key): what a line-numbered error is about.
    let mut at: Vec<(usize, Option<String>)> = vec![(0, None)];
    let mut errors = Vec::new();
    let named = |n: &str| {
        defs.iter()
            .any(|d| d.get("name").and_then(|v| v.as_str()) == Some(n))
    };
    if let Some(d) = default_policy.filter(|d| named(d)) {
        let _ = writeln!(
            text,
            "default_policy = {}",
            toml::Value::String(d.to_owned())
        );
        at.push((0, Some("default_policy".into())));
    }
    for (i, def) in defs.iter().enumerate() {
        let Some(obj) = def.as_object() else {
            errors.push(DefinitionError {
                index: i,
                field: None,
                message: "a policy must be a JSON object with the keys of a [[policy]] table"
                    .into(),
            });
            continue;
        };
        text.push_str("[[policy]]\n");
        at.push((i, None));
        for (key, value) in obj {
            if value.is_null() {
                continue;
            }
            match toml::Value::try_from(value) {
                Ok(v) => {
                    let _ = writeln!(text, "{} = {v}", toml::Value::String(key.clone()));
                    at.push((i, Some(key.clone())));
                }
                Err(_) => errors.push(DefinitionError {
                    index: i,
                    field: Some(key.clone()),
                    message: format!(
                        "{key} must be a string, a number, a boolean or an array of them"
                    ),
                }),
            }
        }
    }
    fail_on_any(errors)?;
    match parse_config(&text, email_configured) {
        Ok(parsed) => Ok(parsed.policies),
        Err(errs) => Err(errs
            .into_iter()
            .map(|e| {
                let (index, field) = e.line.and_then(|l| at.get(l).cloned()).unwrap_or((0, None));
                DefinitionError {
                    index,
                    field,
                    message: e.message,
                }
            })
            .collect()),
    }
}

#[derive(Debug, Clone)]
pub struct AuditSettings {
    /// The log's origin line; also the checkpoint signing key's name.
    pub origin: String,
    /// Sign a new checkpoint after this many entries...
    pub checkpoint_every: u64,
    /// ...or after this long, whichever comes first.
    pub checkpoint_interval: Duration,
    /// The Ed25519 signing key file (generated on first start, mode 0600).
    pub signing_key_file: PathBuf,
    /// A signing key given directly (`PLIUZ_AUDIT_SIGNING_KEY`); wins over the file.
    pub signing_key: Option<String>,
}

#[derive(Clone)]
pub struct SlackSettings {
    pub bot_token: String,
    pub signing_secret: String,
    pub api_url: String,
    pub default_channel: Option<String>,
    /// Also send a direct message to each approver of the policy.
    pub dm_approvers: bool,
    /// Explicit Pliuz email → Slack user id map; otherwise `users.lookupByEmail`.
    pub users: BTreeMap<String, String>,
}

// Secrets must never reach logs, even through `{:?}`.
impl std::fmt::Debug for SlackSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackSettings")
            .field("bot_token", &"[redacted]")
            .field("signing_secret", &"[redacted]")
            .field("api_url", &self.api_url)
            .field("default_channel", &self.default_channel)
            .field("dm_approvers", &self.dm_approvers)
            .field("users", &self.users)
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct InboxSettings {
    /// How long a log-in session lasts.
    pub session_ttl: Duration,
    /// Mark cookies `Secure` (set when served over TLS, directly or behind a proxy).
    pub secure_cookies: bool,
}

/// `[metrics]`: whether `GET /metrics` is served and what it asks for.
#[derive(Debug, Clone, Default)]
pub struct MetricsSettings {
    /// Off unless turned on (`enabled = true`) or given a token: the counts
    /// say how busy the server is and name the policies.
    pub enabled: bool,
    /// When set, a scrape must send `Authorization: Bearer <token>`.
    pub token: Option<MetricsToken>,
}

/// The bearer token of `GET /metrics`: compared in constant time, never
/// printed (not even through `{:?}`).
#[derive(Clone)]
pub struct MetricsToken(String);

impl std::fmt::Debug for MetricsToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsToken([redacted])")
    }
}

impl MetricsToken {
    fn parse(setting: &str, token: String) -> Result<MetricsToken, String> {
        if token.chars().count() < MIN_METRICS_TOKEN_CHARS
            || !token.chars().all(|c| c.is_ascii_graphic())
        {
            return Err(format!("{setting} must be at least {MIN_METRICS_TOKEN_CHARS} printable characters without spaces (e.g. from `openssl rand -hex 32`)"));
        }
        Ok(MetricsToken(token))
    }

    /// Whether `given` is the token. Both sides are hashed first, so the
    /// comparison takes the same time whatever the length or the first
    /// differing byte.
    pub fn matches(&self, given: &str) -> bool {
        use sha2::{Digest, Sha256};
        let expected = Sha256::digest(self.0.as_bytes());
        let given = Sha256::digest(given.as_bytes());
        expected
            .iter()
            .zip(given.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// One line of text per event, for people.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

impl LogFormat {
    /// `text` or `json`; anything else is a mistake naming `setting`.
    pub fn parse(setting: &str, value: &str) -> Result<LogFormat, String> {
        match value.trim() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!(
                "{setting} must be \"text\" or \"json\", got {other:?}"
            )),
        }
    }

    /// From `PLIUZ_LOG_FORMAT` alone: for the commands that read no settings file.
    pub fn from_env() -> anyhow::Result<Option<LogFormat>> {
        env("PLIUZ_LOG_FORMAT")
            .map(|v| LogFormat::parse("PLIUZ_LOG_FORMAT", &v).map_err(anyhow::Error::msg))
            .transpose()
    }
}

/// Values given on the command line (they win over everything).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub listen: Option<String>,
    pub database_url: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<Spanned<String>>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    public_url: Option<String>,
    max_body_bytes: Option<Spanned<i64>>,
    shutdown_grace: Option<Spanned<String>>,
    max_run_state_bytes: Option<usize>,
    encryption_key_file: Option<PathBuf>,
    default_policy: Option<Spanned<String>>,
    audit: Option<FileAudit>,
    slack: Option<FileSlack>,
    inbox: Option<FileInbox>,
    oidc: Option<oidc::FileOidc>,
    email: Option<email::FileEmail>,
    metrics: Option<FileMetrics>,
    log_format: Option<Spanned<String>>,
    policy_source: Option<Spanned<String>>,
    #[serde(default)]
    policy: Vec<Spanned<FilePolicy>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileMetrics {
    enabled: Option<bool>,
    token: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileAudit {
    origin: Option<Spanned<String>>,
    checkpoint_every: Option<Spanned<i64>>,
    checkpoint_interval: Option<Spanned<String>>,
    signing_key_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileSlack {
    bot_token: Option<String>,
    signing_secret: Option<String>,
    api_url: Option<String>,
    default_channel: Option<String>,
    #[serde(default)]
    dm_approvers: bool,
    #[serde(default)]
    users: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileInbox {
    session_ttl: Option<Spanned<String>>,
    secure_cookies: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePolicy {
    name: Spanned<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    tools: Vec<Spanned<String>>,
    #[serde(default)]
    approvers: Vec<Spanned<String>>,
    decisions: Option<Vec<Spanned<String>>>,
    required_approvals: Option<Spanned<i64>>,
    expires_in: Option<Spanned<String>>,
    execute_within: Option<Spanned<String>>,
    auto_approve: Option<Spanned<String>>,
    auto_reject: Option<Spanned<String>>,
    slack_channel: Option<String>,
    email: Option<Spanned<bool>>,
    email_to: Option<Vec<Spanned<String>>>,
    remind_after: Option<Spanned<String>>,
    escalate_after: Option<Spanned<String>>,
    escalate_to: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    reject_reasons: Vec<Spanned<String>>,
}

/// Maps byte offsets to 1-based line numbers.
struct Lines<'a>(&'a str);

impl Lines<'_> {
    fn at(&self, offset: usize) -> usize {
        let end = offset.min(self.0.len());
        self.0.as_bytes()[..end]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1
    }
    fn err<T>(&self, span: &Spanned<T>, message: String) -> PolicyError {
        PolicyError {
            line: Some(self.at(span.span().start)),
            message,
        }
    }
}

/// The result of reading a config file: every mistake, each with its line.
pub struct ParsedFile {
    file: FileConfig,
    policies: PolicySet,
}

/// Parse and validate a `pliuz.toml` (or a file with only `[[policy]]`
/// tables). Returns all mistakes found, not just the first.
pub fn parse_config_text(text: &str) -> Result<ParsedFile, Vec<PolicyError>> {
    parse_config(text, false)
}

/// `email_elsewhere`: the `[email]` section is known to exist outside this
/// text (policies stored in the database are checked without the file).
fn parse_config(text: &str, email_elsewhere: bool) -> Result<ParsedFile, Vec<PolicyError>> {
    let lines = Lines(text);
    let (file, mut errors) = read_every_entry(text, &lines)?;
    let mut policies: Vec<Policy> = Vec::new();
    for sp in &file.policy {
        match build_policy(sp, &lines) {
            Ok(p) => {
                if policies.iter().any(|q| q.name == p.name) {
                    errors.push(lines.err(
                        &sp.get_ref().name,
                        format!("policy '{}' is defined twice", p.name),
                    ));
                } else {
                    policies.push(p);
                }
            }
            Err(mut es) => errors.append(&mut es),
        }
    }
    let default_policy = file.default_policy.as_ref().map(|d| d.get_ref().clone());
    if let Some(d) = &file.default_policy {
        if !policies.iter().any(|p| &p.name == d.get_ref())
            && !errors
                .iter()
                .any(|e| e.message.contains(d.get_ref().as_str()))
        {
            errors.push(lines.err(
                d,
                format!(
                    "default_policy '{}' is not the name of a policy in this file",
                    d.get_ref()
                ),
            ));
        }
    }
    if let Some(l) = &file.listen {
        if l.get_ref().parse::<SocketAddr>().is_err() {
            errors.push(lines.err(
                l,
                format!(
                    "listen '{}' is not an address like 127.0.0.1:8700",
                    l.get_ref()
                ),
            ));
        }
    }
    if let Some(a) = &file.audit {
        if let Some(o) = &a.origin {
            if let Err(m) = check_origin(o.get_ref()) {
                errors.push(lines.err(o, m));
            }
        }
        if let Some(i) = &a.checkpoint_interval {
            if let Err(m) = duration_in(
                "audit.checkpoint_interval",
                i.get_ref(),
                CHECKPOINT_INTERVAL_RANGE,
            ) {
                errors.push(lines.err(i, m));
            }
        }
        if let Some(n) = &a.checkpoint_every {
            if let Err(m) = int_in(
                "audit.checkpoint_every",
                *n.get_ref(),
                CHECKPOINT_EVERY_RANGE,
            ) {
                errors.push(lines.err(n, m));
            }
        }
    }
    if let Some(g) = &file.shutdown_grace {
        if let Err(m) = parse_duration(g.get_ref()) {
            errors.push(lines.err(g, format!("shutdown_grace: {m}")));
        }
    }
    if let Some(n) = &file.max_body_bytes {
        if let Err(m) = body_bytes_in("max_body_bytes", *n.get_ref()) {
            errors.push(lines.err(n, m));
        }
    }
    if let Some(i) = file.inbox.as_ref().and_then(|i| i.session_ttl.as_ref()) {
        if let Err(m) = duration_in("inbox.session_ttl", i.get_ref(), SESSION_TTL_RANGE) {
            errors.push(lines.err(i, m));
        }
    }
    if let Some(f) = &file.log_format {
        if let Err(m) = LogFormat::parse("log_format", f.get_ref()) {
            errors.push(lines.err(f, m));
        }
    }
    if let Some(f) = &file.policy_source {
        if let Err(m) = PolicySource::parse("policy_source", f.get_ref()) {
            errors.push(lines.err(f, m));
        }
    }
    if let Some(t) = file.metrics.as_ref().and_then(|m| m.token.as_ref()) {
        if let Err(m) = MetricsToken::parse("metrics.token", t.get_ref().clone()) {
            errors.push(lines.err(t, m));
        }
    }
    if let Some(sl) = &file.slack {
        // The environment may give the other half (PLIUZ_SLACK_*), as `serve` allows.
        let token = sl.bot_token.is_some() || env("PLIUZ_SLACK_BOT_TOKEN").is_some();
        let secret = sl.signing_secret.is_some() || env("PLIUZ_SLACK_SIGNING_SECRET").is_some();
        if token != secret {
            errors.push(PolicyError {
                line: None,
                message: SLACK_HALF_CONFIGURED.to_owned(),
            });
        }
    }
    if let Some(o) = &file.oidc {
        // `pliuz check` reports [oidc] mistakes too, each naming its setting.
        if let Err(es) = o.clone().resolve(&env) {
            errors.extend(es.into_iter().map(|message| PolicyError {
                line: None,
                message,
            }));
        }
    }
    match &file.email {
        Some(e) => {
            let public = file
                .public_url
                .clone()
                .unwrap_or_else(|| "http://localhost".into());
            if let Err(es) = e.clone().resolve(&env, &public) {
                errors.extend(es.into_iter().map(|message| PolicyError {
                    line: None,
                    message,
                }));
            }
        }
        None if email_elsewhere => {}
        None => {
            for p in policies.iter().filter(|p| p.email.is_some()) {
                errors.push(PolicyError {
                    line: None,
                    message: format!(
                        "policy '{}' sets email = true but there is no [email] section to send through; add one (docs/email.md)",
                        p.name
                    ),
                });
            }
        }
    }
    if !errors.is_empty() {
        // In file order; mistakes of the file as a whole (no line) after.
        errors.sort_by_key(|e| (e.line.is_none(), e.line));
        return Err(errors);
    }
    Ok(ParsedFile {
        policies: PolicySet::new(policies, default_policy, text.to_owned()),
        file,
    })
}

/// Most mistakes a file can hold, so a pathological file cannot loop long.
const MAX_READ_MISTAKES: usize = 100;

fn toml_error(e: &toml::de::Error, lines: &Lines<'_>) -> PolicyError {
    PolicyError {
        line: e.span().map(|s| lines.at(s.start)),
        message: e.message().to_owned(),
    }
}

/// Deserializes the file, collecting every unknown key and mistyped value
/// rather than the first: serde stops at the first, so each offending entry
/// is blanked out (byte for byte, so later offsets and line numbers stay
/// true) and the text is read again. Returns the settings that did read,
/// for the checks that follow, with the mistakes so far; `Err` only when
/// nothing further can be read (a syntax error, or a mistake that blanking
/// cannot isolate, such as a table missing a required key).
fn read_every_entry(
    text: &str,
    lines: &Lines<'_>,
) -> Result<(FileConfig, Vec<PolicyError>), Vec<PolicyError>> {
    // A syntax error leaves no reliable structure to read on from.
    text.parse::<toml::Table>()
        .map_err(|e| vec![toml_error(&e, lines)])?;
    let mut current = text.to_owned();
    let mut errors = Vec::new();
    loop {
        let e = match toml::from_str::<FileConfig>(&current) {
            Ok(file) => return Ok((file, errors)),
            Err(e) => e,
        };
        let mut error = toml_error(&e, lines);
        // serde names the wrong type but not the key; the line holds it.
        if let Some(key) = e.span().and_then(|span| key_at(&current, span.start)) {
            if error.message.starts_with("invalid ") {
                error.message = format!("{key}: {}", error.message);
            }
        }
        errors.push(error);
        match e.span().and_then(|span| blank_entry(&current, span)) {
            Some(next) if errors.len() < MAX_READ_MISTAKES => current = next,
            _ => return Err(errors),
        }
    }
}

/// The key of the `key = value` line holding `offset`.
fn key_at(text: &str, offset: usize) -> Option<&str> {
    let start = text.get(..offset)?.rfind('\n').map_or(0, |i| i + 1);
    let (key, _) = text.get(start..)?.split_once('=')?;
    let key = key.trim();
    (!key.is_empty() && !key.contains('\n')).then_some(key)
}

/// `text` with the whole lines holding `span` replaced by spaces, or `None`
/// when that cannot remove just one entry: the span is on a table header,
/// or the rest would not be valid TOML (a value continuing on other lines).
fn blank_entry(text: &str, span: std::ops::Range<usize>) -> Option<String> {
    let start = text.get(..span.start)?.rfind('\n').map_or(0, |i| i + 1);
    let end = text
        .get(span.end..)?
        .find('\n')
        .map_or(text.len(), |i| span.end + i);
    if text.get(start..end)?.trim_start().starts_with('[') {
        return None;
    }
    let mut bytes = text.as_bytes().to_vec();
    for b in &mut bytes[start..end] {
        if *b != b'\n' {
            *b = b' ';
        }
    }
    let blanked = String::from_utf8(bytes).ok()?;
    blanked.parse::<toml::Table>().ok()?;
    Some(blanked)
}

const SLACK_HALF_CONFIGURED: &str = "[slack] needs both slack.bot_token and slack.signing_secret (or PLIUZ_SLACK_BOT_TOKEN and PLIUZ_SLACK_SIGNING_SECRET); give both, or neither to run without Slack";

fn check_origin(o: &str) -> Result<(), String> {
    if o.is_empty() || o.contains(char::is_whitespace) || o.contains('+') {
        Err(format!("audit.origin '{o}' must be non-empty with no spaces and no '+', e.g. \"pliuz.example.com/audit\""))
    } else {
        Ok(())
    }
}

fn build_policy(sp: &Spanned<FilePolicy>, lines: &Lines<'_>) -> Result<Policy, Vec<PolicyError>> {
    let raw = sp.get_ref();
    let mut errors = Vec::new();
    let name = raw.name.get_ref().trim().to_owned();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        errors.push(lines.err(
            &raw.name,
            format!("policy name '{name}' must be letters, digits, '-', '_' or '.'"),
        ));
    }
    let tools: Vec<String> = raw.tools.iter().map(|t| t.get_ref().clone()).collect();
    for t in &raw.tools {
        if t.get_ref().trim().is_empty() {
            errors.push(lines.err(t, format!("policy '{name}': a tool name is empty")));
        }
    }
    let mut approvers = Vec::new();
    for a in &raw.approvers {
        match Approver::parse(a.get_ref()) {
            Ok(ap) => approvers.push(ap),
            Err(m) => errors.push(lines.err(a, format!("policy '{name}': {m}"))),
        }
    }
    let mut decisions = Vec::new();
    match &raw.decisions {
        None => decisions = vec![DecisionKind::Approve, DecisionKind::Reject],
        Some(list) => {
            for d in list {
                match DecisionKind::parse(d.get_ref()) {
                    Some(k) if !decisions.contains(&k) => decisions.push(k),
                    Some(_) => {}
                    None => errors.push(lines.err(
                        d,
                        format!(
                            "policy '{name}': decision '{}' must be one of approve, reject, edit, respond",
                            d.get_ref()
                        ),
                    )),
                }
            }
            if list.is_empty() {
                errors.push(PolicyError {
                    line: Some(lines.at(sp.span().start)),
                    message: format!(
                        "policy '{name}': decisions is empty; allow at least 'approve' or 'reject'"
                    ),
                });
            }
        }
    }
    if raw.approvers.is_empty() {
        errors.push(lines.err(&raw.name, format!("policy '{name}' has no approvers; add approvers = [\"group:NAME\"] or [\"user:EMAIL\"]")));
    }
    let required_approvals = match &raw.required_approvals {
        None => 1,
        Some(r) => match int_in("required_approvals", *r.get_ref(), REQUIRED_APPROVALS_RANGE)
            .and_then(|n| u32::try_from(n).map_err(|e| e.to_string()))
        {
            Ok(n) => n,
            Err(m) => {
                errors.push(lines.err(r, format!("policy '{name}': {m}")));
                1
            }
        },
    };
    // A duration key: `default` when unset; one that does not parse or
    // breaks its rule is reported and stands as 1s so checking goes on.
    let mut duration = |value: &Option<Spanned<String>>,
                        key: &str,
                        default: Duration,
                        rule: &str,
                        allowed: fn(Duration) -> bool| {
        let Some(e) = value else {
            return default;
        };
        let message = match parse_duration(e.get_ref()) {
            Ok(d) if allowed(d) => return d,
            Ok(_) => format!("policy '{name}': {key} must {rule}"),
            Err(m) => format!("policy '{name}': {key} {m}"),
        };
        errors.push(lines.err(e, message));
        Duration::from_secs(1)
    };
    let expires_in = duration(
        &raw.expires_in,
        "expires_in",
        Duration::from_secs(24 * 3600),
        "be longer than zero",
        |d| d.as_millis() > 0,
    );
    // Whole seconds and at most a year: the window is shown and audited in
    // seconds, and "forever" is not a deadline.
    let execute_within = duration(
        &raw.execute_within,
        "execute_within",
        crate::policy::DEFAULT_EXECUTE_WITHIN,
        "be between 1s and 366 days",
        |d| d.as_secs() >= 1 && d.as_secs() <= 366 * 24 * 3600,
    );
    let mut cond = |c: &Option<Spanned<String>>, field: &str| -> Option<Condition> {
        let c = c.as_ref()?;
        match Condition::compile(c.get_ref()) {
            Ok(cond) => Some(cond),
            Err(m) => {
                errors.push(lines.err(c, format!("policy '{name}': {field}: {m}")));
                None
            }
        }
    };
    let auto_approve = cond(&raw.auto_approve, "auto_approve");
    let auto_reject = cond(&raw.auto_reject, "auto_reject");
    let reach = policy_reach::read(raw, &name, expires_in, lines);
    let (email, remind_after, escalation) = match reach {
        Ok(r) => r,
        Err(mut es) => {
            errors.append(&mut es);
            (None, None, None)
        }
    };
    let reject_reasons = reject_reasons(&raw.reject_reasons, &name, &decisions, lines, &mut errors);
    fail_on_any(errors)?;
    Ok(Policy {
        name,
        tools,
        approvers,
        decisions,
        required_approvals,
        expires_in,
        execute_within,
        auto_approve,
        auto_reject,
        slack_channel: raw.slack_channel.clone(),
        description: raw.description.clone(),
        email,
        remind_after,
        escalation,
        reject_reasons,
    })
}

/// `reject_reasons`: short, distinct, storable, and only where people may
/// reject at all.
fn reject_reasons(
    raw: &[Spanned<String>],
    name: &str,
    decisions: &[DecisionKind],
    lines: &Lines<'_>,
    errors: &mut Vec<PolicyError>,
) -> Vec<String> {
    use crate::policy::{MAX_REJECT_REASONS, MAX_REJECT_REASON_CHARS};
    let mut out: Vec<String> = Vec::new();
    if let Some(first) = raw.first() {
        if !decisions.contains(&DecisionKind::Reject) {
            errors.push(lines.err(
                first,
                format!("policy '{name}': reject_reasons is set but decisions does not include 'reject'; add it or remove the reasons"),
            ));
        }
    }
    if raw.len() > MAX_REJECT_REASONS {
        errors.push(lines.err(
            &raw[MAX_REJECT_REASONS],
            format!("policy '{name}': at most {MAX_REJECT_REASONS} reject_reasons are accepted"),
        ));
    }
    for r in raw {
        let text = r.get_ref().trim().to_owned();
        let problem = if text.is_empty() {
            Some("a reject reason is empty".to_owned())
        } else if text.chars().count() > MAX_REJECT_REASON_CHARS {
            Some(format!(
                "reject reason '{}…' is longer than {MAX_REJECT_REASON_CHARS} characters",
                text.chars().take(30).collect::<String>()
            ))
        } else if text.chars().any(char::is_control) {
            Some("a reject reason contains a control character (one line each)".to_owned())
        } else if out.contains(&text) {
            Some(format!("reject reason '{text}' is listed twice"))
        } else {
            None
        };
        match problem {
            Some(m) => errors.push(lines.err(r, format!("policy '{name}': {m}"))),
            None => out.push(text),
        }
    }
    out
}

/// Reads a config file and reports every mistake as `FILE:LINE: message`.
pub fn check_file(path: &Path) -> Result<PolicySet, Vec<String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| vec![format!("{}: cannot read: {e}", path.display())])?;
    let policies = parse_config_text(&text)
        .map(|p| p.policies)
        .map_err(|errs| format_errors(path, &errs))?;
    // What `serve` would also refuse: the environment's settings and how
    // they combine with the file's.
    Settings::load(&Overrides {
        config: Some(path.to_owned()),
        ..Overrides::default()
    })
    .map_err(|e| vec![format!("{}: {e}", path.display())])?;
    Ok(policies)
}

fn format_errors(path: &Path, errs: &[PolicyError]) -> Vec<String> {
    errs.iter()
        .map(|e| match e.line {
            Some(l) => format!("{}:{l}: {}", path.display(), e.message),
            None => format!("{}: {}", path.display(), e.message),
        })
        .collect()
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Settings {
    /// Resolve settings: file < environment < command line.
    pub fn load(over: &Overrides) -> anyhow::Result<Settings> {
        let config_path = over
            .config
            .clone()
            .or_else(|| env("PLIUZ_CONFIG").map(PathBuf::from));
        let (file, policies) = match &config_path {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))?;
                let parsed = parse_config_text(&text).map_err(|errs| {
                    anyhow::anyhow!(
                        "{} has mistakes:\n  {}",
                        p.display(),
                        format_errors(p, &errs).join("\n  ")
                    )
                })?;
                (parsed.file, parsed.policies)
            }
            None => (FileConfig::default(), PolicySet::default()),
        };
        let data_dir = over
            .data_dir
            .clone()
            .or_else(|| env("PLIUZ_DATA_DIR").map(PathBuf::from))
            .or(file.data_dir.clone())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let listen_s = over
            .listen
            .clone()
            .or_else(|| env("PLIUZ_LISTEN"))
            .or(file.listen.as_ref().map(|l| l.get_ref().clone()))
            .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen: SocketAddr = listen_s.parse().map_err(|_| {
            anyhow::anyhow!("listen address '{listen_s}' is not like 127.0.0.1:8700")
        })?;
        let database_url = over
            .database_url
            .clone()
            .or_else(|| env("PLIUZ_DATABASE_URL"))
            .or(file.database_url.clone())
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("pliuz.db").display()));
        let public_url = env("PLIUZ_PUBLIC_URL")
            .or(file.public_url.clone())
            .unwrap_or_else(|| format!("http://{listen}"))
            .trim_end_matches('/')
            .to_owned();
        let max_body_bytes = match env_int("PLIUZ_MAX_BODY_BYTES")? {
            Some(v) => body_bytes_in("PLIUZ_MAX_BODY_BYTES", v).map_err(anyhow::Error::msg)?,
            None => match &file.max_body_bytes {
                Some(v) => {
                    body_bytes_in("max_body_bytes", *v.get_ref()).map_err(anyhow::Error::msg)?
                }
                None => DEFAULT_MAX_BODY_BYTES,
            },
        };
        let shutdown_grace = match env("PLIUZ_SHUTDOWN_GRACE")
            .or(file.shutdown_grace.as_ref().map(|g| g.get_ref().clone()))
        {
            Some(s) => parse_duration(&s).map_err(|m| anyhow::anyhow!("shutdown_grace: {m}"))?,
            None => DEFAULT_SHUTDOWN_GRACE,
        };

        let max_run_state_bytes = match env("PLIUZ_MAX_RUN_STATE_BYTES") {
            Some(v) => v.trim().parse().map_err(|_| {
                anyhow::anyhow!("PLIUZ_MAX_RUN_STATE_BYTES '{v}' is not a number of bytes")
            })?,
            None => file
                .max_run_state_bytes
                .unwrap_or(DEFAULT_MAX_RUN_STATE_BYTES),
        };
        if !MAX_RUN_STATE_BYTES_RANGE.contains(&max_run_state_bytes) {
            anyhow::bail!(
                "max_run_state_bytes must be between {} and {} bytes, not {max_run_state_bytes}",
                MAX_RUN_STATE_BYTES_RANGE.start(),
                MAX_RUN_STATE_BYTES_RANGE.end()
            );
        }
        let encryption_key_file = env("PLIUZ_ENCRYPTION_KEY_FILE")
            .map(PathBuf::from)
            .or(file.encryption_key_file.clone())
            .unwrap_or_else(|| data_dir.join("encryption.key"));

        let fa = file.audit.unwrap_or_default();
        let origin = env("PLIUZ_AUDIT_ORIGIN")
            .or(fa.origin.map(|o| o.into_inner()))
            .unwrap_or_else(|| "pliuz.local/audit".to_owned());
        check_origin(&origin).map_err(anyhow::Error::msg)?;
        let audit = AuditSettings {
            origin,
            checkpoint_every: match env_int("PLIUZ_AUDIT_CHECKPOINT_EVERY")? {
                Some(v) => int_in("PLIUZ_AUDIT_CHECKPOINT_EVERY", v, CHECKPOINT_EVERY_RANGE),
                None => fa.checkpoint_every.map_or(Ok(256), |v| {
                    int_in(
                        "audit.checkpoint_every",
                        *v.get_ref(),
                        CHECKPOINT_EVERY_RANGE,
                    )
                }),
            }
            .map_err(anyhow::Error::msg)? as u64,
            checkpoint_interval: match env("PLIUZ_AUDIT_CHECKPOINT_INTERVAL") {
                Some(s) => duration_in(
                    "PLIUZ_AUDIT_CHECKPOINT_INTERVAL",
                    &s,
                    CHECKPOINT_INTERVAL_RANGE,
                ),
                None => fa
                    .checkpoint_interval
                    .map_or(Ok(Duration::from_secs(10)), |s| {
                        duration_in(
                            "audit.checkpoint_interval",
                            s.get_ref(),
                            CHECKPOINT_INTERVAL_RANGE,
                        )
                    }),
            }
            .map_err(anyhow::Error::msg)?,
            signing_key_file: env("PLIUZ_AUDIT_SIGNING_KEY_FILE")
                .map(PathBuf::from)
                .or(fa.signing_key_file)
                .unwrap_or_else(|| data_dir.join("audit-signing.key")),
            signing_key: env("PLIUZ_AUDIT_SIGNING_KEY"),
        };

        let fs = file.slack.unwrap_or_default();
        let bot_token = env("PLIUZ_SLACK_BOT_TOKEN").or(fs.bot_token);
        let signing_secret = env("PLIUZ_SLACK_SIGNING_SECRET").or(fs.signing_secret);
        let slack = match (bot_token, signing_secret) {
            (Some(bot_token), Some(signing_secret)) => Some(SlackSettings {
                bot_token,
                signing_secret,
                api_url: env("PLIUZ_SLACK_API_URL")
                    .or(fs.api_url)
                    .unwrap_or_else(|| "https://slack.com/api".to_owned())
                    .trim_end_matches('/')
                    .to_owned(),
                default_channel: env("PLIUZ_SLACK_DEFAULT_CHANNEL").or(fs.default_channel),
                dm_approvers: env_bool("PLIUZ_SLACK_DM_APPROVERS")?.unwrap_or(fs.dm_approvers),
                users: fs
                    .users
                    .into_iter()
                    .map(|(k, v)| (k.to_lowercase(), v))
                    .collect(),
            }),
            (None, None) => None,
            _ => anyhow::bail!(SLACK_HALF_CONFIGURED),
        };

        let fi = file.inbox.unwrap_or_default();
        let inbox = InboxSettings {
            session_ttl: match fi.session_ttl {
                Some(s) => duration_in("inbox.session_ttl", s.get_ref(), SESSION_TTL_RANGE)
                    .map_err(anyhow::Error::msg)?,
                None => Duration::from_secs(12 * 3600),
            },
            secure_cookies: env_bool("PLIUZ_SECURE_COOKIES")?
                .or(fi.secure_cookies)
                .unwrap_or_else(|| public_url.starts_with("https://")),
        };

        let oidc = match file.oidc {
            Some(f) => Some(f.resolve(&env).map_err(|errs| {
                anyhow::anyhow!(
                    "the [oidc] settings have mistakes:\n  {}",
                    errs.join("\n  ")
                )
            })?),
            None => None,
        };

        let email = match file.email {
            Some(f) => Some(f.resolve(&env, &public_url).map_err(|errs| {
                anyhow::anyhow!(
                    "the [email] settings have mistakes:\n  {}",
                    errs.join("\n  ")
                )
            })?),
            None => None,
        };

        let fm = file.metrics.unwrap_or_default();
        let token = match env("PLIUZ_METRICS_TOKEN") {
            Some(t) => Some(MetricsToken::parse("PLIUZ_METRICS_TOKEN", t)),
            None => fm
                .token
                .map(|t| MetricsToken::parse("metrics.token", t.into_inner())),
        }
        .transpose()
        .map_err(anyhow::Error::msg)?;
        let metrics = MetricsSettings {
            enabled: env_bool("PLIUZ_METRICS_ENABLED")?
                .or(fm.enabled)
                .unwrap_or(token.is_some()),
            token,
        };
        let log_format = match env("PLIUZ_LOG_FORMAT") {
            Some(v) => LogFormat::parse("PLIUZ_LOG_FORMAT", &v),
            None => file.log_format.map_or(Ok(LogFormat::Text), |f| {
                LogFormat::parse("log_format", f.get_ref())
            }),
        }
        .map_err(anyhow::Error::msg)?;
        let policy_source = match env("PLIUZ_POLICY_SOURCE") {
            Some(v) => PolicySource::parse("PLIUZ_POLICY_SOURCE", &v),
            None => file.policy_source.map_or(Ok(PolicySource::File), |f| {
                PolicySource::parse("policy_source", f.get_ref())
            }),
        }
        .map_err(anyhow::Error::msg)?;

        Ok(Settings {
            policy_source,
            metrics,
            log_format,
            oidc,
            email,
            listen,
            data_dir,
            database_url,
            public_url,
            max_body_bytes,
            shutdown_grace,
            policies,
            audit,
            slack,
            inbox,
            max_run_state_bytes,
            encryption_key_file,
            encryption_key: env("PLIUZ_ENCRYPTION_KEY").map(crate::encryption::KeyText),
            config_path,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every mistake reading `text` reports (none when it parses).
    fn errors_of(text: &str) -> Vec<PolicyError> {
        parse_config_text(text).err().unwrap_or_default()
    }

    #[test]
    fn every_mistake_is_reported_with_its_line() {
        let text = r##"
[[policy]]
name = "refunds"
tools = ["issue_refund"]
approvers = ["finance"]
decisions = ["approve", "maybe"]
expires_in = "soon"
auto_approve = "args.amount_cents <="
"##;
        let errs = errors_of(text);
        let lines: Vec<_> = errs.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![Some(5), Some(6), Some(7), Some(8)], "{errs:?}");
    }

    #[test]
    fn definitions_are_checked_like_a_file_and_mistakes_named_by_key() {
        let good = serde_json::json!({"name": "a", "tools": ["t"], "approvers": ["group:x"], "expires_in": "5m"});
        let bad = serde_json::json!({
            "name": "b", "approvers": ["x"], "decisions": ["maybe"],
            "expires_in": "soon", "colour": 1, "slack_channel": null
        });
        let set = policies_from_definitions(&[&good], Some("a"), false).expect("valid");
        assert_eq!(set.default_policy(), Some("a"));
        assert_eq!(set.get("a").map(|p| p.expires_in.as_secs()), Some(300));
        let errs = policies_from_definitions(&[&good, &bad], None, false).expect_err("invalid");
        let named: Vec<(usize, Option<&str>)> =
            errs.iter().map(|e| (e.index, e.field.as_deref())).collect();
        assert_eq!(
            named,
            [
                (1, Some("approvers")),
                (1, Some("decisions")),
                (1, Some("expires_in")),
                (1, Some("colour"))
            ],
            "{errs:?}"
        );
        let twice = policies_from_definitions(&[&good, &good], None, false).expect_err("twice");
        assert!(twice[0].message.contains("defined twice"), "{twice:?}");
        // A default naming none of them is left out rather than refused.
        let set = policies_from_definitions(&[&good], Some("gone"), false).expect("valid");
        assert_eq!(set.default_policy(), None);
        let nested =
            serde_json::json!({"name": "c", "approvers": ["group:x"], "tools": [{"a": null}]});
        let errs = policies_from_definitions(&[&nested], None, false).expect_err("nested");
        assert_eq!(errs[0].field.as_deref(), Some("tools"), "{errs:?}");
    }

    #[test]
    fn a_stored_policy_may_mail_only_when_the_server_has_email() {
        let mailed = serde_json::json!({"name": "m", "approvers": ["group:x"], "email": true});
        let errs = policies_from_definitions(&[&mailed], None, false).expect_err("no [email]");
        assert!(errs[0].message.contains("no [email] section"), "{errs:?}");
        let set = policies_from_definitions(&[&mailed], None, true).expect("[email] configured");
        assert!(set.get("m").is_some_and(|p| p.email.is_some()));
    }

    #[test]
    fn unknown_keys_and_syntax_errors_have_lines() {
        let errs = errors_of("[[policy]]\nname = \"a\"\napprovers = [\"group:x\"]\ncolour = 1\n");
        assert_eq!(errs[0].line, Some(4), "{errs:?}");
        assert!(errs[0].message.contains("colour"));
    }

    #[test]
    fn every_unknown_key_and_mistyped_value_is_reported_with_the_checks_after() {
        let text = "colour = 1\n[[policy]]\nname = \"a\"\napprovers = [\"group:x\"]\ntimeout = \"1h\"\nrequired_approvals = \"two\"\nexpires_in = \"soon\"\n[inbox]\nsecure = true\n";
        let errs = errors_of(text);
        let lines: Vec<_> = errs.iter().map(|e| e.line).collect();
        assert_eq!(
            lines,
            vec![Some(1), Some(5), Some(6), Some(7), Some(9)],
            "{errs:?}"
        );
        assert!(errs[0].message.contains("colour"), "{errs:?}");
        assert!(errs[1].message.contains("timeout"), "{errs:?}");
        assert!(
            errs[2]
                .message
                .starts_with("required_approvals: invalid type"),
            "{errs:?}"
        );
        assert!(errs[3].message.contains("expires_in"), "{errs:?}");
    }

    #[test]
    fn a_syntax_error_is_reported_alone() {
        let errs = errors_of("colour = 1\nname = \"a\n");
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].line, Some(2), "{errs:?}");
    }

    #[test]
    fn a_bad_shutdown_grace_is_reported_with_its_line() {
        let errs = errors_of("\nshutdown_grace = \"soon\"\n");
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].line, Some(2));
        assert!(errs[0].message.contains("shutdown_grace"));
        assert!(parse_config_text("shutdown_grace = \"20s\"\n").is_ok());
    }

    #[test]
    fn a_good_file_parses() {
        let text = r##"
default_policy = "refunds"
[[policy]]
name = "refunds"
tools = ["issue_refund"]
approvers = ["group:finance", "user:ops@example.com"]
decisions = ["approve", "reject", "edit"]
required_approvals = 2
expires_in = "30m"
auto_approve = "args.amount_cents <= 1000"
slack_channel = "#refunds"
"##;
        let parsed = parse_config_text(text).ok().map(|p| p.policies);
        let set = parsed.unwrap_or_default();
        let p = set.get("refunds").cloned();
        assert_eq!(p.as_ref().map(|p| p.required_approvals), Some(2));
        assert_eq!(
            p.as_ref().map(|p| p.expires_in),
            Some(Duration::from_secs(1800))
        );
        assert_eq!(
            p.map(|p| p.execute_within),
            Some(crate::policy::DEFAULT_EXECUTE_WITHIN)
        );
        assert_eq!(set.default_policy(), Some("refunds"));
    }

    #[test]
    fn execute_within_is_a_bounded_duration() {
        let file = |v: &str| {
            format!(
                "[[policy]]\nname = \"a\"\napprovers = [\"group:x\"]\nexecute_within = \"{v}\"\n"
            )
        };
        let ok = parse_config_text(&file("90m")).ok().map(|p| p.policies);
        assert_eq!(
            ok.and_then(|s| s.get("a").map(|p| p.execute_within)),
            Some(Duration::from_secs(5400))
        );
        for bad in ["soon", "0s", "500ms", "400days"] {
            let errs = errors_of(&file(bad));
            assert_eq!(errs.len(), 1, "{bad}: {errs:?}");
            assert_eq!(errs[0].line, Some(4), "{errs:?}");
            assert!(errs[0].message.contains("execute_within"), "{errs:?}");
        }
    }
}
