//! Leader election end to end: two `controller::run`s sharing one Lease, each through its
//! own recorded client, against one API server (the fake, or SERVICEDB_TEST_KUBECONFIG's
//! cluster) and the tests' PostgreSQL.

mod controller_common;
mod support;

use std::time::{Duration, Instant};

use controller_common::*;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use serde_json::json;
use servicedb::controller::Config;
use servicedb::controller::health::{Health, Role};
use servicedb::controller::leader::LeaderElection;
use support::kube::{Instrumented, RecordedRequest, TestCluster, eventually};
use support::postgres::server as pg;

/// Short enough for a test, long enough that a reconcile (bounded to a third of it) fits.
const LEASE: Duration = Duration::from_secs(9);

struct Replica {
    identity: &'static str,
    api: Instrumented,
    health: Health,
    running: Option<Running>,
}

fn replica(cluster: &TestCluster, ns: &str, lease: &str, identity: &'static str) -> Replica {
    let api = cluster.instrumented_client();
    let config = Config {
        leader_election: Some(LeaderElection {
            lease_name: lease.to_string(),
            namespace: ns.to_string(),
            identity: identity.to_string(),
            lease_duration: LEASE,
        }),
        instance: Some(identity.to_string()),
        ..fast_config(ns)
    };
    let health = config.health.clone();
    let running = Some(start(api.client.clone(), config));
    Replica {
        identity,
        api,
        health,
        running,
    }
}

/// What the operator writes for ServiceDatabases: their status and their Secrets.
fn acts(r: &RecordedRequest) -> bool {
    let resource = r.info.rbac_resource();
    r.is_write() && (resource == "secrets" || resource.starts_with("servicedatabases.servicedb.io"))
}

/// Of `requests`, what the operator wrote (as [`acts`]).
fn writes(requests: Vec<RecordedRequest>) -> Vec<String> {
    requests
        .into_iter()
        .filter(acts)
        .map(|r| r.to_string())
        .collect()
}

async fn holder(client: &kube::Client, ns: &str, lease: &str) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), ns);
    leases.get_opt(lease).await.ok()??.spec?.holder_identity
}

/// Locks "two replicas never act at once" and the hand-over: of two controllers sharing a
/// Lease, only the holder writes ServiceDatabase status and Secrets while the other stands
/// by (and is Ready, saying so); when the leader is killed without releasing the lease, the
/// standby takes it once it expires (within the lease duration + 5s) and reconciles a new
/// ServiceDatabase, and the dead leader wrote nothing after that. Each replica's Lease
/// patches carry its own field manager and use only the verbs the chart's Role grants.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_writes_and_a_standby_takes_over() {
    let cluster = TestCluster::start().await;
    let ns = cluster.namespace().to_string();
    let client = cluster.client();
    admin_secret(&client, &ns, "pg-admin", pg().admin_password()).await;
    let server = database_server(&cluster, &ns, "pg-admin").await;
    let lease = cluster.unique_name("servicedb-leader");
    let mut replicas = [
        replica(&cluster, &ns, &lease, "replica-a"),
        replica(&cluster, &ns, &lease, "replica-b"),
    ];

    service_database(&client, &ns, "first", &server, json!({})).await;
    wait_ready(&client, &ns, "first").await;
    let first_holder = holder(&client, &ns, &lease)
        .await
        .expect("the Lease has a holder");
    let leader = replicas
        .iter()
        .position(|r| r.identity == first_holder)
        .expect("the holder is one of the replicas");
    let standby = 1 - leader;
    eventually("the roles to settle", || {
        let roles = (
            replicas[leader].health.role(),
            replicas[standby].health.role(),
        );
        async move { (roles == (Role::Leader, Role::Standby)).then_some(()) }
    })
    .await;
    assert!(replicas[standby].health.is_ready(), "a standby is Ready");
    assert!(
        !writes(replicas[leader].api.requests.all()).is_empty(),
        "the leader provisioned"
    );
    let standby_writes = writes(replicas[standby].api.requests.all());
    assert!(
        standby_writes.is_empty(),
        "the standby wrote: {standby_writes:?}"
    );
    let standby_other: Vec<String> = replicas[standby]
        .api
        .requests
        .all()
        .into_iter()
        .filter(|r| r.is_write() && r.info.rbac_resource() != "leases.coordination.k8s.io")
        .map(|r| r.to_string())
        .collect();
    assert!(
        standby_other.is_empty(),
        "a standby writes nothing but the Lease: {standby_other:?}"
    );

    // A crash: the task is aborted mid-work and the lease is not released.
    let standby_mark = replicas[standby].api.requests.mark();
    replicas[leader].running.take().expect("running").kill();
    let killed = Instant::now();
    service_database(&client, &ns, "second", &server, json!({})).await;
    let standby_health = replicas[standby].health.clone();
    eventually("the standby to lead", || {
        let role = standby_health.role();
        async move { (role == Role::Leader).then_some(()) }
    })
    .await;
    let led_at = Instant::now();
    let took_over = led_at - killed;
    eprintln!("the standby led {took_over:?} after the leader was killed (lease {LEASE:?})");
    assert!(
        took_over < LEASE + Duration::from_secs(5),
        "the standby took {took_over:?} to take over (lease {LEASE:?})"
    );
    wait_ready(&client, &ns, "second").await;
    let handover = killed.elapsed();
    eprintln!(
        "a new ServiceDatabase was Ready {handover:?} after the leader was killed (lease {LEASE:?})"
    );
    // The standby starts its controllers, connects to PostgreSQL and provisions within a
    // per-reconcile bound of LEASE/3; a loaded CI machine may need a retry or two.
    let slack = Duration::from_secs(45);
    assert!(
        handover < LEASE + slack,
        "the standby reconciled {handover:?} after the leader died (lease {LEASE:?})"
    );
    assert_eq!(
        holder(&client, &ns, &lease).await.as_deref(),
        Some(replicas[standby].identity)
    );
    assert_eq!(replicas[standby].health.role(), Role::Leader);
    let new_writes = writes(replicas[standby].api.requests.since(standby_mark));
    assert!(
        new_writes
            .iter()
            .any(|w| w.contains("/servicedatabases/second/status")),
        "the new leader wrote the new status: {new_writes:?}"
    );
    // A write the killed leader had already sent may land just after the kill (the abort
    // stops the task, not a request on the wire); what must never happen is a write of
    // its once the standby leads.
    let dead_writes = writes(replicas[leader].api.requests.writes_sent_after(led_at));
    assert!(
        dead_writes.is_empty(),
        "the killed leader wrote after the standby led: {dead_writes:?}"
    );
    let app = secret_data(&client, &ns, "second-db")
        .await
        .expect("the new leader wrote the Secret");
    login(&app).await.expect("the Secret logs in");

    // The lease manager's requests (get, create, apply, strategic merge) all worked; a
    // 404 is the get before the create, a 409 a lost race for the lock.
    for r in &replicas {
        let lease_requests: Vec<RecordedRequest> = r
            .api
            .requests
            .all()
            .into_iter()
            .filter(|q| q.info.rbac_resource() == "leases.coordination.k8s.io")
            .collect();
        assert!(
            lease_requests
                .iter()
                .any(|q| q.verb() == "patch" && q.status == 200),
            "{} renewed or took the lease",
            r.identity
        );
        let failed: Vec<String> = lease_requests
            .iter()
            .filter(|q| q.status >= 400 && !matches!((q.verb(), q.status), ("get", 404) | (_, 409)))
            .map(|q| q.to_string())
            .collect();
        assert!(failed.is_empty(), "{}: {failed:?}", r.identity);
        // One field manager per identity, so server-side apply tells the replicas apart.
        let manager = format!("kube-lease-manager-{}", r.identity);
        let managers: std::collections::BTreeSet<Option<String>> = lease_requests
            .iter()
            .filter(|q| q.verb() == "patch")
            .map(|q| q.info.param("fieldManager"))
            .collect();
        assert_eq!(managers, [Some(manager)].into(), "{}", r.identity);
        // What the chart's leader-election Role grants, and no more.
        let verbs: std::collections::BTreeSet<&str> =
            lease_requests.iter().map(|q| q.verb()).collect();
        assert!(
            verbs.iter().all(|v| ["get", "create", "patch"].contains(v)),
            "{}: lease verbs {verbs:?}",
            r.identity
        );
    }

    replicas[standby]
        .running
        .take()
        .expect("running")
        .stop()
        .await;
    // A graceful stop releases the lease.
    assert_eq!(holder(&client, &ns, &lease).await, None);
}

/// Locks "a leader that cannot renew stops before its lease can expire": when every Lease
/// request of the leader fails (its renewals do not go through, though it can still write
/// everything else), it stops its controllers, and is a standby by the time the other
/// replica takes the expired lease; from then on only the new leader writes. Once its Lease
/// requests go through again and the other releases the lease (a graceful stop), it takes it
/// within half the lease duration and leads (and reconciles) again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_cannot_renew_steps_down_before_the_lease_expires() {
    let cluster = TestCluster::start().await;
    let ns = cluster.namespace().to_string();
    let client = cluster.client();
    admin_secret(&client, &ns, "pg-admin", pg().admin_password()).await;
    let server = database_server(&cluster, &ns, "pg-admin").await;
    let lease = cluster.unique_name("servicedb-leader");
    let mut replicas = [
        replica(&cluster, &ns, &lease, "replica-a"),
        replica(&cluster, &ns, &lease, "replica-b"),
    ];
    service_database(&client, &ns, "first", &server, json!({})).await;
    wait_ready(&client, &ns, "first").await;
    let first_holder = holder(&client, &ns, &lease).await.expect("a holder");
    let old = replicas
        .iter()
        .position(|r| r.identity == first_holder)
        .expect("the holder is one of the replicas");
    let new = 1 - old;

    replicas[old].api.faults.inject(
        support::kube::Fault::on("*", "*/leases*")
            .status(500)
            .always(),
    );
    let cut_off = Instant::now();
    // Polled faster than the 10% of the lease between the old leader's hard stop and
    // the earliest take-over.
    let roles_at_takeover = eventually("the other replica to take the lease", || {
        let roles = (replicas[old].health.role(), replicas[new].health.role());
        async move { (roles.1 == Role::Leader).then_some(roles) }
    })
    .await;
    assert_eq!(
        roles_at_takeover.0,
        Role::Standby,
        "the old leader still ran its controllers when the new one started"
    );
    assert!(
        cut_off.elapsed() < LEASE + Duration::from_secs(5),
        "took over after {:?}",
        cut_off.elapsed()
    );
    eprintln!(
        "the other replica led {:?} after the leader was cut off (lease {LEASE:?})",
        cut_off.elapsed()
    );
    let led_at = Instant::now();
    service_database(&client, &ns, "second", &server, json!({})).await;
    wait_ready(&client, &ns, "second").await;
    let old_writes = writes(replicas[old].api.requests.writes_sent_after(led_at));
    assert!(
        old_writes.is_empty(),
        "the deposed leader wrote: {old_writes:?}"
    );
    assert_eq!(
        holder(&client, &ns, &lease).await.as_deref(),
        Some(replicas[new].identity)
    );

    // Back in touch, the deposed leader stands by; when the new one stops (and releases
    // the lease), it leads again in the same process and reconciles.
    replicas[old].api.faults.clear();
    replicas[new].running.take().expect("running").stop().await;
    let released = Instant::now();
    let old_health = replicas[old].health.clone();
    eventually("the old leader to lead again", || {
        let role = old_health.role();
        async move { (role == Role::Leader).then_some(()) }
    })
    .await;
    eprintln!(
        "the standby led {:?} after the leader released the lease",
        released.elapsed()
    );
    // A standby reads the Lease every tenth of the duration: a released lease is taken
    // long before it would have expired.
    assert!(
        released.elapsed() < LEASE / 2,
        "took {:?} to take a released lease",
        released.elapsed()
    );
    let old_mark = replicas[old].api.requests.mark();
    service_database(&client, &ns, "third", &server, json!({})).await;
    wait_ready(&client, &ns, "third").await;
    assert_eq!(replicas[old].health.role(), Role::Leader);
    let again = writes(replicas[old].api.requests.since(old_mark));
    assert!(
        again
            .iter()
            .any(|w| w.contains("/servicedatabases/third/status")),
        "the old leader leads again: {again:?}"
    );
}
