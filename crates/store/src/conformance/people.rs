//! People, their workspace roles, and what removing a person takes with them.

use super::{all_pages, new_workspace, now, unique};
use latchkey_core::ids::{ApiKeyId, UserId};
use latchkey_core::model::{ApiKey, Membership, Role, Scope, SessionSubject, UiSession, User};
use latchkey_core::store::Store;
use latchkey_core::StoreError;

fn user_fixture(label: &str) -> User {
    let at = now();
    User {
        id: UserId::generate(),
        display_name: format!("Person {label}"),
        email: format!("{}@Example.test", unique(label)),
        password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
        sso_subject: None,
        instance_admin: false,
        created_at: at,
        updated_at: at,
    }
}

/// Insert, look up by id, email (any case) and provider subject, duplicates refused, list in
/// pages, update.
pub async fn users(store: &dyn Store) {
    let mut ada = user_fixture("ada");
    store.insert_user(&ada).await.expect("insert");
    let got = store.user(&ada.id).await.expect("by id").expect("found");
    assert_eq!(
        got.email,
        ada.email.to_lowercase(),
        "emails are kept in lower case"
    );
    assert_eq!(got.password_hash, ada.password_hash);
    assert!(!got.instance_admin);
    let by_mail = store
        .user_by_email(&ada.email.to_uppercase())
        .await
        .expect("by email")
        .expect("emails match in any case");
    assert_eq!(by_mail.id, ada.id);

    let mut twin = user_fixture("twin");
    twin.email = ada.email.to_uppercase();
    match store.insert_user(&twin).await {
        Err(StoreError::Duplicate { constraint }) => assert_eq!(constraint, "user_email"),
        other => panic!("a taken email must be a duplicate, got {other:?}"),
    }

    ada.sso_subject = Some(unique("sub"));
    ada.instance_admin = true;
    ada.display_name = "Ada L.".into();
    ada.password_hash = None;
    ada.updated_at = now();
    assert!(store.update_user(&ada).await.expect("update"));
    let got = store.user(&ada.id).await.expect("by id").expect("found");
    assert!(got.instance_admin);
    assert_eq!(got.display_name, "Ada L.");
    assert_eq!(got.password_hash, None);
    let by_sub = store
        .user_by_sso_subject(ada.sso_subject.as_deref().unwrap())
        .await
        .expect("by subject")
        .expect("found");
    assert_eq!(by_sub.id, ada.id);
    let mut sub_twin = user_fixture("sub-twin");
    sub_twin.sso_subject = ada.sso_subject.clone();
    match store.insert_user(&sub_twin).await {
        Err(StoreError::Duplicate { constraint }) => assert_eq!(constraint, "user_sso_subject"),
        other => panic!("a taken subject must be a duplicate, got {other:?}"),
    }
    let ghost = user_fixture("ghost");
    assert!(!store.update_user(&ghost).await.expect("update of nobody"));
    assert!(store.user(&ghost.id).await.expect("by id").is_none());

    let mut made = Vec::new();
    for i in 0..3 {
        let u = user_fixture(&format!("list{i}"));
        store.insert_user(&u).await.expect("insert");
        made.push(u.id);
    }
    let all = all_pages(
        2,
        |p| async move { store.list_users(&p).await },
        |u: &User| u.id.to_string(),
    )
    .await;
    for id in &made {
        assert!(all.iter().any(|u| &u.id == id), "{id} is listed");
    }
}

/// Roles per workspace: put (and change), read, list, delete, replace the whole set; a
/// workspace's deletion takes its memberships along.
pub async fn memberships(store: &dyn Store) {
    let acme = new_workspace(store, "members").await;
    let beta = new_workspace(store, "members-b").await;
    let grace = user_fixture("grace");
    let linus = user_fixture("linus");
    store.insert_user(&grace).await.expect("insert");
    store.insert_user(&linus).await.expect("insert");
    let m = |ws: &latchkey_core::model::Workspace, u: &User, role| Membership {
        workspace_id: ws.id.clone(),
        user_id: u.id.clone(),
        role,
        created_at: now(),
    };
    store
        .put_membership(&m(&acme, &grace, Role::Viewer))
        .await
        .expect("put");
    store
        .put_membership(&m(&acme, &grace, Role::Owner))
        .await
        .expect("change role");
    store
        .put_membership(&m(&acme, &linus, Role::Editor))
        .await
        .expect("put");
    store
        .put_membership(&m(&beta, &grace, Role::Admin))
        .await
        .expect("put");
    let got = store
        .membership(&acme.id, &grace.id)
        .await
        .expect("read")
        .expect("found");
    assert_eq!(got.role, Role::Owner, "a second put changes the role");
    let members = all_pages(
        1,
        |p| {
            let acme = &acme;
            async move { store.list_members(&acme.id, &p).await }
        },
        |m: &Membership| m.user_id.to_string(),
    )
    .await;
    assert_eq!(members.len(), 2);
    let of_grace = store.memberships_of(&grace.id).await.expect("of");
    assert_eq!(of_grace.len(), 2);

    assert!(store
        .delete_membership(&acme.id, &linus.id)
        .await
        .expect("delete"));
    assert!(!store
        .delete_membership(&acme.id, &linus.id)
        .await
        .expect("again"));
    assert!(store
        .membership(&acme.id, &linus.id)
        .await
        .expect("read")
        .is_none());

    store
        .replace_memberships(&grace.id, &[m(&beta, &grace, Role::Viewer)])
        .await
        .expect("replace");
    let of_grace = store.memberships_of(&grace.id).await.expect("of");
    assert_eq!(of_grace.len(), 1, "replacing drops the roles not named");
    assert_eq!(of_grace[0].workspace_id, beta.id);
    assert_eq!(of_grace[0].role, Role::Viewer);

    assert!(store.delete_workspace(&beta.id).await.expect("delete ws"));
    assert!(store
        .memberships_of(&grace.id)
        .await
        .expect("of")
        .is_empty());
}

/// Removing a person revokes their keys, ends their sessions and drops their roles, in one go;
/// other people's keys are untouched.
pub async fn user_removal(store: &dyn Store) {
    let ws = new_workspace(store, "removal").await;
    let gone = user_fixture("gone");
    let kept = user_fixture("kept");
    store.insert_user(&gone).await.expect("insert");
    store.insert_user(&kept).await.expect("insert");
    store
        .put_membership(&Membership {
            workspace_id: ws.id.clone(),
            user_id: gone.id.clone(),
            role: Role::Admin,
            created_at: now(),
        })
        .await
        .expect("put");
    let key = |owner: &User| ApiKey {
        id: ApiKeyId::generate(),
        name: unique("key"),
        workspace_id: Some(ws.id.clone()),
        user_id: Some(owner.id.clone()),
        scopes: vec![Scope::Read],
        hash: unique("hash"),
        prefix: "lk_people".into(),
        created_at: now(),
        revoked_at: None,
    };
    let (theirs, other) = (key(&gone), key(&kept));
    store.insert_api_key(&theirs).await.expect("key");
    store.insert_api_key(&other).await.expect("key");
    let got = store
        .api_key(&theirs.id)
        .await
        .expect("key")
        .expect("found");
    assert_eq!(
        got.user_id.as_ref(),
        Some(&gone.id),
        "a key remembers its person"
    );
    let session = UiSession {
        id_hash: unique("session"),
        subject: SessionSubject::User(gone.id.clone()),
        csrf_token: "csrf".into(),
        created_at: now(),
        expires_at: now() + chrono::Duration::hours(1),
    };
    store.insert_session(&session).await.expect("session");
    let read = store
        .session(&session.id_hash, now())
        .await
        .expect("session");
    assert_eq!(read.map(|s| s.subject), Some(session.subject.clone()));

    let at = now();
    assert!(store.delete_user(&gone.id, at).await.expect("delete"));
    assert!(!store.delete_user(&gone.id, at).await.expect("again"));
    assert!(store.user(&gone.id).await.expect("read").is_none());
    let revoked = store
        .api_key(&theirs.id)
        .await
        .expect("key")
        .expect("still listed");
    assert_eq!(
        revoked.revoked_at,
        Some(at),
        "the removed person's key is revoked"
    );
    let untouched = store.api_key(&other.id).await.expect("key").expect("found");
    assert_eq!(
        untouched.revoked_at, None,
        "another person's key keeps working"
    );
    assert!(store
        .session(&session.id_hash, now())
        .await
        .expect("session")
        .is_none());
    assert!(store.memberships_of(&gone.id).await.expect("of").is_empty());
}
