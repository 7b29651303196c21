//! The runner: every case registered per backend, with the cases a backend cannot run
//! reported as ignored (with the capability it lacks), never passed by returning early.

use std::process::ExitCode;
use std::sync::Arc;

use futures::future::BoxFuture;
use libtest_mimic::{Arguments, Failed, Trial};

use super::BusFactory;
use crate::Capabilities;

/// What a case needs from the backend to mean anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Need {
    /// Competing consumers.
    Groups,
    /// A backend *without* groups (the case checks how it refuses them).
    NoGroups,
    /// Acknowledgements with requeue.
    Acks,
    /// Priority order in group queues.
    Priorities,
    /// `*` and `#` subscriptions.
    Patterns,
    /// Headers travel with messages.
    Headers,
    /// Mandatory publishes tell that nobody listens.
    NoResponders,
}

impl Need {
    fn met_by(self, caps: &Capabilities) -> bool {
        match self {
            Need::Groups => caps.groups,
            Need::NoGroups => !caps.groups,
            Need::Acks => caps.acks,
            Need::Priorities => caps.priorities,
            Need::Patterns => caps.patterns,
            Need::Headers => caps.headers,
            Need::NoResponders => caps.no_responders,
        }
    }

    fn reason(self) -> &'static str {
        match self {
            Need::Groups => "needs groups",
            Need::NoGroups => "backend has groups",
            Need::Acks => "needs acks",
            Need::Priorities => "needs priorities",
            Need::Patterns => "needs patterns",
            Need::Headers => "needs headers",
            Need::NoResponders => "needs no-responders",
        }
    }
}

/// One conformance case: a behaviour, and what it needs to run.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    /// The case's function name in [`cases`](super::cases).
    pub name: &'static str,
    /// What the backend must be able to do.
    pub needs: &'static [Need],
    /// Runs the case.
    pub run: for<'a> fn(&'a dyn BusFactory) -> BoxFuture<'a, ()>,
}

impl Case {
    /// Why the case cannot run on a backend with `caps`, if it cannot.
    pub fn skip_reason(&self, caps: &Capabilities) -> Option<&'static str> {
        self.needs
            .iter()
            .find(|need| !need.met_by(caps))
            .map(|need| need.reason())
    }
}

/// Lists the cases with their needs, once, as [`all`](super::cases::all).
macro_rules! cases {
    ($($case:ident $(needs $($need:ident),+)?;)*) => {
        /// Every conformance case, with what it needs.
        pub fn all() -> Vec<$crate::testkit::Case> {
            vec![$($crate::testkit::Case {
                name: stringify!($case),
                needs: &[$($($crate::testkit::Need::$need),+)?],
                run: |factory| Box::pin($case(factory)),
            }),*]
        }
    };
}
pub(crate) use cases;

type SharedFactory = Arc<dyn BusFactory + Send>;

/// The conformance suite for one or more backends, as a test binary's `main` (with
/// `harness = false`). Each case is a test named `backend::case`; a case the backend
/// cannot run is listed as ignored, with the capability it lacks.
///
/// ```no_run
/// # use pubsub_core::PubSub;
/// async fn bus() -> PubSub {
///     pubsub_local::LocalBackend::new().into()
/// }
///
/// fn main() -> std::process::ExitCode {
///     pubsub_core::testkit::Conformance::new().backend("local", bus).run()
/// }
/// ```
#[derive(Default)]
pub struct Conformance {
    backends: Vec<(String, SharedFactory)>,
}

impl Conformance {
    /// No backend yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a backend under `name`, built by `factory`.
    pub fn backend(mut self, name: &str, factory: impl BusFactory + Send + 'static) -> Self {
        self.backends.push((name.to_owned(), Arc::new(factory)));
        self
    }

    /// Runs the suite with the command line's filters; the exit code tells the outcome.
    pub fn run(self) -> ExitCode {
        let arguments = Arguments::from_args();
        let mut trials = Vec::new();
        for (backend, factory) in self.backends {
            let caps = runtime().block_on(async { factory.bus().await.capabilities() });
            for case in super::cases::all() {
                let name = format!("{backend}::{}", case.name);
                let skip = case.skip_reason(&caps);
                let factory = Arc::clone(&factory);
                let trial = Trial::test(name, move || run_case(case, factory, skip));
                trials.push(match skip {
                    Some(reason) => trial.with_kind(reason).with_ignored_flag(true),
                    None => trial,
                });
            }
        }
        libtest_mimic::run(&arguments, trials).exit_code()
    }
}

impl std::fmt::Debug for Conformance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.backends.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Conformance")
            .field("backends", &names)
            .finish()
    }
}

fn run_case(case: Case, factory: SharedFactory, skip: Option<&str>) -> Result<(), Failed> {
    if let Some(reason) = skip {
        return Err(format!("cannot run on this backend: {reason}").into());
    }
    runtime().block_on((case.run)(&*factory));
    Ok(())
}

/// Each case gets a runtime of its own, as `#[tokio::test(flavor = "multi_thread")]`.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime for a conformance case")
}
