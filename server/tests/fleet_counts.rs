//! The Overview's fleet counts: taken on first use, served from memory after, kept current by
//! the background recount.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use rdpfleet_e2e::TestDb;
use rdpfleet_proto::check::{CheckResult, CheckStatus};
use rdpfleet_proto::enroll::MachineRole;
use rdpfleet_server::secrets::token_hash;
use rdpfleet_server::store::Store;
use rdpfleet_server::store::audit::{ActorKind, NewAuditEntry};
use rdpfleet_server::store::enrollment::{NewEnrollmentToken, NewMachine};
use rdpfleet_server::store::now_ms;
use rdpfleet_server::tasks::fleet_counts::FleetCounts;
use tokio_util::sync::CancellationToken;

fn report(status: CheckStatus) -> Vec<CheckResult> {
    vec![CheckResult {
        check: "host.nla".into(),
        target: None,
        status,
        summary: "s".into(),
        cause: None,
        evidence: serde_json::json!({}),
        observed_at: time::OffsetDateTime::now_utc(),
        duration_ms: 1,
    }]
}

#[tokio::test]
async fn counts_are_served_from_memory_and_recounted_in_the_background() {
    let db = TestDb::sqlite();
    let store = Store::connect(db.url()).await.unwrap();
    let token =
        NewEnrollmentToken { label: "c", token_hash: &token_hash("rfe_c"), expires_at: now_ms() + 60_000, max_uses: 1 };
    store.create_enrollment_token(token, NewAuditEntry::new(ActorKind::Cli, "t", "x", "y")).await.unwrap();
    let m = NewMachine {
        hostname: "c1",
        role: MachineRole::Host,
        os: "linux",
        agent_version: "1",
        site: None,
        labels: &[],
    };
    let id = store.enroll(&token_hash("rfe_c"), m, &token_hash("rfa_c")).await.unwrap();
    store.store_report(id, 1, None, &report(CheckStatus::Fail)).await.unwrap();

    let counts = Arc::new(FleetCounts::default());
    let (first, at) = counts.get(&store).await.unwrap();
    assert_eq!((first.total, first.fail), (1, 1), "counted on first use");
    store.store_report(id, 2, None, &report(CheckStatus::Pass)).await.unwrap();
    let (again, at_again) = counts.get(&store).await.unwrap();
    assert_eq!((again.fail, at_again), (1, at), "served from memory");

    let cancel = CancellationToken::new();
    let refresher = counts.clone().spawn_refresher(store.clone(), Duration::from_millis(50), cancel.clone());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (c, when) = counts.get(&store).await.unwrap();
        if c.pass == 1 {
            assert!(when > at);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the recount never came");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cancel.cancel();
    refresher.await.unwrap();
}
