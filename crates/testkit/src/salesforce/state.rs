//! The simulator's memory: apps, users, codes, grants and tokens, and the rules that tie them.

use super::{ConnectedApp, SalesforceConfig, User};
use rand::distributions::Alphanumeric;
use rand::Rng;
use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub(super) const CODE_LIFETIME: Duration = Duration::from_secs(15 * 60);
pub(super) const MAX_GRANTS_PER_USER_AND_APP: usize = 5;

/// A token endpoint failure: 400 `{"error":…,"error_description":…}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct OAuthError {
    pub error: &'static str,
    pub description: &'static str,
}

pub(super) const fn oauth_error(error: &'static str, description: &'static str) -> OAuthError {
    OAuthError { error, description }
}

pub(super) const BAD_CLIENT_ID: OAuthError =
    oauth_error("invalid_client_id", "client identifier invalid");
pub(super) const BAD_CLIENT_SECRET: OAuthError =
    oauth_error("invalid_client", "invalid client credentials");
pub(super) const EXPIRED_TOKEN: OAuthError =
    oauth_error("invalid_grant", "expired access/refresh token");
pub(super) const AUTH_FAILURE: OAuthError = oauth_error("invalid_grant", "authentication failure");

#[derive(Clone)]
pub(super) struct Code {
    pub client_id: String,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    pub username: String,
    pub challenge: Option<String>,
    issued: Instant,
    used: bool,
}

struct Grant {
    client_id: String,
    username: String,
    scopes: Vec<String>,
    alive: bool,
    /// Counts only grants that hold a refresh token toward the five-approvals limit.
    has_refresh: bool,
}

struct RefreshToken {
    grant: u64,
    /// False once rotated away: presenting it again is reuse.
    current: bool,
}

pub(super) struct AccessToken {
    grant: Option<u64>,
    pub client_id: String,
    pub username: String,
    pub scopes: Vec<String>,
    pub issued_ms: u64,
    last_used: Instant,
    alive: bool,
}

/// What the token endpoint needs to answer for a grant.
pub(super) struct Issued {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub scopes: Vec<String>,
    pub user: User,
    pub consumer_secret: String,
    pub issued_ms: u64,
    pub client_id: String,
}

pub(super) struct State {
    pub apps: HashMap<String, ConnectedApp>,
    pub users: HashMap<String, User>,
    pub session_timeout: Duration,
    pub offset: Duration,
    pub token_requests: HashMap<String, usize>,
    pub authorize_requests: usize,
    pub codes_issued: usize,
    pub api_requests: usize,
    codes: HashMap<String, Code>,
    grants: HashMap<u64, Grant>,
    refresh_tokens: HashMap<String, RefreshToken>,
    access_tokens: HashMap<String, AccessToken>,
    next_grant: u64,
}

pub(super) fn random_string(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// Granted scopes include the REST API.
pub(super) fn has_api(scopes: &[String]) -> bool {
    scopes.iter().any(|s| s == "api" || s == "full")
}

pub(super) fn has_refresh_scope(scopes: &[String]) -> bool {
    scopes
        .iter()
        .any(|s| s == "refresh_token" || s == "offline_access")
}

impl State {
    pub fn new(config: &SalesforceConfig) -> State {
        State {
            apps: config
                .apps
                .iter()
                .map(|a| (a.consumer_key.clone(), a.clone()))
                .collect(),
            users: config
                .users
                .iter()
                .map(|u| (u.username.clone(), u.clone()))
                .collect(),
            session_timeout: config.session_timeout,
            offset: Duration::ZERO,
            token_requests: HashMap::new(),
            authorize_requests: 0,
            codes_issued: 0,
            api_requests: 0,
            codes: HashMap::new(),
            grants: HashMap::new(),
            refresh_tokens: HashMap::new(),
            access_tokens: HashMap::new(),
            next_grant: 1,
        }
    }

    pub fn now(&self) -> Instant {
        Instant::now() + self.offset
    }

    /// The simulator's wall clock in epoch milliseconds.
    pub fn wall_ms(&self) -> u64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            + self.offset;
        now.as_millis() as u64
    }

    pub fn app(&self, client_id: &str) -> Result<&ConnectedApp, OAuthError> {
        self.apps.get(client_id).ok_or(BAD_CLIENT_ID)
    }

    /// Checks a login; `sandbox` is `Some` on a login host (which knows only its kind of org).
    pub fn check_password(&self, username: &str, password: &str, sandbox: Option<bool>) -> bool {
        self.users.get(username).is_some_and(|u| {
            u.active && u.password == password && sandbox.is_none_or(|s| s == u.sandbox)
        })
    }

    pub fn issue_code(
        &mut self,
        client_id: &str,
        redirect_uri: &str,
        scopes: Vec<String>,
        username: &str,
        challenge: Option<String>,
    ) -> String {
        // Real codes are base64 ending in "==", so they need percent-encoding in the redirect.
        let code = format!("aPrx{}==", random_string(80));
        let issued = self.now();
        self.codes.insert(
            code.clone(),
            Code {
                client_id: client_id.into(),
                redirect_uri: redirect_uri.into(),
                scopes,
                username: username.into(),
                challenge,
                issued,
                used: false,
            },
        );
        self.codes_issued += 1;
        code
    }

    /// Takes a code for this client: single use, [`CODE_LIFETIME`].
    pub fn take_code(&mut self, code: &str, client_id: &str) -> Result<Code, OAuthError> {
        let now = self.now();
        let c = self
            .codes
            .get_mut(code)
            .filter(|c| c.client_id == client_id)
            .ok_or(oauth_error("invalid_grant", "invalid authorization code"))?;
        if c.used || now.duration_since(c.issued) > CODE_LIFETIME {
            return Err(oauth_error("invalid_grant", "expired authorization code"));
        }
        c.used = true;
        Ok(c.clone())
    }

    pub fn active_user(&self, username: &str) -> Result<User, OAuthError> {
        match self.users.get(username) {
            Some(u) if u.active => Ok(u.clone()),
            _ => Err(AUTH_FAILURE),
        }
    }

    /// Creates a grant (an approval) and its first access token; with a refresh scope, also a
    /// refresh token, evicting the oldest grants beyond five for this user and app.
    pub fn new_grant(
        &mut self,
        client_id: &str,
        user: User,
        scopes: Vec<String>,
    ) -> Result<Issued, OAuthError> {
        let app = self.app(client_id)?.clone();
        let with_refresh = has_refresh_scope(&scopes);
        let id = self.next_grant;
        self.next_grant += 1;
        if with_refresh {
            let mut live: Vec<u64> = self
                .grants
                .iter()
                .filter(|(_, g)| {
                    g.alive
                        && g.has_refresh
                        && g.username == user.username
                        && g.client_id == client_id
                })
                .map(|(id, _)| *id)
                .collect();
            live.sort_unstable();
            let excess = (live.len() + 1).saturating_sub(MAX_GRANTS_PER_USER_AND_APP);
            for old in live.into_iter().take(excess) {
                self.kill_grant(old);
            }
        }
        self.grants.insert(
            id,
            Grant {
                client_id: client_id.into(),
                username: user.username.clone(),
                scopes: scopes.clone(),
                alive: true,
                has_refresh: with_refresh,
            },
        );
        let refresh_token = with_refresh.then(|| self.new_refresh_token(id, &user));
        let access_token = self.new_access_token(Some(id), client_id, &user, scopes.clone());
        Ok(Issued {
            access_token,
            refresh_token,
            scopes,
            user,
            consumer_secret: app.consumer_secret,
            issued_ms: self.wall_ms(),
            client_id: client_id.into(),
        })
    }

    /// An access token outside any approval (client credentials, JWT bearer).
    pub fn new_session(
        &mut self,
        client_id: &str,
        user: User,
        scopes: Vec<String>,
    ) -> Result<Issued, OAuthError> {
        let app = self.app(client_id)?.clone();
        let access_token = self.new_access_token(None, client_id, &user, scopes.clone());
        Ok(Issued {
            access_token,
            refresh_token: None,
            scopes,
            user,
            consumer_secret: app.consumer_secret,
            issued_ms: self.wall_ms(),
            client_id: client_id.into(),
        })
    }

    fn new_refresh_token(&mut self, grant: u64, user: &User) -> String {
        let token = format!("5Aep861{}{}", &user.org_id[3..8], random_string(72));
        self.refresh_tokens.insert(
            token.clone(),
            RefreshToken {
                grant,
                current: true,
            },
        );
        token
    }

    fn new_access_token(
        &mut self,
        grant: Option<u64>,
        client_id: &str,
        user: &User,
        scopes: Vec<String>,
    ) -> String {
        let token = format!("{}!AQ{}", user.org_id, random_string(96));
        let record = AccessToken {
            grant,
            client_id: client_id.into(),
            username: user.username.clone(),
            scopes,
            issued_ms: self.wall_ms(),
            last_used: self.now(),
            alive: true,
        };
        self.access_tokens.insert(token.clone(), record);
        token
    }

    /// The refresh grant. A rotated-away token is reuse: the whole grant dies.
    pub fn refresh(&mut self, client_id: &str, token: &str) -> Result<Issued, OAuthError> {
        let app = self.app(client_id)?.clone();
        let (grant_id, current) = match self.refresh_tokens.get(token) {
            Some(r) => (r.grant, r.current),
            None => return Err(EXPIRED_TOKEN),
        };
        let Some(grant) = self.grants.get(&grant_id) else {
            return Err(EXPIRED_TOKEN);
        };
        if !grant.alive || grant.client_id != client_id {
            return Err(EXPIRED_TOKEN);
        }
        if !current {
            self.kill_grant(grant_id);
            return Err(EXPIRED_TOKEN);
        }
        let (username, scopes) = (grant.username.clone(), grant.scopes.clone());
        let user = self.active_user(&username)?;
        let refresh_token = if app.rotate_refresh_tokens {
            if let Some(r) = self.refresh_tokens.get_mut(token) {
                r.current = false;
            }
            Some(self.new_refresh_token(grant_id, &user))
        } else {
            None
        };
        let access_token = self.new_access_token(Some(grant_id), client_id, &user, scopes.clone());
        Ok(Issued {
            access_token,
            refresh_token,
            scopes,
            user,
            consumer_secret: app.consumer_secret,
            issued_ms: self.wall_ms(),
            client_id: client_id.into(),
        })
    }

    fn access_alive(&self, t: &AccessToken) -> bool {
        t.alive
            && self.now().duration_since(t.last_used) <= self.session_timeout
            && t.grant
                .is_none_or(|g| self.grants.get(&g).is_some_and(|g| g.alive))
            && self.users.get(&t.username).is_some_and(|u| u.active)
    }

    /// Whether the access token is alive, without using it (its session does not slide).
    pub fn access_token_alive(&self, token: &str) -> bool {
        self.access_tokens
            .get(token)
            .is_some_and(|t| self.access_alive(t))
    }

    /// A live access token, its session slid forward by this use; `None` when dead or unknown.
    pub fn use_access_token(&mut self, token: &str) -> Option<(&AccessToken, User)> {
        let t = self.access_tokens.get(token)?;
        if !self.access_alive(t) {
            return None;
        }
        let user = self.users.get(&t.username)?.clone();
        let now = self.now();
        let t = self.access_tokens.get_mut(token)?;
        t.last_used = now;
        Some((t, user))
    }

    fn kill_grant(&mut self, id: u64) {
        if let Some(g) = self.grants.get_mut(&id) {
            g.alive = false;
        }
        for t in self.access_tokens.values_mut() {
            if t.grant == Some(id) {
                t.alive = false;
            }
        }
    }

    /// The revoke endpoint: a refresh token kills its grant, an access token only itself.
    pub fn revoke(&mut self, token: &str) -> bool {
        if let Some(r) = self.refresh_tokens.get(token) {
            let id = r.grant;
            if self.grants.get(&id).is_some_and(|g| g.alive) {
                self.kill_grant(id);
                return true;
            }
            return false;
        }
        let alive = self
            .access_tokens
            .get(token)
            .is_some_and(|t| self.access_alive(t));
        if alive {
            if let Some(t) = self.access_tokens.get_mut(token) {
                t.alive = false;
            }
        }
        alive
    }

    /// Introspection facts about a token issued to `client_id`, or `None` when it is not active.
    pub fn introspect(&self, token: &str, client_id: &str) -> Option<Introspected> {
        if let Some(t) = self.access_tokens.get(token) {
            if t.client_id != client_id || !self.access_alive(t) {
                return None;
            }
            let idle = self.now().duration_since(t.last_used);
            let exp_ms =
                self.wall_ms() + self.session_timeout.saturating_sub(idle).as_millis() as u64;
            return Some(Introspected {
                username: t.username.clone(),
                scopes: t.scopes.clone(),
                token_type: "access_token",
                iat: t.issued_ms / 1000,
                exp: Some(exp_ms / 1000),
            });
        }
        let r = self.refresh_tokens.get(token)?;
        let g = self.grants.get(&r.grant)?;
        let user_ok = self.users.get(&g.username).is_some_and(|u| u.active);
        if !r.current || !g.alive || !user_ok || g.client_id != client_id {
            return None;
        }
        Some(Introspected {
            username: g.username.clone(),
            scopes: g.scopes.clone(),
            token_type: "refresh_token",
            iat: self.wall_ms() / 1000,
            exp: None,
        })
    }

    pub fn active_grants(&self, username: &str, client_id: &str) -> usize {
        self.grants
            .values()
            .filter(|g| {
                g.alive && g.has_refresh && g.username == username && g.client_id == client_id
            })
            .count()
    }

    pub fn expire_access_tokens(&mut self) {
        for t in self.access_tokens.values_mut() {
            t.alive = false;
        }
    }

    pub fn revoke_user(&mut self, username: &str) {
        for g in self.grants.values_mut() {
            if g.username == username {
                g.alive = false;
            }
        }
        for t in self.access_tokens.values_mut() {
            if t.username == username {
                t.alive = false;
            }
        }
    }
}

pub(super) struct Introspected {
    pub username: String,
    pub scopes: Vec<String>,
    pub token_type: &'static str,
    pub iat: u64,
    pub exp: Option<u64>,
}
