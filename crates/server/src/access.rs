//! Who may do what. A request acts as an API key of the instance, as a person (signed in to the
//! web UI), or as a person's API key. A key limits by its workspace and scopes; a person by
//! their role in each workspace (or as an instance administrator); a person's key by both at
//! once, with the person's roles as they are at the moment of the request.

use crate::error::ApiError;
use latchkey_core::ids::{ApiKeyId, UserId, WorkspaceId};
use latchkey_core::model::{Role, Scope, Workspace};
use std::sync::Arc;

/// What an endpoint needs in a workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Need {
    /// Read metadata: connections, flows, apps, events, members.
    Read,
    /// Create, edit, verify and authorize connections and flows.
    Edit,
    /// Delete connections and flows; webhooks, OAuth clients, connect sessions, API keys and
    /// the workspace's settings.
    Manage,
    /// Read decrypted credentials and tokens.
    Secrets,
    /// Call applications through the proxy.
    Proxy,
    /// Add, change and remove members.
    Members,
}

impl Need {
    /// The key scope that grants it.
    pub fn scope(self) -> Scope {
        match self {
            Need::Read => Scope::Read,
            Need::Edit | Need::Manage | Need::Members => Scope::Write,
            Need::Secrets => Scope::Secrets,
            Need::Proxy => Scope::Proxy,
        }
    }

    /// The least role that grants it.
    pub fn least_role(self) -> Role {
        match self {
            Need::Read => Role::Viewer,
            Need::Edit => Role::Editor,
            Need::Manage | Need::Secrets | Need::Proxy => Role::Admin,
            Need::Members => Role::Owner,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Need::Read => "read",
            Need::Edit => "edit",
            Need::Manage => "manage",
            Need::Secrets => "secrets",
            Need::Proxy => "proxy",
            Need::Members => "members",
        }
    }
}

/// What an API key allows on its own.
#[derive(Debug, Clone)]
pub struct KeyGrant {
    pub id: ApiKeyId,
    /// The name the key was given (shown in the web UI's header).
    pub name: String,
    /// `None` for an admin key.
    pub workspace: Option<WorkspaceId>,
    pub scopes: Vec<Scope>,
}

/// A person as they are now: read from the store on every request.
#[derive(Debug, Clone)]
pub struct Person {
    pub id: UserId,
    pub name: String,
    pub email: String,
    pub instance_admin: bool,
    pub roles: Vec<(WorkspaceId, Role)>,
}

impl Person {
    pub fn role_in(&self, ws: &WorkspaceId) -> Option<Role> {
        self.roles.iter().find(|(w, _)| w == ws).map(|(_, r)| *r)
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The API key used, when one was (shared with the memory of looked-up keys: a request
    /// takes it without copying it).
    pub key: Option<Arc<KeyGrant>>,
    /// The person acting (signed in, or owner of the key used).
    pub person: Option<Person>,
    /// True when the request was authenticated by the web UI's session cookie rather than an
    /// `Authorization` header (see [`crate::auth::KeyCaller`]).
    pub via_session: bool,
}

impl Caller {
    /// May do everything everywhere: an admin key of the instance, an instance administrator
    /// signed in, or an instance administrator's admin key.
    pub fn is_admin(&self) -> bool {
        let key_ok = self.key.as_ref().is_none_or(|k| k.workspace.is_none());
        let person_ok = self.person.as_ref().is_none_or(|p| p.instance_admin);
        key_ok && person_ok && (self.key.is_some() || self.person.is_some())
    }

    /// The id of the key used, if any.
    pub fn key_id(&self) -> Option<&ApiKeyId> {
        self.key.as_ref().map(|k| &k.id)
    }

    /// The workspace a key is bound to (`None` for admin keys and people).
    pub fn key_workspace(&self) -> Option<&WorkspaceId> {
        self.key.as_ref().and_then(|k| k.workspace.as_ref())
    }

    /// The actor recorded in audit events: `key_…` for a key of the instance, `user_…` for a
    /// person, `user_…/key_…` for a person's key.
    pub fn actor(&self) -> String {
        match (&self.person, &self.key) {
            (Some(p), Some(k)) => format!("{}/{}", p.id, k.id),
            (Some(p), None) => p.id.to_string(),
            (None, Some(k)) => k.id.to_string(),
            (None, None) => "system".into(),
        }
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(
                ApiError::forbidden("this needs an admin API key or an instance administrator")
                    .hint("workspace keys and workspace members cannot manage the instance"),
            )
        }
    }

    /// The role the caller has in a workspace through a person (`None` for keys of the
    /// instance, or a person without a role there).
    pub fn role_in(&self, ws: &WorkspaceId) -> Option<Role> {
        let p = self.person.as_ref()?;
        if p.instance_admin {
            return Some(Role::Owner);
        }
        p.role_in(ws)
    }

    /// Whether this caller may see the workspace at all. Another workspace's things answer 404.
    pub fn can_see(&self, ws: &Workspace) -> bool {
        let key_ok = self
            .key
            .as_ref()
            .is_none_or(|k| k.workspace.as_ref().is_none_or(|w| *w == ws.id));
        let person_ok = self
            .person
            .as_ref()
            .is_none_or(|p| p.instance_admin || p.role_in(&ws.id).is_some());
        key_ok && person_ok
    }

    /// Whether the caller, already known to see `ws`, may do what `need` says there.
    pub fn allows(&self, ws: &WorkspaceId, need: Need) -> bool {
        self.check(ws, need).is_ok()
    }

    /// Like [`Caller::allows`], with the reason of a refusal.
    pub fn check(&self, ws: &WorkspaceId, need: Need) -> Result<(), ApiError> {
        if let Some(k) = &self.key {
            let admin_key = k.workspace.is_none();
            // A key of the instance bound to a workspace never manages people.
            let members_by_key = need == Need::Members && self.person.is_none() && !admin_key;
            if members_by_key || (!admin_key && !k.scopes.contains(&need.scope())) {
                return Err(ApiError::forbidden(format!(
                    "this API key lacks the `{}` scope",
                    need.scope()
                ))
                .hint("create a key with that scope (latchkey key create --scope …)")
                .details(serde_json::json!({
                    "required_scope": need.scope(), "need": need,
                })));
            }
        }
        if let Some(p) = &self.person {
            if p.instance_admin {
                return Ok(());
            }
            let least = need.least_role();
            match p.role_in(ws) {
                Some(r) if r.rank() >= least.rank() => {}
                role => {
                    return Err(ApiError::forbidden(format!(
                        "this needs the `{least}` role in the workspace; {} has {}",
                        p.name,
                        role.map(|r| format!("the `{r}` role"))
                            .unwrap_or_else(|| "no role".into())
                    ))
                    .hint("ask an owner of the workspace for a higher role")
                    .details(serde_json::json!({
                        "required_role": least, "role": role, "need": need,
                    })));
                }
            }
        }
        Ok(())
    }

    /// Reading the instance's metrics: admins, or a key with the `metrics` scope (a person's
    /// key only while that person is an instance administrator).
    pub fn require_metrics(&self) -> Result<(), ApiError> {
        let by_key = self
            .key
            .as_ref()
            .is_some_and(|k| k.scopes.contains(&Scope::Metrics))
            && self.person.as_ref().is_none_or(|p| p.instance_admin);
        if self.is_admin() || by_key {
            Ok(())
        } else {
            Err(
                ApiError::forbidden("this API key lacks the `metrics` scope")
                    .hint("create a key with that scope (latchkey key create --scope metrics)")
                    .details(serde_json::json!({ "required_scope": Scope::Metrics })),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(admin: bool, roles: Vec<(WorkspaceId, Role)>) -> Person {
        Person {
            id: UserId::generate(),
            name: "Ada".into(),
            email: "ada@example.test".into(),
            instance_admin: admin,
            roles,
        }
    }

    #[test]
    fn a_persons_key_never_exceeds_the_person() {
        let ws = WorkspaceId::generate();
        let key = KeyGrant {
            id: ApiKeyId::generate(),
            name: "k".into(),
            workspace: Some(ws.clone()),
            scopes: vec![Scope::Read, Scope::Write, Scope::Secrets],
        };
        let editor = Caller {
            key: Some(Arc::new(key.clone())),
            person: Some(person(false, vec![(ws.clone(), Role::Editor)])),
            via_session: false,
        };
        assert!(editor.allows(&ws, Need::Edit));
        assert!(
            !editor.allows(&ws, Need::Secrets),
            "an editor's key reads no secret"
        );
        assert!(!editor.allows(&ws, Need::Manage));
        let owner = Caller {
            key: Some(Arc::new(key)),
            person: Some(person(false, vec![(ws.clone(), Role::Owner)])),
            via_session: false,
        };
        assert!(owner.allows(&ws, Need::Secrets));
        assert!(!owner.allows(&ws, Need::Proxy), "the key lacks `proxy`");
        assert!(!owner.is_admin());
    }

    #[test]
    fn roles_include_the_lower_ones() {
        let ws = WorkspaceId::generate();
        let other = WorkspaceId::generate();
        let viewer = Caller {
            key: None,
            person: Some(person(false, vec![(ws.clone(), Role::Viewer)])),
            via_session: true,
        };
        assert!(viewer.allows(&ws, Need::Read));
        assert!(!viewer.allows(&ws, Need::Edit));
        assert!(!viewer.allows(&other, Need::Read));
        let admin = Caller {
            key: None,
            person: Some(person(true, vec![])),
            via_session: true,
        };
        assert!(admin.is_admin());
        assert!(admin.allows(&other, Need::Members));
        let ws_key = Caller {
            key: Some(Arc::new(KeyGrant {
                id: ApiKeyId::generate(),
                name: "k".into(),
                workspace: Some(ws.clone()),
                scopes: vec![Scope::Read, Scope::Write],
            })),
            person: None,
            via_session: false,
        };
        assert!(ws_key.allows(&ws, Need::Manage));
        assert!(
            !ws_key.allows(&ws, Need::Members),
            "keys of the instance manage no people"
        );
    }
}
