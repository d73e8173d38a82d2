//! The policies in force, and (with `policy_source = "database"`) their
//! changes over the management API: each change validated as `pliuz policy
//! check` validates a file, audited with the full new policy, and in force
//! for the next request (the in-memory set is swapped whole; other
//! replicas reload on PostgreSQL NOTIFY).

use super::{ControlPlane, FieldError, Result, ServiceError};
use crate::approval::Actor;
use crate::audit_event::AuditEvent;
use crate::config::{policies_from_definitions, DefinitionError, PolicySource};
use crate::policy::{Policy, PolicySet};
use crate::store::policies::PolicyRow;
use serde_json::{json, Map, Value};
use std::sync::{Arc, RwLock};

/// The policy set in force, replaced whole: a request resolves its policy
/// against one consistent set, old or new, never a mix.
pub struct PolicyCell {
    current: RwLock<Arc<PolicySet>>,
    /// Reloads one at a time, so an older read never replaces a newer one.
    reload: tokio::sync::Mutex<()>,
}

impl PolicyCell {
    pub fn new(set: PolicySet) -> PolicyCell {
        PolicyCell {
            current: RwLock::new(Arc::new(set)),
            reload: tokio::sync::Mutex::new(()),
        }
    }

    pub fn load(&self) -> Arc<PolicySet> {
        // A poisoned lock still holds a whole set (it is only ever replaced).
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn store(&self, set: PolicySet) {
        let set = Arc::new(set);
        match self.current.write() {
            Ok(mut g) => *g = set,
            Err(p) => *p.into_inner() = set,
        }
    }
}

/// The most policies the database keeps (docs/limits.md): each request
/// walks them in order to match its tool.
pub const MAX_POLICIES: usize = 1000;

/// How `pliuz.toml` says to switch, for writes refused in file mode.
const FILE_MODE: &str = "policies come from the configuration file (policy_source = \"file\"), so they cannot be changed over the API; edit the file and restart, or set policy_source = \"database\" in pliuz.toml (or PLIUZ_POLICY_SOURCE=database) and restart: the file's policies are then imported once and managed here";

/// A policy as a definition: the keys of a `[[policy]]` table, as JSON.
pub fn definition_of(p: &Policy) -> Map<String, Value> {
    let s = p.summary();
    let mut m = Map::new();
    m.insert("name".into(), json!(s.name));
    if let Some(d) = s.description {
        m.insert("description".into(), json!(d));
    }
    m.insert("tools".into(), json!(s.tools));
    m.insert("approvers".into(), json!(s.approvers));
    m.insert("decisions".into(), json!(s.decisions));
    m.insert("required_approvals".into(), json!(s.required_approvals));
    m.insert(
        "expires_in".into(),
        json!(format!("{}s", s.expires_in_seconds)),
    );
    m.insert(
        "execute_within".into(),
        json!(format!("{}s", s.execute_within_seconds)),
    );
    for (k, v) in [
        ("auto_approve", s.auto_approve),
        ("auto_reject", s.auto_reject),
        ("slack_channel", s.slack_channel),
    ] {
        if let Some(v) = v {
            m.insert(k.into(), json!(v));
        }
    }
    m
}

fn parse_row(row: &PolicyRow) -> Result<Value> {
    serde_json::from_str(&row.definition).map_err(|e| {
        ServiceError::Store(crate::store::StoreError::Corrupt(format!(
            "stored policy '{}': {e}",
            row.name
        )))
    })
}

/// Mistakes as field errors: `field` is the key (`policy` for the table as
/// a whole); `only` is the index of the policy the caller sent, whose
/// mistakes are the ones reported (others' are the store's, not theirs).
fn field_errors(errors: Vec<DefinitionError>, only: usize) -> Vec<FieldError> {
    errors
        .into_iter()
        .filter(|e| e.index == only)
        .map(|e| FieldError::new(e.field.unwrap_or_else(|| "policy".into()), e.message))
        .collect()
}

impl ControlPlane {
    /// The policy set in force now.
    pub fn policies(&self) -> Arc<PolicySet> {
        self.policy_cell.load()
    }

    /// The reasons `policy` offers a rejecter to pick from (none when the
    /// policy is gone).
    pub fn reject_reasons(&self, policy: &str) -> Vec<String> {
        self.policies()
            .get(policy)
            .map(|p| p.reject_reasons.clone())
            .unwrap_or_default()
    }

    pub fn policy_source(&self) -> PolicySource {
        self.settings.policy_source
    }

    /// At start, in database mode: imports the file's policies when none
    /// are stored yet (each audited as `policy.created`), then loads the
    /// stored set.
    pub async fn init_policies(&self) -> Result<()> {
        if self.policy_source() != PolicySource::Database {
            return Ok(());
        }
        if self.store.stored_policies().await?.is_empty()
            && self.settings.policies.iter().next().is_some()
        {
            let mut tx = self.store.begin_write().await?;
            // Again under the write lock: a replica starting beside this
            // one may have imported them a moment ago.
            if tx.stored_policies_tx().await?.is_empty() {
                let now = crate::store::now_millis();
                for (i, p) in self.settings.policies.iter().enumerate() {
                    let definition = Value::Object(definition_of(p));
                    let row = PolicyRow {
                        name: p.name.clone(),
                        position: i as i64,
                        definition: definition.to_string(),
                    };
                    tx.insert_policy(&row, now).await?;
                    let created = AuditEvent::PolicyCreated {
                        name: p.name.clone(),
                        definition,
                        policy: p.summary(),
                    };
                    tx.audit(Actor::System, None, created).await?;
                }
                tx.notify_policy_change().await?;
                tx.commit().await?;
            } else {
                tx.rollback().await;
            }
        }
        self.reload_policies().await
    }

    /// Reads the stored policies and puts them in force (database mode).
    pub async fn reload_policies(&self) -> Result<()> {
        if self.policy_source() != PolicySource::Database {
            return Ok(());
        }
        let _one_at_a_time = self.policy_cell.reload.lock().await;
        let rows = self.store.stored_policies().await?;
        let defs = rows.iter().map(parse_row).collect::<Result<Vec<_>>>()?;
        let set = policies_from_definitions(
            &defs.iter().collect::<Vec<_>>(),
            self.settings.policies.default_policy(),
            self.settings.email.is_some(),
        )
        .map_err(|errs| {
            ServiceError::Store(crate::store::StoreError::Corrupt(format!(
                "the stored policies no longer validate: {}",
                errs.iter()
                    .map(|e| e.message.clone())
                    .collect::<Vec<_>>()
                    .join("; ")
            )))
        })?;
        self.policy_cell.store(set);
        Ok(())
    }

    /// Keeps this replica's policies in step with the others' changes
    /// (PostgreSQL NOTIFY) until `shutdown`.
    pub fn relay_policy_changes(
        &self,
        shutdown: crate::shutdown::Shutdown,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let cp = self.clone();
        async move {
            if cp.policy_source() != PolicySource::Database {
                return;
            }
            let changed = Arc::new(tokio::sync::Notify::new());
            let listen = cp.store.relay_policy_changes(
                cp.settings.database_url.clone(),
                changed.clone(),
                shutdown.clone(),
            );
            let reload = async {
                loop {
                    tokio::select! {
                        () = changed.notified() => {
                            if let Err(e) = cp.reload_policies().await {
                                tracing::error!(error = %e, "cannot reload the policies another replica changed; keeping the ones in force");
                            }
                        }
                        () = shutdown.wait() => return,
                    }
                }
            };
            tokio::join!(listen, reload);
        }
    }

    /// Validates `definition` (a `[[policy]]` table as JSON) as part of the
    /// whole stored set, stores it, audits it with the full definition and
    /// puts the new set in force. `replace`: the name of the policy it
    /// replaces (keeping its place), `None` to add one at the end.
    async fn write_policy(
        &self,
        actor: &Actor,
        definition: Map<String, Value>,
        replace: Option<&str>,
    ) -> Result<Arc<Policy>> {
        if self.policy_source() != PolicySource::Database {
            return Err(ServiceError::Refused {
                code: "policy_source_file",
                message: FILE_MODE.into(),
            });
        }
        let mut definition = definition;
        definition.retain(|_, v| !v.is_null());
        let name = match (definition.get("name"), replace) {
            (Some(Value::String(n)), _) => n.clone(),
            (None, Some(r)) => {
                definition.insert("name".into(), json!(r));
                r.to_owned()
            }
            (Some(_), _) => return Err(ServiceError::invalid("name", "must be a string")),
            (None, None) => {
                return Err(ServiceError::invalid(
                    "name",
                    "is required: name the policy",
                ))
            }
        };
        if let Some(r) = replace {
            if r != name {
                return Err(ServiceError::invalid(
                    "name",
                    format!("is '{name}' but the path names '{r}'; a policy cannot be renamed (create the new one, then delete the old)"),
                ));
            }
        }
        let definition = Value::Object(definition);
        let mut tx = self.store.begin_write().await?;
        let rows = tx.stored_policies_tx().await?;
        let mut defs = rows.iter().map(parse_row).collect::<Result<Vec<_>>>()?;
        let existing = rows.iter().position(|r| r.name == name);
        let index = match (existing, replace) {
            (Some(i), Some(_)) => {
                defs[i] = definition.clone();
                i
            }
            (None, Some(_)) => {
                tx.rollback().await;
                return Err(ServiceError::NoSuch(format!("policy '{name}'")));
            }
            (Some(_), None) => {
                tx.rollback().await;
                return Err(ServiceError::Refused {
                    code: "already_exists",
                    message: format!("a policy named '{name}' already exists; change it with PUT /api/v1/admin/policies/{name}"),
                });
            }
            (None, None) if rows.len() >= MAX_POLICIES => {
                tx.rollback().await;
                return Err(ServiceError::Refused {
                    code: "too_many_policies",
                    message: format!("there are already {MAX_POLICIES} policies, the most kept (docs/limits.md); delete one first"),
                });
            }
            (None, None) => {
                defs.push(definition.clone());
                defs.len() - 1
            }
        };
        let set = match policies_from_definitions(
            &defs.iter().collect::<Vec<_>>(),
            self.settings.policies.default_policy(),
            self.settings.email.is_some(),
        ) {
            Ok(set) => set,
            Err(errs) => {
                tx.rollback().await;
                let mut errors = field_errors(errs.clone(), index);
                if errors.is_empty() {
                    // Only another policy is wrong: say so rather than nothing.
                    errors = errs
                        .into_iter()
                        .map(|e| FieldError::new("policies", e.message))
                        .collect();
                }
                return Err(ServiceError::Validation(errors));
            }
        };
        let Some(policy) = set.get(&name).cloned() else {
            tx.rollback().await;
            return Err(ServiceError::invalid("name", "the policy did not load"));
        };
        let now = crate::store::now_millis();
        let text = definition.to_string();
        let event = if replace.is_some() {
            tx.update_policy(&name, &text, now).await?;
            AuditEvent::PolicyUpdated {
                name: name.clone(),
                definition,
                policy: policy.summary(),
            }
        } else {
            let position = rows.iter().map(|r| r.position + 1).max().unwrap_or(0);
            let row = PolicyRow {
                name: name.clone(),
                position,
                definition: text,
            };
            tx.insert_policy(&row, now).await.map_err(|e| {
                if e.is_unique_violation() {
                    ServiceError::Refused {
                        code: "already_exists",
                        message: format!("a policy named '{name}' already exists"),
                    }
                } else {
                    e.into()
                }
            })?;
            AuditEvent::PolicyCreated {
                name: name.clone(),
                definition,
                policy: policy.summary(),
            }
        };
        tx.audit(actor, None, event).await?;
        tx.notify_policy_change().await?;
        tx.commit().await?;
        self.reload_policies().await?;
        Ok(policy)
    }

    /// Adds a policy at the end of the matching order (database mode).
    pub async fn create_policy(
        &self,
        actor: &Actor,
        definition: Map<String, Value>,
    ) -> Result<Arc<Policy>> {
        self.write_policy(actor, definition, None).await
    }

    /// Replaces a policy's whole definition, keeping its place (database mode).
    pub async fn replace_policy(
        &self,
        actor: &Actor,
        name: &str,
        definition: Map<String, Value>,
    ) -> Result<Arc<Policy>> {
        self.write_policy(actor, definition, Some(name)).await
    }

    /// Deletes a policy (database mode). Requests already opened under it
    /// keep their recorded terms; new ones no longer match it.
    pub async fn delete_policy(&self, actor: &Actor, name: &str) -> Result<()> {
        if self.policy_source() != PolicySource::Database {
            return Err(ServiceError::Refused {
                code: "policy_source_file",
                message: FILE_MODE.into(),
            });
        }
        if self.settings.policies.default_policy() == Some(name) {
            return Err(ServiceError::Refused {
                code: "default_policy",
                message: format!(
                    "'{name}' is the default_policy of pliuz.toml; change default_policy there first"
                ),
            });
        }
        let mut tx = self.store.begin_write().await?;
        if !tx
            .stored_policies_tx()
            .await?
            .iter()
            .any(|r| r.name == name)
        {
            tx.rollback().await;
            return Err(ServiceError::NoSuch(format!("policy '{name}'")));
        }
        tx.delete_policy(name).await?;
        let deleted = AuditEvent::PolicyDeleted {
            name: name.to_owned(),
        };
        tx.audit(actor, None, deleted).await?;
        tx.notify_policy_change().await?;
        tx.commit().await?;
        self.reload_policies().await
    }
}
