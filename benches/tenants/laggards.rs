//! What the Tenants a wait is still missing show, printed when the fleet stops moving: their
//! Ready condition grouped by reason, a few in full, and their migration Jobs as the API
//! holds them (a Job nobody ends looks the same as one still running).

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use servicedb::api::conditions::{find_condition, types};
use servicedb::api::{Tenant, labels};

/// How many laggards are shown in full.
const SHOWN: usize = 5;

pub async fn report(client: &kube::Client, ns: &str, laggards: &[&Tenant]) {
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for t in laggards {
        *reasons.entry(ready_of(t)).or_default() += 1;
    }
    eprintln!("  {} Tenants not there yet, by Ready:", laggards.len());
    for (reason, n) in &reasons {
        eprintln!("    {n:>5}  {reason}");
    }
    let jobs: Api<Job> = Api::namespaced(client.clone(), ns);
    for t in laggards.iter().take(SHOWN) {
        let name = t.name_any();
        let status = t.status.as_ref();
        eprintln!(
            "  {name}: generation {:?}, observed {:?}, finalizers {:?}",
            t.metadata.generation,
            status.and_then(|s| s.observed_generation),
            t.finalizers()
        );
        for c in status.map(|s| s.conditions.as_slice()).unwrap_or_default() {
            eprintln!(
                "    {} {} {}: {} (since {})",
                c.type_, c.status, c.reason, c.message, c.last_transition_time.0
            );
        }
        for d in status.map(|s| s.databases.as_slice()).unwrap_or_default() {
            eprintln!(
                "    database {}",
                serde_json::to_string(d).unwrap_or_default()
            );
        }
        let selector = format!("{}={name}", labels::TENANT);
        match jobs.list(&ListParams::default().labels(&selector)).await {
            Ok(list) if list.items.is_empty() => eprintln!("    no Job"),
            Ok(list) => {
                for j in list.items {
                    eprintln!(
                        "    Job {} created {:?}: {}",
                        j.name_any(),
                        j.metadata.creation_timestamp.map(|t| t.0),
                        serde_json::to_string(&j.status).unwrap_or_default()
                    );
                }
            }
            Err(e) => eprintln!("    listing its Jobs: {e}"),
        }
    }
}

fn ready_of(t: &Tenant) -> String {
    let conditions = t.status.as_ref().map(|s| s.conditions.as_slice());
    match conditions.and_then(|c| find_condition(c, types::READY)) {
        Some(c) => format!("{} {}", c.status, c.reason),
        None => "no Ready condition".into(),
    }
}
