//! `servicedb run`: a client from the in-cluster config or KUBECONFIG, the controllers
//! (behind leader election when asked), the probe and metrics endpoint, and a graceful stop
//! on SIGTERM or SIGINT (reconciles in flight finish first, then the lease is released).

use std::process::ExitCode;

use super::{RunArgs, fail};
use crate::controller::leader::{self, LeaderElection};
use crate::controller::{self, Config};

pub async fn run(args: RunArgs) -> ExitCode {
    let client = match kube::Client::try_default().await {
        Ok(c) => c,
        Err(e) => {
            return fail(format!(
                "cannot build a Kubernetes client (in-cluster config or KUBECONFIG): {e}"
            ));
        }
    };
    let leader_election = args.leader_election.then(|| LeaderElection {
        namespace: args
            .leader_election_namespace
            .filter(|ns| !ns.is_empty())
            .unwrap_or_else(|| client.default_namespace().to_string()),
        lease_name: args.leader_election_lease_name,
        identity: leader::default_identity(),
        lease_duration: args.leader_election_lease_duration,
    });
    let config = Config {
        namespace: args.namespace,
        operator_namespace: args.operator_namespace,
        resync: args.resync,
        finalizer_timeout: args.finalizer_timeout,
        installation_id: args.installation_id,
        instance: std::env::var("POD_NAME").ok(),
        migration_image: args
            .migration_image
            .filter(|i| !i.trim().is_empty())
            .unwrap_or_else(controller::default_migration_image),
        leader_election,
        ..Config::default()
    };
    let shutdown = futures::FutureExt::shared(futures::FutureExt::boxed(shutdown_signal()));
    if let Some(addr) = args.metrics_addr {
        let (health, metrics) = (config.health.clone(), config.metrics.clone());
        let stop = shutdown.clone();
        tokio::spawn(async move {
            if let Err(e) = controller::health::serve(addr, health, metrics, stop).await {
                tracing::error!(%addr, error = %e, "cannot serve /healthz, /readyz and /metrics");
            }
        });
    }
    match controller::run(client, config, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

/// Resolves on the first SIGTERM (what Kubernetes sends) or SIGINT (Ctrl+C).
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = term => tracing::info!("SIGTERM: stopping after the reconciles in flight"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: stopping after the reconciles in flight"),
    }
}
