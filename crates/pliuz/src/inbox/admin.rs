//! Admin (users, groups, agents, policies) and the audit log page. Every
//! change goes through the ControlPlane directory methods, which audit it
//! with the admin as the actor.

use super::pages::{fmt_time, layout, page, time_el, Nav, WebError, WebResult};
use super::session::{CsrfForm, Session, Viewer};
use crate::auth::Role;
use crate::http::error::Problem;
use crate::http::AppState;
use crate::service::directory::{group_change_text, InitialPassword};
use axum::extract::{FromRequest, Request, State};
use axum::http::StatusCode;
use base64::Engine;
use maud::{html, Markup};
use serde::de::DeserializeOwned;
use serde::Deserialize;

fn require_admin(s: &Session) -> WebResult<()> {
    if s.user.role == Role::Admin {
        Ok(())
    } else {
        Err(WebError::forbidden(
            "Only admins can manage users, agents and policies.",
        ))
    }
}

fn require_auditor(s: &Session) -> WebResult<()> {
    if matches!(s.user.role, Role::Admin | Role::Auditor) {
        Ok(())
    } else {
        Err(WebError::forbidden(
            "The audit log is open to auditors and admins.",
        ))
    }
}

/// What the last admin action did (secrets are shown here once, never stored).
enum Outcome {
    None,
    Notice(String),
    Secret {
        what: String,
        value: String,
        help: String,
    },
    Error(String),
}

async fn admin_page(
    state: &AppState,
    s: &Session,
    outcome: Outcome,
    status: StatusCode,
) -> WebResult {
    require_admin(s)?;
    let users = state.cp.list_users().await?;
    let agents = state.cp.list_agents().await?;
    let body = html! {
        div.page-head { div { h1 { "Admin" } p.muted { "People, agent keys and the policies in force." } } }
        @match &outcome {
            Outcome::None => {},
            Outcome::Notice(n) => p.notice.success role="status" { (n) },
            Outcome::Error(e) => p.error role="alert" { (e) },
            Outcome::Secret { what, value, help } => section.card.secret role="status" {
                h2 { (what) }
                p { (help) }
                label for="secret" { "Shown only this once — copy it now" }
                input #secret.code type="text" readonly value=(value);
            },
        }
        section.card aria-labelledby="users-h" {
            h2 #users-h { "People" }
            div.table-wrap {
                table {
                    thead { tr { th scope="col" { "Email" } th scope="col" { "Role" } th scope="col" { "Groups" } th scope="col" { "Status" } th scope="col" { span.sr-only { "Actions" } } } }
                    tbody {
                        @for u in &users {
                            tr {
                                td { (super::pages::email(&u.email)) }
                                td { (u.role.as_str()) }
                                td {
                                    ul.chips {
                                        @for g in &u.groups {
                                            li.chip {
                                                (g)
                                                form.inline method="post" action="/admin/users/groups" {
                                                    input type="hidden" name="csrf" value=(s.csrf);
                                                    input type="hidden" name="email" value=(u.email);
                                                    input type="hidden" name="group" value=(g);
                                                    input type="hidden" name="action" value="remove";
                                                    button.chip-x type="submit" aria-label={ "Remove " (u.email) " from " (g) } { "×" }
                                                }
                                            }
                                        }
                                    }
                                    form.inline.addgroup method="post" action="/admin/users/groups" {
                                        input type="hidden" name="csrf" value=(s.csrf);
                                        input type="hidden" name="email" value=(u.email);
                                        input type="hidden" name="action" value="add";
                                        label.sr-only for={ "g-" (u.id) } { "Add " (u.email) " to group" }
                                        input id={ "g-" (u.id) } type="text" name="group" placeholder="group" required size="10";
                                        button.subtle type="submit" { "Add" }
                                    }
                                }
                                td { @if u.disabled { span.status.status-rejected { "disabled" } } @else { span.status.status-approved { "active" } } }
                                td {
                                    @if u.id != s.user.id {
                                        form.inline method="post" action="/admin/users/disabled" {
                                            input type="hidden" name="csrf" value=(s.csrf);
                                            input type="hidden" name="email" value=(u.email);
                                            input type="hidden" name="disabled" value=(if u.disabled { "false" } else { "true" });
                                            button.subtle type="submit" { @if u.disabled { "Enable" } @else { "Disable" } }
                                        }
                                    } @else { span.muted { "you" } }
                                }
                            }
                        }
                    }
                }
            }
            h3 { "Add a person" }
            form.grid-form method="post" action="/admin/users" {
                input type="hidden" name="csrf" value=(s.csrf);
                div.field { label for="u-email" { "Email" } input #u-email type="email" name="email" required autocomplete="off"; }
                div.field {
                    label for="u-role" { "Role" }
                    select #u-role name="role" aria-describedby="u-role-help" {
                        option value="approver" { "approver" }
                        option value="auditor" { "auditor" }
                        option value="admin" { "admin" }
                    }
                    p.help #u-role-help { "Approvers decide; auditors read everything and decide nothing; admins manage people and agents." }
                }
                div.field { label for="u-groups" { "Groups" } input #u-groups type="text" name="groups" placeholder="finance, support" aria-describedby="u-groups-help"; p.help #u-groups-help { "Comma-separated; policies name approvers by group." } }
                div.field.buttons { button.primary type="submit" { "Create and get a setup link" } }
            }
        }
        section.card aria-labelledby="agents-h" {
            h2 #agents-h { "Agents" }
            @if agents.is_empty() { p.muted { "No agents yet." } } @else {
                div.table-wrap {
                    table {
                        thead { tr { th scope="col" { "Name" } th scope="col" { "Created" } th scope="col" { "Key" } th scope="col" { span.sr-only { "Actions" } } } }
                        tbody {
                            @for a in &agents {
                                tr {
                                    td { code { (a.name) } }
                                    td { (time_el(a.created_at, &fmt_time(a.created_at))) }
                                    td { @if let Some(r) = a.revoked_at { span.status.status-rejected { "revoked" } " " span.muted.small { (fmt_time(r)) } } @else { span.status.status-approved { "active" } } }
                                    td {
                                        @if a.revoked_at.is_none() {
                                            form.inline method="post" action="/admin/agents/revoke" {
                                                input type="hidden" name="csrf" value=(s.csrf);
                                                input type="hidden" name="name" value=(a.name);
                                                button.subtle.danger-text type="submit" { "Revoke key" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            h3 { "Add an agent" }
            form.grid-form method="post" action="/admin/agents" {
                input type="hidden" name="csrf" value=(s.csrf);
                div.field { label for="a-name" { "Name" } input #a-name type="text" name="name" required pattern="[A-Za-z0-9._-]{1,100}" placeholder="support-bot"; }
                div.field.buttons { button.primary type="submit" { "Create and show the key" } }
            }
        }
        section.card aria-labelledby="pol-h" {
            h2 #pol-h { "Policies" }
            @if state.cp.policies().iter().next().is_none() {
                p.notice #no-policies { "No policies are loaded, so every tool call is refused (" code { "no_matching_policy" } "). Add " code { "[[policy]]" } " tables to the configuration file (" code { "pliuz --config pliuz.toml serve" } "; see docs/configuration.md), check it with " code { "pliuz policy check" } " and restart." }
            } @else if state.cp.policy_source() == crate::config::PolicySource::Database {
                p.muted { "Read-only here: policies live in the database and are changed through the management API (" code { "/api/v1/admin/policies" } "; see docs/api.md). Source SHA-256: " code.small #policy-hash { (state.cp.policies().source_hash) } }
            } @else {
                p.muted { "Read-only here: policies live in the configuration file and are checked with " code { "pliuz policy check" } ". Source SHA-256: " code.small #policy-hash { (state.cp.policies().source_hash) } }
            }
            @for p in state.cp.policies().iter() {
                article.policy {
                    h3 { (p.name) }
                    @if let Some(d) = &p.description { p { (d) } }
                    dl.facts {
                        div { dt { "Tools" } dd { (p.tools.join(", ")) } }
                        div { dt { "Approvers" } dd { (p.approvers.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", ")) } }
                        div { dt { "Decisions" } dd { (p.decisions.iter().map(|d| d.as_str()).collect::<Vec<_>>().join(", ")) } }
                        div { dt { "Approvals needed" } dd { (p.required_approvals) } }
                        div { dt { "Expires after" } dd { (humantime::format_duration(p.expires_in)) } }
                        div { dt { "Run within (after approval)" } dd { (humantime::format_duration(p.execute_within)) } }
                        @if let Some(c) = &p.auto_approve { div { dt { "Auto-approve when" } dd { code { (c.source) } } } }
                        @if let Some(c) = &p.auto_reject { div { dt { "Auto-reject when" } dd { code { (c.source) } } } }
                    }
                }
            }
            details.raw {
                summary { "Policy source" }
                pre #policy-source { (state.cp.policies().source) }
            }
        }
    };
    Ok(page(status, layout("Admin", Some(s), Nav::Admin, body)))
}

pub async fn index(State(state): State<AppState>, Viewer(s): Viewer) -> WebResult {
    admin_page(&state, &s, Outcome::None, StatusCode::OK).await
}

/// Extractor for the admin forms: a [`CsrfForm`] posted by an admin.
pub struct AdminForm<T>(Session, T);

impl<T: DeserializeOwned> FromRequest<AppState> for AdminForm<T> {
    type Rejection = WebError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, WebError> {
        let CsrfForm(s, form) = CsrfForm::from_request(req, state).await?;
        require_admin(&s)?;
        Ok(AdminForm(s, form))
    }
}

/// The admin page after an action: `ok` says what it did, or the error why
/// not (with its status).
async fn after<T>(
    state: &AppState,
    s: &Session,
    r: Result<T, crate::service::ServiceError>,
    ok: impl FnOnce(T) -> Outcome,
) -> WebResult {
    let (outcome, status) = match r {
        Ok(v) => (ok(v), StatusCode::OK),
        Err(e) => {
            let p = Problem::from(e);
            let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::BAD_REQUEST);
            (Outcome::Error(p.detail), status)
        }
    };
    admin_page(state, s, outcome, status).await
}

/// The admin page refusing a form as it was filled in.
async fn refused(state: &AppState, s: &Session, why: &str) -> WebResult {
    let outcome = Outcome::Error(why.into());
    admin_page(state, s, outcome, StatusCode::UNPROCESSABLE_ENTITY).await
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct CreateUser {
    email: String,
    role: String,
    groups: String,
}

pub async fn create_user(
    State(state): State<AppState>,
    AdminForm(s, f): AdminForm<CreateUser>,
) -> WebResult {
    let Some(role) = Role::parse(&f.role) else {
        return refused(&state, &s, "Choose a role: approver, auditor or admin.").await;
    };
    let groups: Vec<String> = f
        .groups
        .split([',', ' '])
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(str::to_owned)
        .collect();
    let r = state
        .cp
        .create_user(
            &s.actor(),
            &f.email,
            role,
            &groups,
            InitialPassword::SetupLink,
        )
        .await;
    let base = state
        .cp
        .settings
        .public_url
        .trim_end_matches('/')
        .to_owned();
    after(&state, &s, r, |c| {
        Outcome::Secret {
        what: format!("Created {} ({})", c.user.email, c.user.role.as_str()),
        value: format!("{base}/setup/{}", c.setup_token.unwrap_or_default()),
        help: "Send this one-time link to them; it lets them choose a password and expires in 72 hours.".into(),
    }
    })
    .await
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct GroupForm {
    email: String,
    group: String,
    action: String,
}

pub async fn change_group(
    State(state): State<AppState>,
    AdminForm(s, f): AdminForm<GroupForm>,
) -> WebResult {
    let add = f.action != "remove";
    let group = f.group.trim().to_owned();
    let r = state
        .cp
        .change_group(&s.actor(), &f.email, &group, add)
        .await;
    after(&state, &s, r, |changed| {
        Outcome::Notice(group_change_text(&f.email, &group, add, changed))
    })
    .await
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct DisableForm {
    email: String,
    disabled: String,
}

pub async fn set_disabled(
    State(state): State<AppState>,
    AdminForm(s, f): AdminForm<DisableForm>,
) -> WebResult {
    let disabled = f.disabled != "false";
    if disabled && f.email.trim().eq_ignore_ascii_case(&s.user.email) {
        return refused(&state, &s, "You cannot disable yourself.").await;
    }
    let r = state
        .cp
        .set_user_disabled(&s.actor(), &f.email, disabled)
        .await;
    after(&state, &s, r, |()| {
        Outcome::Notice(if disabled {
            format!(
                "Disabled {}: they can no longer log in or use their tokens.",
                f.email
            )
        } else {
            format!("Enabled {}.", f.email)
        })
    })
    .await
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct AgentForm {
    name: String,
}

pub async fn create_agent(
    State(state): State<AppState>,
    AdminForm(s, f): AdminForm<AgentForm>,
) -> WebResult {
    let name = f.name.trim().to_owned();
    let r = state.cp.create_agent(&s.actor(), &name).await;
    after(&state, &s, r, |key| {
        Outcome::Secret {
        what: format!("Created agent {name}"),
        value: key,
        help: "Give this key to the agent (PLIUZ_API_KEY). Pliuz keeps only its hash, so it cannot be shown again.".into(),
    }
    })
    .await
}

pub async fn revoke_agent(
    State(state): State<AppState>,
    AdminForm(s, f): AdminForm<AgentForm>,
) -> WebResult {
    let name = f.name.trim().to_owned();
    let r = state.cp.revoke_agent(&s.actor(), &name).await;
    after(&state, &s, r, |()| {
        Outcome::Notice(format!(
            "Revoked the key of {name}. Its requests now get 401."
        ))
    })
    .await
}

async fn audit_view(state: &AppState, s: &Session, verify: Option<Markup>) -> WebResult {
    require_auditor(s)?;
    let size = state.cp.audit_size().await?;
    let latest = crate::audit::latest_checkpoint(&state.cp, None).await?;
    let keys =
        crate::audit::known_verifiers(&state.cp, state.extras.audit_signer.as_deref()).await?;
    let body = html! {
        div.page-head { div { h1 { "Audit log" } p.muted { "Every request, decision, execution and admin change is an entry in an append-only Merkle log; signed checkpoints commit to it." } } }
        @if let Some(v) = verify { (v) }
        section.card aria-labelledby="cp-h" {
            h2 #cp-h { "Latest signed checkpoint" }
            @match &latest {
                None => p.muted { "No checkpoint has been signed yet; one is signed shortly after the first entries." },
                Some(c) => {
                    dl.facts {
                        div { dt { "Tree size" } dd #tree-size { (c.size) " entries" } }
                        div { dt { "Log size now" } dd { (size) " entries" @if size > c.size { span.muted { " (" (size - c.size) " not yet signed)" } } } }
                        div { dt { "Origin" } dd { code { (c.checkpoint.origin) } } }
                        div.wide { dt { "Root hash" } dd { code.break { (base64::engine::general_purpose::STANDARD.encode(c.checkpoint.root)) } } }
                    }
                    details.raw { summary { "Signed note" } pre { (c.note) } }
                },
            }
            h3 { "Verifier keys" }
            ul.keys { @for k in &keys { li { code.break { (k) } } } }
        }
        section.card aria-labelledby="verify-h" {
            h2 #verify-h { "Verify the log" }
            p { "Re-reads every entry, recomputes the Merkle tree and checks every checkpoint signature. Takes a moment on large logs." }
            form method="post" action="/audit/verify" {
                input type="hidden" name="csrf" value=(s.csrf);
                button.primary #verify type="submit" { "Verify now" }
            }
            p.help { "Third parties can verify an export offline: " code { "pliuz audit export" } ", then " code { "pliuz audit verify" } "." }
        }
    };
    Ok(page(
        StatusCode::OK,
        layout("Audit", Some(s), Nav::Audit, body),
    ))
}

pub async fn audit_page(State(state): State<AppState>, Viewer(s): Viewer) -> WebResult {
    audit_view(&state, &s, None).await
}

#[derive(Deserialize)]
pub struct Nothing {}

/// Problems listed on the page after "Verify now"; the CLI lists them all.
const VERIFY_SHOWN: usize = 100;

pub async fn audit_verify(
    State(state): State<AppState>,
    CsrfForm(s, _): CsrfForm<Nothing>,
) -> WebResult {
    require_auditor(&s)?;
    let started = std::time::Instant::now();
    let report =
        crate::audit::verify_log(&state.cp, state.extras.audit_signer.as_deref(), true).await?;
    let took = started.elapsed().as_millis();
    let now = crate::service::now_millis();
    let result = html! {
        @if report.is_ok() {
            section.card.verified #verify-result role="status" {
                h2 { "✓ The log verifies" }
                p { (report.entries) " entries and " (report.checkpoints.len()) " signed checkpoints checked in " (took) " ms, at " (fmt_time(now)) "." }
                @if report.unsigned_tail > 0 { p.muted { (report.unsigned_tail) " newest entries are not covered by a checkpoint yet; the next one will cover them." } }
            }
        } @else {
            section.card.failed #verify-result role="alert" {
                h2 { "✗ The log does not verify" }
                // The full report: one bad entry must not hide a later one.
                p { (report.problems.len()) " problem(s) found:" }
                ul.problems {
                    @for p in report.problems.iter().take(VERIFY_SHOWN) { li { (p.message) } }
                }
                @if report.problems.len() > VERIFY_SHOWN {
                    p.muted { "…and " (report.problems.len() - VERIFY_SHOWN) " more; run `pliuz audit check --all` for the whole list." }
                }
                p { "Keep a copy of the database and of earlier exports, and investigate before trusting new entries." }
            }
        }
    };
    audit_view(&state, &s, Some(result)).await
}
