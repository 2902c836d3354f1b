//! `rdpfleet-server audit verify`: editing or deleting any audit row by hand is detected and the
//! first broken entry is named — on SQLite and PostgreSQL, through the store and the CLI.
#![allow(clippy::unwrap_used)]

use rdpfleet_e2e::TestDb;
use rdpfleet_server::store::Store;
use rdpfleet_server::store::audit::{ActorKind, ChainCheck, NewAuditEntry};

async fn exec(url: &str, sql: &str) {
    if url.starts_with("sqlite:") {
        let p = sqlx::SqlitePool::connect(url).await.unwrap();
        sqlx::query(sql).execute(&p).await.unwrap();
        p.close().await;
    } else {
        let p = sqlx::PgPool::connect(url).await.unwrap();
        sqlx::query(sql).execute(&p).await.unwrap();
        p.close().await;
    }
}

fn cli_verify(url: &str) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rdpfleet-server"))
        .args(["--database-url", url, "audit", "verify"])
        .output()
        .unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

async fn tampering_is_named(db: TestDb) {
    let url = db.url().to_owned();
    let store = Store::connect(&url).await.unwrap();
    for i in 0..6 {
        let e = NewAuditEntry::new(ActorKind::User, "alice", "user.created", format!("u{i}"))
            .details(serde_json::json!({"i": i}));
        store.append_audit(&e).await.unwrap();
    }
    assert_eq!(store.verify_audit_chain().await.unwrap(), ChainCheck::Intact { entries: 6 });
    let (ok, out) = cli_verify(&url);
    assert!(ok && out.contains("intact: 6 entries"), "{out}");

    let snapshot = store.audit_entries(0, 100).await.unwrap();
    let restore = |id: i64| {
        let r = snapshot.iter().find(|r| r.id == id).unwrap().clone();
        format!(
            "INSERT INTO audit_log (id, at, actor_kind, actor, action, subject, details, prev_hash, hash) VALUES \
             ({}, {}, '{}', '{}', '{}', '{}', '{}', '{}', '{}')",
            r.id, r.at, r.actor_kind, r.actor, r.action, r.subject, r.details, r.prev_hash, r.hash
        )
    };
    // Every kind of edit on every row, then a deletion of every row: each names its entry.
    for id in 1..=6 {
        for edit in [
            format!("UPDATE audit_log SET actor = 'mallory' WHERE id = {id}"),
            format!("UPDATE audit_log SET details = '{{\"i\": 99}}' WHERE id = {id}"),
            format!("UPDATE audit_log SET at = at + 1 WHERE id = {id}"),
            format!("UPDATE audit_log SET action = 'user.deleted' WHERE id = {id}"),
        ] {
            exec(&url, &edit).await;
            match store.verify_audit_chain().await.unwrap() {
                ChainCheck::Broken { entry, .. } => assert_eq!(entry, id, "{edit}"),
                other => panic!("{edit} went unnoticed: {other:?}"),
            }
            exec(&url, &format!("DELETE FROM audit_log WHERE id = {id}")).await;
            exec(&url, &restore(id)).await;
        }
        exec(&url, &format!("DELETE FROM audit_log WHERE id = {id}")).await;
        let check = store.verify_audit_chain().await.unwrap();
        assert!(matches!(check, ChainCheck::Broken { entry, .. } if entry == id), "deleting {id}: {check:?}");
        if id == 3 {
            let (ok, out) = cli_verify(&url);
            assert!(!ok && out.contains("broken at entry 3"), "{out}");
        }
        exec(&url, &restore(id)).await;
        assert_eq!(store.verify_audit_chain().await.unwrap(), ChainCheck::Intact { entries: 6 });
    }
    // Re-hashing an edited row does not help: the next entry's prev_hash no longer matches.
    exec(&url, "UPDATE audit_log SET actor = 'mallory', hash = 'ff' WHERE id = 2").await;
    assert!(matches!(store.verify_audit_chain().await.unwrap(), ChainCheck::Broken { entry: 2, .. }));
    exec(&url, "DELETE FROM audit_log WHERE id = 2").await;
    exec(&url, &restore(2)).await;
    // Cutting the end of the chain is seen through the head row.
    exec(&url, "DELETE FROM audit_log WHERE id = 6").await;
    let check = store.verify_audit_chain().await.unwrap();
    assert!(matches!(check, ChainCheck::Broken { entry: 6, .. }), "{check:?}");
}

#[tokio::test]
async fn audit_tampering_is_named_sqlite() {
    tampering_is_named(TestDb::sqlite()).await;
}

#[tokio::test]
async fn audit_tampering_is_named_postgres() {
    if let Some(db) = TestDb::postgres().await {
        tampering_is_named(db).await;
    }
}
