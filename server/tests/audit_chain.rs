//! `rdpfleet-server audit verify`: editing or deleting any audit row by hand is detected and the
//! first broken entry is named — on SQLite and PostgreSQL, through the store and the CLI. The
//! chain is keyed: rewriting an entry and recomputing every later hash (without the key) is
//! named; with the key stolen, the signed checkpoints written before disagree.
#![allow(clippy::unwrap_used)]

use rdpfleet_e2e::TestDb;
use rdpfleet_server::store::Store;
use rdpfleet_server::store::audit::{ActorKind, AuditKey, ChainCheck, NewAuditEntry, entry_hash, keyed_entry_hash};

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

fn cli(dir: &std::path::Path, url: &str, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rdpfleet-server"))
        .current_dir(dir)
        .args(["--database-url", url])
        .args(args)
        .env("RDPFLEET_AUDIT_KEY_PATH", dir.join("audit.key"))
        .env("RDPFLEET_AUDIT_CHECKPOINT_PATH", dir.join("checkpoints.jsonl"))
        .output()
        .unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

const KEY: [u8; 32] = [0x5a; 32];

fn key_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("audit.key"), hex::encode(KEY)).unwrap();
    dir
}

async fn tampering_is_named(db: TestDb) {
    let url = db.url().to_owned();
    let dir = key_dir();
    let cli_verify = |url: &str| cli(dir.path(), url, &["audit", "verify"]);
    let store = Store::connect(&url).await.unwrap().with_audit_key(AuditKey::from_bytes(KEY));
    for i in 0..6 {
        let e = NewAuditEntry::new(ActorKind::User, "alice", "user.created", format!("u{i}"))
            .details(serde_json::json!({"i": i}));
        store.append_audit(&e).await.unwrap();
    }
    assert_eq!(store.verify_audit_chain().await.unwrap(), ChainCheck::Intact { entries: 6 });
    let (ok, out) = cli_verify(&url);
    assert!(ok && out.contains("intact: 6 entries"), "{out}");
    // Another key neither verifies nor writes.
    let other = Store::connect(&url).await.unwrap().with_audit_key(AuditKey::from_bytes([1; 32]));
    assert!(matches!(other.verify_audit_chain().await.unwrap(), ChainCheck::Broken { .. }));
    assert!(other.append_audit(&NewAuditEntry::new(ActorKind::User, "x", "user.created", "y")).await.is_err());
    assert!(other.check_audit_key().await.is_err());

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

/// Rewrites entry 2's actor and recomputes every later hash and the head with `hash`, as an
/// attacker with write access to the database would.
async fn rewrite_from_2(store: &Store, url: &str, hash: impl Fn(&str, i64, i64, [&str; 5]) -> String) {
    let rows = store.audit_entries(0, 1000).await.unwrap();
    let mut prev = rows[0].hash.clone();
    for r in rows.iter().skip(1) {
        let actor = if r.id == 2 { "mallory" } else { r.actor.as_str() };
        let h = hash(&prev, r.id, r.at, [&r.actor_kind, actor, &r.action, &r.subject, &r.details]);
        exec(
            url,
            &format!("UPDATE audit_log SET actor = '{actor}', prev_hash = '{prev}', hash = '{h}' WHERE id = {}", r.id),
        )
        .await;
        prev = h;
    }
    exec(url, &format!("UPDATE audit_head SET last_hash = '{prev}' WHERE id = 1")).await;
}

async fn rewriting_every_hash_is_caught(db: TestDb) {
    let url = db.url().to_owned();
    let dir = key_dir();
    let store = Store::connect(&url).await.unwrap().with_audit_key(AuditKey::from_bytes(KEY));
    for i in 0..6 {
        let e = NewAuditEntry::new(ActorKind::User, "alice", "rollout.approved", format!("r{i}"));
        store.append_audit(&e).await.unwrap();
    }
    // A checkpoint of the six entries, written outside the database.
    let (ok, out) = cli(dir.path(), &url, &["audit", "checkpoint"]);
    assert!(ok && out.contains("checkpoint of 6 entries"), "{out}");
    let (ok, out) = cli(dir.path(), &url, &["audit", "verify"]);
    assert!(ok && out.contains("1 checkpoint(s) agree"), "{out}");

    // Without the key: the plain SHA-256 recomputation (what `audit verify` accepted before).
    let snapshot = store.audit_entries(0, 100).await.unwrap();
    let head = store.audit_head().await.unwrap();
    rewrite_from_2(&store, &url, entry_hash).await;
    let check = store.verify_audit_chain().await.unwrap();
    assert!(matches!(check, ChainCheck::Broken { entry: 2, .. }), "{check:?}");
    let (ok, out) = cli(dir.path(), &url, &["audit", "verify"]);
    assert!(!ok && out.contains("broken at entry 2"), "{out}");

    // With the key stolen: the chain checks out, the checkpoint does not.
    let key = AuditKey::from_bytes(KEY);
    rewrite_from_2(&store, &url, |p, id, at, f| keyed_entry_hash(&key, p, id, at, f)).await;
    assert_eq!(store.verify_audit_chain().await.unwrap(), ChainCheck::Intact { entries: 6 });
    let (ok, out) = cli(dir.path(), &url, &["audit", "verify"]);
    assert!(!ok && out.contains("an entry from 1 to 6 was rewritten"), "{out}");

    // Put the true chain back: all agree again.
    for r in &snapshot {
        exec(
            &url,
            &format!(
                "UPDATE audit_log SET actor = '{}', prev_hash = '{}', hash = '{}' WHERE id = {}",
                r.actor, r.prev_hash, r.hash, r.id
            ),
        )
        .await;
    }
    exec(&url, &format!("UPDATE audit_head SET last_hash = '{}' WHERE id = 1", head.last_hash)).await;
    assert!(cli(dir.path(), &url, &["audit", "verify"]).0);

    // Cutting the last entries and moving the head back (with the key) contradicts the checkpoint.
    exec(&url, "DELETE FROM audit_log WHERE id > 4").await;
    exec(&url, &format!("UPDATE audit_head SET last_id = 4, last_hash = '{}' WHERE id = 1", snapshot[3].hash)).await;
    assert_eq!(store.verify_audit_chain().await.unwrap(), ChainCheck::Intact { entries: 4 });
    let (ok, out) = cli(dir.path(), &url, &["audit", "verify"]);
    assert!(!ok && out.contains("entries after 4 deleted"), "{out}");

    // A forged checkpoint line (signed with another key) is named.
    let forged = r#"{"count":1,"head":"00","keyed_from":1,"at":1,"key":"AAAA","signature":"AAAA"}"#;
    let mut text = std::fs::read_to_string(dir.path().join("checkpoints.jsonl")).unwrap();
    text.push_str(forged);
    text.push('\n');
    std::fs::write(dir.path().join("checkpoints.jsonl"), text).unwrap();
    let (ok, out) = cli(dir.path(), &url, &["audit", "verify"]);
    assert!(!ok && out.contains("signature does not verify"), "{out}");
}

#[tokio::test]
async fn rewriting_every_hash_is_caught_sqlite() {
    rewriting_every_hash_is_caught(TestDb::sqlite()).await;
}

#[tokio::test]
async fn rewriting_every_hash_is_caught_postgres() {
    if let Some(db) = TestDb::postgres().await {
        rewriting_every_hash_is_caught(db).await;
    }
}
