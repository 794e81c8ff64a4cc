//! Failures that are retried with backoff (permanent ones are written as conditions inside
//! reconcile and never come back as errors).

use kube::runtime::finalizer;

use crate::controller::database_server::connect::ServerProblem;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}: {source}")]
    Kube {
        what: &'static str,
        source: kube::Error,
    },
    #[error("{0}")]
    Server(ServerProblem),
    #[error("{0}")]
    Transient(String),
    #[error(transparent)]
    Finalizer(Box<finalizer::Error<Error>>),
}

impl Error {
    /// The category in `servicedb_reconcile_errors_total{reason}`.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube { .. } => "KubernetesApi",
            Error::Server(problem) => problem.reason(),
            Error::Transient(_) => "Transient",
            Error::Finalizer(e) => crate::controller::metrics::finalizer_reason(e, Error::reason),
        }
    }

    pub fn kube(what: &'static str) -> impl FnOnce(kube::Error) -> Error {
        move |source| Error::Kube { what, source }
    }
}
