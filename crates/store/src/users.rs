//! People and their workspace roles.

use crate::error::{corrupt, DbResult};
use crate::rows::{convert, from_ms, limit, ms, parse};
use crate::{SqlStore, WritePool};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use latchkey_core::ids::{UserId, WorkspaceId};
use latchkey_core::model::{Membership, Role, User};
use latchkey_core::store::{Page, StoreResult, UserStore};
use latchkey_core::StoreError;

const USER_COLUMNS: &str =
    "id, display_name, email, password_hash, sso_subject, instance_admin, created_at, updated_at";
const MEMBER_COLUMNS: &str = "workspace_id, user_id, role, created_at";

#[derive(sqlx::FromRow)]
struct UserRow {
    id: String,
    display_name: String,
    email: String,
    password_hash: Option<String>,
    sso_subject: Option<String>,
    instance_admin: bool,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;
    fn try_from(r: UserRow) -> Result<Self, StoreError> {
        Ok(User {
            id: parse("user id", &r.id, UserId::parse)?,
            display_name: r.display_name,
            email: r.email,
            password_hash: r.password_hash,
            sso_subject: r.sso_subject,
            instance_admin: r.instance_admin,
            created_at: from_ms(r.created_at)?,
            updated_at: from_ms(r.updated_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct MemberRow {
    workspace_id: String,
    user_id: String,
    role: String,
    created_at: i64,
}

impl TryFrom<MemberRow> for Membership {
    type Error = StoreError;
    fn try_from(r: MemberRow) -> Result<Self, StoreError> {
        Ok(Membership {
            workspace_id: parse("workspace id", &r.workspace_id, WorkspaceId::parse)?,
            user_id: parse("user id", &r.user_id, UserId::parse)?,
            role: r
                .role
                .parse::<Role>()
                .map_err(|e| corrupt("membership role", e))?,
            created_at: from_ms(r.created_at)?,
        })
    }
}

impl SqlStore {
    async fn user_where(&self, column: &str, value: &str) -> StoreResult<Option<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE {column} = $1");
        let row: Option<UserRow> = with_pool!(&self.db, p => {
            sqlx::query_as(&sql).bind(value).fetch_optional(p).await
        })
        .db()?;
        row.map(User::try_from).transpose()
    }
}

#[async_trait]
impl UserStore for SqlStore {
    async fn insert_user(&self, u: &User) -> StoreResult<()> {
        with_pool!(&self.db, p => {
            sqlx::query(
                "INSERT INTO users (id, display_name, email, password_hash, sso_subject, \
                 instance_admin, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(u.id.as_str())
            .bind(&u.display_name)
            .bind(u.email.to_lowercase())
            .bind(&u.password_hash)
            .bind(&u.sso_subject)
            .bind(u.instance_admin)
            .bind(ms(u.created_at))
            .bind(ms(u.updated_at))
            .execute(p)
            .await
            .map(|_| ())
        })
        .db()
    }

    async fn user(&self, id: &UserId) -> StoreResult<Option<User>> {
        self.user_where("id", id.as_str()).await
    }

    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        self.user_where("email", &email.to_lowercase()).await
    }

    async fn user_by_sso_subject(&self, subject: &str) -> StoreResult<Option<User>> {
        self.user_where("sso_subject", subject).await
    }

    async fn list_users(&self, page: &Page) -> StoreResult<Vec<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id > $1 ORDER BY id LIMIT $2");
        let after = page.after.as_deref().unwrap_or_default();
        let rows: Vec<UserRow> = with_pool!(&self.db, p => {
            sqlx::query_as(&sql).bind(after).bind(limit(page)).fetch_all(p).await
        })
        .db()?;
        convert(rows)
    }

    async fn update_user(&self, u: &User) -> StoreResult<bool> {
        let n = with_pool!(&self.db, p => {
            sqlx::query(
                "UPDATE users SET display_name = $2, email = $3, password_hash = $4, \
                 sso_subject = $5, instance_admin = $6, updated_at = $7 WHERE id = $1",
            )
            .bind(u.id.as_str())
            .bind(&u.display_name)
            .bind(u.email.to_lowercase())
            .bind(&u.password_hash)
            .bind(&u.sso_subject)
            .bind(u.instance_admin)
            .bind(ms(u.updated_at))
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })
        .db()?;
        Ok(n > 0)
    }

    async fn delete_user(&self, id: &UserId, at: DateTime<Utc>) -> StoreResult<bool> {
        with_pool!(&self.db, p => {
            let mut tx = p.begin_write().await.db()?;
            sqlx::query(
                "UPDATE api_keys SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
            )
            .bind(id.as_str())
            .bind(ms(at))
            .execute(&mut *tx)
            .await
            .db()?;
            sqlx::query("DELETE FROM ui_sessions WHERE subject_kind = 'user' AND subject_id = $1")
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .db()?;
            sqlx::query("DELETE FROM memberships WHERE user_id = $1")
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .db()?;
            let n = sqlx::query("DELETE FROM users WHERE id = $1")
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .db()?
                .rows_affected();
            tx.commit().await.db()?;
            Ok(n > 0)
        })
    }

    async fn put_membership(&self, m: &Membership) -> StoreResult<()> {
        with_pool!(&self.db, p => {
            sqlx::query(
                "INSERT INTO memberships (workspace_id, user_id, role, created_at) \
                 VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (workspace_id, user_id) DO UPDATE SET role = excluded.role",
            )
            .bind(m.workspace_id.as_str())
            .bind(m.user_id.as_str())
            .bind(m.role.as_str())
            .bind(ms(m.created_at))
            .execute(p)
            .await
            .map(|_| ())
        })
        .db()
    }

    async fn delete_membership(&self, ws: &WorkspaceId, user: &UserId) -> StoreResult<bool> {
        let n = with_pool!(&self.db, p => {
            sqlx::query("DELETE FROM memberships WHERE workspace_id = $1 AND user_id = $2")
                .bind(ws.as_str())
                .bind(user.as_str())
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })
        .db()?;
        Ok(n > 0)
    }

    async fn membership(&self, ws: &WorkspaceId, user: &UserId) -> StoreResult<Option<Membership>> {
        let sql = format!(
            "SELECT {MEMBER_COLUMNS} FROM memberships WHERE workspace_id = $1 AND user_id = $2"
        );
        let row: Option<MemberRow> = with_pool!(&self.db, p => {
            sqlx::query_as(&sql).bind(ws.as_str()).bind(user.as_str()).fetch_optional(p).await
        })
        .db()?;
        row.map(Membership::try_from).transpose()
    }

    async fn memberships_of(&self, user: &UserId) -> StoreResult<Vec<Membership>> {
        let sql = format!(
            "SELECT {MEMBER_COLUMNS} FROM memberships WHERE user_id = $1 ORDER BY workspace_id"
        );
        let rows: Vec<MemberRow> = with_pool!(&self.db, p => {
            sqlx::query_as(&sql).bind(user.as_str()).fetch_all(p).await
        })
        .db()?;
        convert(rows)
    }

    async fn list_members(&self, ws: &WorkspaceId, page: &Page) -> StoreResult<Vec<Membership>> {
        let sql = format!(
            "SELECT {MEMBER_COLUMNS} FROM memberships WHERE workspace_id = $1 AND user_id > $2 \
             ORDER BY user_id LIMIT $3"
        );
        let after = page.after.as_deref().unwrap_or_default();
        let rows: Vec<MemberRow> = with_pool!(&self.db, p => {
            sqlx::query_as(&sql)
                .bind(ws.as_str())
                .bind(after)
                .bind(limit(page))
                .fetch_all(p)
                .await
        })
        .db()?;
        convert(rows)
    }

    async fn replace_memberships(&self, user: &UserId, all: &[Membership]) -> StoreResult<()> {
        with_pool!(&self.db, p => {
            let mut tx = p.begin_write().await.db()?;
            sqlx::query("DELETE FROM memberships WHERE user_id = $1")
                .bind(user.as_str())
                .execute(&mut *tx)
                .await
                .db()?;
            for m in all {
                sqlx::query(
                    "INSERT INTO memberships (workspace_id, user_id, role, created_at) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(m.workspace_id.as_str())
                .bind(user.as_str())
                .bind(m.role.as_str())
                .bind(ms(m.created_at))
                .execute(&mut *tx)
                .await
                .db()?;
            }
            tx.commit().await.db()
        })
    }
}
