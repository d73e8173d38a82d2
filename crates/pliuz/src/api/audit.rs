//! `/api/v1/audit/*` and `/api/v1/approvals/{id}/receipt`. Read-only: the
//! log is written only by the service layer, inside each change's
//! transaction.
//!
//! Who may read what:
//! * the verifier keys, the latest checkpoint and consistency proofs are
//!   public verification material: any authenticated caller;
//! * entries and inclusion proofs: auditors and admins;
//! * a receipt: whoever can see the approval (auditors and admins, the
//!   approvers of its policy, the agent that opened it).

use crate::audit::{AuditError, Signer};
use crate::auth::Principal;
use crate::http::error::Problem;
use crate::http::extract::{ApiQuery, Auth};
use crate::http::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

/// Most entries one `GET /api/v1/audit/entries` returns.
pub const MAX_PAGE: u64 = 1000;
const DEFAULT_PAGE: u64 = 100;

fn out_of_range(m: String) -> Problem {
    AuditError::OutOfRange(m).into()
}

fn signer(state: &AppState) -> Option<&Signer> {
    state.extras.audit_signer.as_deref()
}

fn require_auditor(p: &Principal) -> Result<(), Problem> {
    if p.sees_everything() {
        Ok(())
    } else {
        Err(Problem::forbidden(
            "the audit log is readable by auditors and admins; approvers and agents may fetch the receipt of a request they can see (GET /api/v1/approvals/{id}/receipt)",
        ))
    }
}

fn text(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

fn b64(h: &pliuz_audit::Hash) -> String {
    B64.encode(h)
}

/// `GET /api/v1/audit/checkpoint`: the newest signed checkpoint note.
pub(crate) async fn checkpoint(
    State(state): State<AppState>,
    Auth(_p): Auth,
) -> Result<Response, Problem> {
    let cp = &state.cp;
    let latest = match cp.latest_checkpoint().await? {
        Some((_, note)) => note,
        None => match signer(&state) {
            Some(s) => crate::audit::sign_checkpoint(cp, s).await?.note,
            None => {
                return Err(AuditError::NotSigned(
                    "no checkpoint has been signed yet; try again in a few seconds".into(),
                )
                .into())
            }
        },
    };
    Ok(text(latest))
}

/// `GET /api/v1/audit/key`: the current verifier key.
pub(crate) async fn key(
    State(state): State<AppState>,
    Auth(_p): Auth,
) -> Result<Response, Problem> {
    let key = match signer(&state) {
        Some(s) => s.verifier_key(),
        None => state
            .cp
            .verifier_keys()
            .await?
            .pop()
            .ok_or_else(|| Problem::unavailable("no audit signing key is loaded"))?,
    };
    Ok(text(format!("{key}\n")))
}

/// The log's verifier keys.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = AuditKeys)]
pub(crate) struct KeysView {
    origin: String,
    /// The key signing new checkpoints; null before any key exists.
    #[schema(required = true)]
    current: Option<String>,
    /// Oldest first.
    keys: Vec<String>,
}

/// `GET /api/v1/audit/keys`: every verifier key the log has used.
pub(crate) async fn keys(
    State(state): State<AppState>,
    Auth(_p): Auth,
) -> Result<Json<KeysView>, Problem> {
    let keys = crate::audit::known_verifiers(&state.cp, signer(&state)).await?;
    let current = signer(&state)
        .map(|s| s.verifier_key())
        .or_else(|| keys.last().cloned());
    Ok(Json(KeysView {
        origin: state.cp.settings.audit.origin.clone(),
        current,
        keys,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct EntriesQuery {
    /// First index (default 0).
    #[param(minimum = 0)]
    start: Option<u64>,
    /// One past the last index (default start+100).
    #[param(minimum = 0)]
    end: Option<u64>,
}

/// A page of log entries.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = AuditEntryPage)]
pub(crate) struct EntriesPage {
    size: u64,
    start: u64,
    end: u64,
    entries: Vec<EntryView>,
    /// `start` of the next page; null at the end of the log.
    #[schema(required = true)]
    next: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = AuditEntry)]
pub(crate) struct EntryView {
    index: u64,
    /// Exactly the RFC 8785 bytes hashed as the leaf.
    canonical: String,
    /// `canonical`, parsed.
    #[schema(value_type = Object)]
    entry: Value,
}

/// `GET /api/v1/audit/entries?start=&end=`: entries `start..end`.
pub(crate) async fn entries(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<EntriesQuery>,
) -> Result<Json<EntriesPage>, Problem> {
    require_auditor(&p)?;
    let size = state.cp.audit_size().await?;
    let start = q.start.unwrap_or(0);
    if start > size {
        return Err(out_of_range(format!(
            "start {start} is past the end of the log (size {size})"
        )));
    }
    let end = q.end.unwrap_or(start.saturating_add(DEFAULT_PAGE));
    if end < start {
        return Err(out_of_range(format!("end {end} is before start {start}")));
    }
    let end = end.min(size).min(start.saturating_add(MAX_PAGE));
    let rows = state.cp.audit_entries(start, end).await?;
    let mut items = Vec::with_capacity(rows.len());
    for r in rows {
        let parsed: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
        items.push(EntryView {
            index: r.index,
            canonical: r.body,
            entry: parsed,
        });
    }
    Ok(Json(EntriesPage {
        size,
        start,
        end,
        entries: items,
        next: if end < size { Some(end) } else { None },
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct InclusionQuery {
    /// Leaf index.
    #[param(minimum = 0)]
    index: u64,
    /// Tree size (default: newest checkpoint).
    #[param(minimum = 0)]
    size: Option<u64>,
}

/// An RFC 9162 inclusion proof; hashes in base64.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = InclusionProof)]
pub(crate) struct InclusionView {
    index: u64,
    size: u64,
    #[schema(content_encoding = "base64")]
    leaf_hash: String,
    #[schema(content_encoding = "base64")]
    root: String,
    proof: Vec<String>,
}

/// Resolves an optional tree size: default the newest checkpoint's size.
async fn tree_size(state: &AppState, size: Option<u64>) -> Result<u64, Problem> {
    let log = state.cp.audit_size().await?;
    let size = match size {
        Some(s) => s,
        None => state
            .cp
            .latest_checkpoint()
            .await?
            .map(|(s, _)| s)
            .unwrap_or(log),
    };
    if size > log {
        return Err(out_of_range(format!(
            "size {size} is larger than the log ({log} entries)"
        )));
    }
    Ok(size)
}

/// `GET /api/v1/audit/proof/inclusion?index=&size=`.
pub(crate) async fn inclusion(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<InclusionQuery>,
) -> Result<Json<InclusionView>, Problem> {
    require_auditor(&p)?;
    let size = tree_size(&state, q.size).await?;
    if q.index >= size {
        return Err(out_of_range(format!(
            "index {} is not in a tree of size {size}",
            q.index
        )));
    }
    let store = &state.cp;
    let proof = store.inclusion_proof(q.index, size).await?;
    let leaf = store
        .audit_hashes(&[pliuz_audit::stored_hash_index(0, q.index)])
        .await?
        .into_values()
        .next()
        .ok_or_else(Problem::internal)?;
    let root = store.audit_root(size).await?;
    Ok(Json(InclusionView {
        index: q.index,
        size,
        leaf_hash: b64(&leaf),
        root: b64(&root),
        proof: proof.iter().map(b64).collect(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ConsistencyQuery {
    /// Older tree size.
    #[param(minimum = 0)]
    from: u64,
    /// Newer tree size (default: newest checkpoint).
    #[param(minimum = 0)]
    size: Option<u64>,
}

/// An RFC 9162 consistency proof; hashes in base64.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ConsistencyProof)]
pub(crate) struct ConsistencyView {
    from: u64,
    size: u64,
    #[schema(content_encoding = "base64")]
    from_root: String,
    #[schema(content_encoding = "base64")]
    root: String,
    proof: Vec<String>,
}

/// `GET /api/v1/audit/proof/consistency?from=&size=`.
pub(crate) async fn consistency(
    State(state): State<AppState>,
    Auth(_p): Auth,
    ApiQuery(q): ApiQuery<ConsistencyQuery>,
) -> Result<Json<ConsistencyView>, Problem> {
    let size = tree_size(&state, q.size).await?;
    if q.from > size {
        return Err(out_of_range(format!(
            "from {} is larger than size {size}",
            q.from
        )));
    }
    let store = &state.cp;
    let proof = store.consistency_proof(q.from, size).await?;
    let root_from = store.audit_root(q.from).await?;
    let root = store.audit_root(size).await?;
    Ok(Json(ConsistencyView {
        from: q.from,
        size,
        from_root: b64(&root_from),
        root: b64(&root),
        proof: proof.iter().map(b64).collect(),
    }))
}

/// `GET /api/v1/approvals/{id}/receipt`.
pub(crate) async fn receipt(
    State(state): State<AppState>,
    Auth(p): Auth,
    crate::http::extract::ApiPath(id): crate::http::extract::ApiPath,
) -> Result<Json<pliuz_audit::Receipt>, Problem> {
    // 404 when the caller may not see it: do not confirm it exists.
    state.cp.get_for(&p, &id).await?;
    Ok(Json(
        crate::audit::receipt_for(&state.cp, &id, signer(&state)).await?,
    ))
}
