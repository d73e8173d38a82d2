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

use super::Route;
use crate::audit::{AuditError, Signer};
use crate::auth::Principal;
use crate::http::error::Problem;
use crate::http::extract::{ApiQuery, Auth};
use crate::http::AppState;
use axum::extract::State;
use axum::http::{header, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Json;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};

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
async fn checkpoint(State(state): State<AppState>, Auth(_p): Auth) -> Result<Response, Problem> {
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
async fn key(State(state): State<AppState>, Auth(_p): Auth) -> Result<Response, Problem> {
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

/// `GET /api/v1/audit/keys`: every verifier key the log has used.
async fn keys(State(state): State<AppState>, Auth(_p): Auth) -> Result<Json<Value>, Problem> {
    let keys = crate::audit::known_verifiers(&state.cp, signer(&state)).await?;
    let current = signer(&state)
        .map(|s| s.verifier_key())
        .or_else(|| keys.last().cloned());
    Ok(Json(json!({
        "origin": state.cp.settings.audit.origin,
        "current": current,
        "keys": keys,
    })))
}

#[derive(Debug, Deserialize)]
struct EntriesQuery {
    start: Option<u64>,
    end: Option<u64>,
}

/// `GET /api/v1/audit/entries?start=&end=`: entries `start..end`.
async fn entries(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<EntriesQuery>,
) -> Result<Json<Value>, Problem> {
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
        items.push(json!({"index": r.index, "canonical": r.body, "entry": parsed}));
    }
    Ok(Json(json!({
        "size": size,
        "start": start,
        "end": end,
        "entries": items,
        "next": if end < size { Some(end) } else { None },
    })))
}

#[derive(Debug, Deserialize)]
struct InclusionQuery {
    index: u64,
    size: Option<u64>,
}

/// Resolves an optional tree size: default the newest checkpoint's size.
async fn tree_size(state: &AppState, size: Option<u64>) -> Result<(u64, u64), Problem> {
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
    Ok((size, log))
}

/// `GET /api/v1/audit/proof/inclusion?index=&size=`.
async fn inclusion(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<InclusionQuery>,
) -> Result<Json<Value>, Problem> {
    require_auditor(&p)?;
    let (size, _) = tree_size(&state, q.size).await?;
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
    Ok(Json(json!({
        "index": q.index,
        "size": size,
        "leaf_hash": b64(&leaf),
        "root": b64(&root),
        "proof": proof.iter().map(b64).collect::<Vec<_>>(),
    })))
}

#[derive(Debug, Deserialize)]
struct ConsistencyQuery {
    from: u64,
    size: Option<u64>,
}

/// `GET /api/v1/audit/proof/consistency?from=&size=`.
async fn consistency(
    State(state): State<AppState>,
    Auth(_p): Auth,
    ApiQuery(q): ApiQuery<ConsistencyQuery>,
) -> Result<Json<Value>, Problem> {
    let (size, _) = tree_size(&state, q.size).await?;
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
    Ok(Json(json!({
        "from": q.from,
        "size": size,
        "from_root": b64(&root_from),
        "root": b64(&root),
        "proof": proof.iter().map(b64).collect::<Vec<_>>(),
    })))
}

/// `GET /api/v1/approvals/{id}/receipt`.
async fn receipt(
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

pub fn routes() -> Vec<Route> {
    vec![
        Route {
            method: Method::GET,
            path: "/api/v1/audit/checkpoint",
            handler: get(checkpoint),
        },
        Route {
            method: Method::GET,
            path: "/api/v1/audit/key",
            handler: get(key),
        },
        Route {
            method: Method::GET,
            path: "/api/v1/audit/keys",
            handler: get(keys),
        },
        Route {
            method: Method::GET,
            path: "/api/v1/audit/entries",
            handler: get(entries),
        },
        Route {
            method: Method::GET,
            path: "/api/v1/audit/proof/inclusion",
            handler: get(inclusion),
        },
        Route {
            method: Method::GET,
            path: "/api/v1/audit/proof/consistency",
            handler: get(consistency),
        },
        Route {
            method: Method::GET,
            path: "/api/v1/approvals/{id}/receipt",
            handler: get(receipt),
        },
    ]
}

fn responses(ok: Value) -> Value {
    let mut r = json!({
        "400": {"$ref": "#/components/responses/Problem"},
        "401": {"$ref": "#/components/responses/Problem"},
        "403": {"$ref": "#/components/responses/Problem"},
        "404": {"$ref": "#/components/responses/Problem"},
        "422": {"$ref": "#/components/responses/Problem"},
        "500": {"$ref": "#/components/responses/Problem"},
        "503": {"$ref": "#/components/responses/Problem"}
    });
    if let (Value::Object(r), Value::Object(ok)) = (&mut r, ok) {
        r.extend(ok);
    }
    r
}

fn op(summary: &str, description: &str, params: Value, ok: Value) -> Value {
    json!({
        "summary": summary,
        "description": description,
        "tags": ["audit"],
        "security": [{"bearer": []}],
        "parameters": params,
        "responses": responses(ok),
    })
}

fn text_ok(description: &str) -> Value {
    json!({"200": {"description": description, "content": {"text/plain": {"schema": {"type": "string"}}}}})
}

fn json_ok(description: &str, schema: Value) -> Value {
    json!({"200": {"description": description, "content": {"application/json": {"schema": schema}}}})
}

fn int_param(name: &str, required: bool, description: &str) -> Value {
    json!({"name": name, "in": "query", "required": required, "schema": {"type": "integer", "minimum": 0}, "description": description})
}

fn proof_schema(fields: &[&str]) -> Value {
    let mut props = serde_json::Map::new();
    for f in fields {
        let t = if ["index", "size", "from"].contains(f) {
            json!({"type": "integer"})
        } else {
            json!({"type": "string", "contentEncoding": "base64"})
        };
        props.insert((*f).to_owned(), t);
    }
    props.insert(
        "proof".into(),
        json!({"type": "array", "items": {"type": "string", "contentEncoding": "base64"}}),
    );
    json!({"type": "object", "properties": props})
}

pub fn openapi_operations() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        (
            "get",
            "/api/v1/audit/checkpoint",
            op(
                "The newest signed checkpoint (C2SP tlog-checkpoint signed note)",
                "Any authenticated caller. Verify it with the key from /api/v1/audit/key obtained out of band.",
                json!([]),
                text_ok("The signed note"),
            ),
        ),
        (
            "get",
            "/api/v1/audit/key",
            op(
                "The current checkpoint verifier key (name+id+base64)",
                "Any authenticated caller.",
                json!([]),
                text_ok("The verifier key, one line"),
            ),
        ),
        (
            "get",
            "/api/v1/audit/keys",
            op(
                "Every verifier key the log has used (key rotation)",
                "Any authenticated caller.",
                json!([]),
                json_ok(
                    "Keys, oldest first",
                    json!({"type": "object", "properties": {"origin": {"type": "string"}, "current": {"type": "string"}, "keys": {"type": "array", "items": {"type": "string"}}}}),
                ),
            ),
        ),
        (
            "get",
            "/api/v1/audit/entries",
            op(
                "Log entries start..end (auditors and admins)",
                "At most 1000 entries per page; `end` is clamped to the log size. `canonical` is exactly the RFC 8785 bytes hashed as the leaf.",
                json!([
                    int_param("start", false, "First index (default 0)"),
                    int_param("end", false, "One past the last index (default start+100)")
                ]),
                json_ok(
                    "A page",
                    json!({"type": "object", "properties": {
                        "size": {"type": "integer"}, "start": {"type": "integer"}, "end": {"type": "integer"},
                        "next": {"type": ["integer", "null"]},
                        "entries": {"type": "array", "items": {"type": "object", "properties": {
                            "index": {"type": "integer"}, "canonical": {"type": "string"}, "entry": {"type": "object"}}}}
                    }}),
                ),
            ),
        ),
        (
            "get",
            "/api/v1/audit/proof/inclusion",
            op(
                "RFC 9162 inclusion proof of entry `index` in the tree of `size` entries (auditors and admins)",
                "`size` defaults to the newest checkpoint's size. 422 out_of_range when index >= size or size > log size.",
                json!([
                    int_param("index", true, "Leaf index"),
                    int_param("size", false, "Tree size (default: newest checkpoint)")
                ]),
                json_ok("The proof", proof_schema(&["index", "size", "leaf_hash", "root"])),
            ),
        ),
        (
            "get",
            "/api/v1/audit/proof/consistency",
            op(
                "RFC 9162 consistency proof from tree size `from` to `size`",
                "Any authenticated caller (monitors, witnesses). `size` defaults to the newest checkpoint's size. 422 out_of_range when from > size or size > log size.",
                json!([
                    int_param("from", true, "Older tree size"),
                    int_param("size", false, "Newer tree size (default: newest checkpoint)")
                ]),
                json_ok("The proof", proof_schema(&["from", "size", "from_root", "root"])),
            ),
        ),
        (
            "get",
            "/api/v1/approvals/{id}/receipt",
            op(
                "Offline-verifiable receipt of one approval (pliuz-receipt/v1)",
                "Every log entry of the approval with its inclusion proof under a signed checkpoint. Whoever can see the approval may fetch it. Verify with `pliuz audit verify-receipt FILE --key VKEY`.",
                json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}]),
                json_ok(
                    "The receipt",
                    json!({"type": "object", "required": ["format", "approval_id", "origin", "tree_size", "checkpoint", "entries"], "properties": {
                        "format": {"const": "pliuz-receipt/v1"},
                        "approval_id": {"type": "string"},
                        "origin": {"type": "string"},
                        "tree_size": {"type": "integer"},
                        "checkpoint": {"type": "string"},
                        "entries": {"type": "array", "items": {"type": "object", "properties": {
                            "index": {"type": "integer"}, "entry": {"type": "string"},
                            "inclusion_proof": {"type": "array", "items": {"type": "string"}}}}}
                    }}),
                ),
            ),
        ),
    ]
}
