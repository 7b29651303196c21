//! Infrahub's message bus (seed `002`): routing keys like `git.file.get` on a topic
//! exchange, each message class with a priority, and typed responses for RPCs.
//!
//! Bodies are JSON as Infrahub 1.4.13 writes them (contract sheet
//! `infrahub.md` §2): `meta` first, then the message's own fields, `None` fields
//! left out; unknown keys are ignored when decoding, and a missing `meta` is the
//! default one. Of these messages 1.4.13 consumes only `git.file.get`,
//! `git.repository.connectivity`, `refresh.git.fetch`, `refresh.registry.*` and
//! `send.echo.request`; the others are the seed document's and 1.4.13 drops them.
//!
//! ```
//! use pubsub_core::Event;
//! use pubsub_seeds::catalog::infrahub::{GitFileGet, SendEchoRequest};
//!
//! assert_eq!((SendEchoRequest::TOPIC, SendEchoRequest::PRIORITY), ("send.echo.request", 5));
//! assert_eq!((GitFileGet::TOPIC, GitFileGet::PRIORITY), ("git.file.get", 4));
//! ```

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{events, Document};

/// Meta properties every message carries (Infrahub's `Meta`), serialised as
/// Infrahub 1.4.13 does: `request_id` always (a string, `""` by default), the other
/// fields only when set, and `headers`, `priority` and `expiration` never (they travel
/// as AMQP properties; decoding accepts them).
///
/// ```
/// use pubsub_seeds::catalog::infrahub::Meta;
///
/// let meta = Meta::rpc("c-1", "api-callback-1");
/// assert_eq!(
///     serde_json::to_string(&meta).unwrap(),
///     r#"{"request_id":"","correlation_id":"c-1","reply_to":"api-callback-1"}"#
/// );
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// The id of the request this message belongs to (never null: Infrahub types it
    /// `str` and drops a message whose `request_id` is null).
    #[serde(default)]
    pub request_id: String,
    /// Ties a response to its request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// The queue the response goes to; its presence makes a handler reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// The worker or API server that sent the message; a worker skips its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initiator_id: Option<String>,
    /// How often the message was retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_count: Option<u32>,
    /// AMQP headers: read if present, never written into the body.
    #[serde(default, skip_serializing)]
    pub headers: Option<Document>,
    /// The validator execution this message is part of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validator_execution_id: Option<String>,
    /// The check execution this message is part of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_execution_id: Option<String>,
    /// The AMQP priority: read if present, never written into the body.
    #[serde(default, skip_serializing)]
    pub priority: Option<u8>,
    /// The AMQP expiration in seconds: read if present, never written into the body.
    #[serde(default, skip_serializing)]
    pub expiration: Option<u64>,
}

impl Meta {
    /// The meta of an RPC, as Infrahub's `rpc()` makes it: only `request_id`,
    /// `correlation_id` and `reply_to` (the requester's callback queue).
    pub fn rpc(correlation_id: &str, reply_to: &str) -> Self {
        Meta {
            correlation_id: Some(correlation_id.to_owned()),
            reply_to: Some(reply_to.to_owned()),
            ..Meta::default()
        }
    }

    /// The meta of a message sent by `initiator` (a worker id).
    pub fn from_initiator(initiator: &str) -> Self {
        Meta {
            initiator_id: Some(initiator.to_owned()),
            ..Meta::default()
        }
    }

    /// The meta of the reply to a request of meta `self`: its `correlation_id`.
    pub fn reply(&self) -> Self {
        Meta {
            correlation_id: self.correlation_id.clone(),
            ..Meta::default()
        }
    }
}

/// `check.generator.run`: a check that runs a generator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckGeneratorRun {
    /// Meta properties for the message.
    #[serde(default)]
    pub meta: Meta,
    /// The Generator definition.
    pub generator_definition: Value,
    /// The id of the generator instance if it previously existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator_instance: Option<String>,
    /// The commit to target.
    pub commit: String,
    /// The unique ID of the Repository.
    pub repository_id: String,
    /// The name of the Repository.
    pub repository_name: String,
    /// The kind of the Repository.
    pub repository_kind: String,
    /// The branch where the check is run.
    pub branch_name: String,
    /// The ID of the target object for this generator.
    pub target_id: String,
    /// Name of the generator target.
    pub target_name: String,
    /// The name of the query to use when collecting data.
    pub query: String,
    /// Input variables when running the generator.
    pub variables: Document,
    /// The ID of the validator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validator_id: Option<String>,
    /// The unique ID of the Proposed Change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposed_change: Option<String>,
    /// The Infrahub context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Value>,
}

/// `event.branch.merge`: a branch has been merged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BranchMerged {
    /// Meta properties for the message.
    #[serde(default)]
    pub meta: Meta,
    /// The source branch.
    pub source_branch: String,
    /// The target branch.
    pub target_branch: String,
    /// The context of the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Value>,
}

/// `event.worker.new_primary_api`: a new primary API worker was elected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewPrimaryApi {
    /// Meta properties for the message.
    #[serde(default)]
    pub meta: Meta,
    /// The worker ID that got elected.
    pub worker_id: String,
}

/// `finalize.validator.execution`: update a validator once all its checks are done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinalizeValidatorExecution {
    /// Meta properties for the message.
    #[serde(default)]
    pub meta: Meta,
    /// The id of the validator associated with this check.
    pub validator_id: String,
    /// The id of current execution of the associated validator.
    pub validator_execution_id: String,
    /// Start time when the message was first created.
    pub start_time: String,
    /// The type of validator to complete.
    pub validator_type: String,
    /// The Infrahub context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Value>,
    /// The ID of the proposed change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposed_change: Option<String>,
}

/// `git.file.get`: read a file from a Git repository (an RPC: see [`GitFileGetResponse`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GitFileGet {
    /// Meta properties for the message.
    #[serde(default)]
    pub meta: Meta,
    /// The commit id to use to access the file.
    pub commit: String,
    /// The path and filename within the repository.
    pub file: String,
    /// The unique ID of the Repository.
    pub repository_id: String,
    /// The name of the repository.
    pub repository_name: String,
    /// The kind of the repository.
    pub repository_kind: String,
}

/// `git.repository.connectivity`: validate connectivity and credentials to a remote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GitRepositoryConnectivity {
    /// Meta properties for the message.
    #[serde(default)]
    pub meta: Meta,
    /// The name of the repository.
    pub repository_name: String,
    /// The location of repository.
    pub repository_location: String,
}

/// `refresh.git.fetch`: fetch a repository's remote changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefreshGitFetch {
    /// Meta properties for the message.
    #[serde(default)]
    pub meta: Meta,
    /// The external URL of the repository.
    pub location: String,
    /// The unique ID of the repository.
    pub repository_id: String,
    /// The name of the repository.
    pub repository_name: String,
    /// The type of repository.
    pub repository_kind: String,
    /// Infrahub branch on which to sync the remote repository.
    pub infrahub_branch_name: String,
    /// Id of the Infrahub branch on which to sync the remote repository.
    pub infrahub_branch_id: String,
}

/// `refresh.registry.branches`: reload branch data into the registry (a broadcast:
/// every worker refreshes).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RefreshRegistryBranches {
    /// Meta properties for the message.
    #[serde(default)]
    pub meta: Meta,
}

/// `refresh.registry.rebased_branch`: refresh a rebased branch in the local registry
/// (a broadcast).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefreshRegistryRebasedBranch {
    /// Meta properties for the message.
    #[serde(default)]
    pub meta: Meta,
    /// The branch that was rebased.
    pub branch: String,
}

/// `request.generator_definition.check`: run Generators for a proposed change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestGeneratorDefinitionCheck {
    /// Meta properties for the message.
    #[serde(default)]
    pub meta: Meta,
    /// The Generator Definition.
    pub generator_definition: Value,
    /// The calculated diff between the two branches.
    pub branch_diff: Value,
    /// The unique ID of the Proposed Change.
    pub proposed_change: String,
    /// The source branch.
    pub source_branch: String,
    /// Indicates if the source branch should sync with git.
    pub source_branch_sync_with_git: bool,
    /// The target branch.
    pub destination_branch: String,
    /// The Infrahub context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Value>,
}

/// `request.proposed_change.pipeline`: start the pipeline of a proposed change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestProposedChangePipeline {
    /// Meta properties for the message.
    #[serde(default)]
    pub meta: Meta,
    /// The unique ID of the proposed change.
    pub proposed_change: String,
    /// The source branch of the proposed change.
    pub source_branch: String,
    /// Indicates if the source branch should sync with git.
    pub source_branch_sync_with_git: bool,
    /// The destination branch of the proposed change.
    pub destination_branch: String,
    /// Restricts the pipeline to one type of job; `all` by default.
    #[serde(default = "all_checks")]
    pub check_type: String,
    /// The context of the task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Value>,
}

fn all_checks() -> String {
    "all".to_owned()
}

/// `request.proposed_change.refresh_artifacts`: refresh the artifacts a proposed
/// change affects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestProposedChangeRefreshArtifacts {
    /// Meta properties for the message.
    #[serde(default)]
    pub meta: Meta,
    /// The unique ID of the Proposed Change.
    pub proposed_change: String,
    /// The source branch of the proposed change.
    pub source_branch: String,
    /// Indicates if the source branch should sync with git.
    pub source_branch_sync_with_git: bool,
    /// The destination branch of the proposed change.
    pub destination_branch: String,
    /// The calculated diff between the two branches.
    pub branch_diff: Value,
    /// The context of the task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Value>,
}

/// `send.echo.request`: an echo request, a ping (an RPC: see [`SendEchoResponse`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendEchoRequest {
    /// Meta properties for the message.
    #[serde(default)]
    pub meta: Meta,
    /// The message to send.
    pub message: String,
}

/// The response to an RPC (Infrahub's `InfrahubResponse`): `meta` (the request's
/// `correlation_id`), `passed`, the `routing_key` it answers (`rpc_error` when the
/// handler failed), `data` whose keys depend on the request, `errors`, and the
/// request itself when it failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response<D> {
    /// Meta properties for the message.
    #[serde(default)]
    pub meta: Meta,
    /// Whether the request was carried out.
    #[serde(default = "passed")]
    pub passed: bool,
    /// The routing key of the request.
    pub routing_key: String,
    /// The answer.
    pub data: D,
    /// What went wrong, if anything.
    #[serde(default)]
    pub errors: Vec<String>,
    /// The request as received, when the handler failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_message: Option<Value>,
}

fn passed() -> bool {
    true
}

impl<D> Response<D> {
    /// A passed response to the request of routing key `routing_key` and meta
    /// `request`.
    pub fn passed(routing_key: &str, request: &Meta, data: D) -> Self {
        Response {
            meta: request.reply(),
            passed: true,
            routing_key: routing_key.to_owned(),
            data,
            errors: Vec::new(),
            initial_message: None,
        }
    }
}

/// The key of the response a failed handler sends instead of its own.
pub const RPC_ERROR: &str = "rpc_error";

/// The response a handler that failed sends (Infrahub's `RPCErrorResponse`):
/// `passed: false`, routing key [`RPC_ERROR`], no data, the error, and the request.
pub fn rpc_error(request: &Meta, error: String, initial_message: Value) -> Response<Document> {
    Response {
        meta: request.reply(),
        passed: false,
        routing_key: RPC_ERROR.to_owned(),
        data: Document::new(),
        errors: vec![error],
        initial_message: Some(initial_message),
    }
}

/// `data` of the response to `git.file.get`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GitFileData {
    /// The file's content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Why it could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// The HTTP status of the read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_code: Option<u16>,
}

/// `data` of the response to `send.echo.request`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EchoData {
    /// The response string.
    pub response: String,
}

/// `data` of the response to `git.repository.connectivity`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectivityData {
    /// What the check found.
    pub message: String,
    /// Whether the repository could be reached.
    pub success: bool,
}

/// The response to `git.file.get`.
pub type GitFileGetResponse = Response<GitFileData>;
/// The response to `send.echo.request`.
pub type SendEchoResponse = Response<EchoData>;
/// The response to `git.repository.connectivity`.
pub type GitRepositoryConnectivityResponse = Response<ConnectivityData>;

events! {
    CheckGeneratorRun => "check.generator.run", priority 3;
    BranchMerged => "event.branch.merge", priority 5;
    NewPrimaryApi => "event.worker.new_primary_api", priority 3;
    FinalizeValidatorExecution => "finalize.validator.execution", priority 3;
    GitFileGet => "git.file.get", priority 4;
    GitRepositoryConnectivity => "git.repository.connectivity", priority 3;
    RefreshGitFetch => "refresh.git.fetch", priority 3;
    RefreshRegistryBranches => "refresh.registry.branches", priority 3;
    RefreshRegistryRebasedBranch => "refresh.registry.rebased_branch", priority 3;
    RequestGeneratorDefinitionCheck => "request.generator_definition.check", priority 3;
    RequestProposedChangePipeline => "request.proposed_change.pipeline", priority 5;
    RequestProposedChangeRefreshArtifacts => "request.proposed_change.refresh_artifacts", priority 3;
    SendEchoRequest => "send.echo.request", priority 5;
    GitFileGetResponse => "git.file.get", priority 4;
    SendEchoResponse => "send.echo.request", priority 5;
    GitRepositoryConnectivityResponse => "git.repository.connectivity", priority 3;
}

/// The binding keys of Infrahub's shared work queue `infrahub.rpcs`, on both
/// `infrahub.events` and `infrahub.dlx` (contract sheet §1).
pub const WORK_PATTERNS: &[&str] = &[
    "check.*.*",
    "event.*.*",
    "finalize.*.*",
    "git.*.*",
    "refresh.webhook.*",
    "request.*.*",
    "send.*.*",
    "schema.*.*",
    "transform.*.*",
    "trigger.*.*",
];

/// The broadcasts every API server and git agent receives on a queue of its own
/// (`refresh.registry.*`) and the ones only git agents receive (`refresh.git.*`).
pub const BROADCAST_PATTERNS: &[&str] = &["refresh.registry.*", "refresh.git.*"];

/// A message of Infrahub's bus, seen through its `meta`.
///
/// ```
/// use pubsub_seeds::catalog::infrahub::{HasMeta, Meta, SendEchoRequest};
///
/// let mut ping = SendEchoRequest { meta: Meta::from_initiator("w1"), message: "ping".into() };
/// *ping.meta_mut() = Meta::rpc("c-1", "api-callback-1");
/// assert_eq!(ping.meta().initiator_id, None);
/// ```
pub trait HasMeta {
    /// The message's meta.
    fn meta(&self) -> &Meta;
    /// The message's meta, to change.
    fn meta_mut(&mut self) -> &mut Meta;
}

macro_rules! has_meta {
    ($($ty:ty),* $(,)?) => {
        $(
            impl HasMeta for $ty {
                fn meta(&self) -> &Meta {
                    &self.meta
                }
                fn meta_mut(&mut self) -> &mut Meta {
                    &mut self.meta
                }
            }
        )*
    };
}

has_meta!(
    CheckGeneratorRun,
    BranchMerged,
    NewPrimaryApi,
    FinalizeValidatorExecution,
    GitFileGet,
    GitRepositoryConnectivity,
    RefreshGitFetch,
    RefreshRegistryBranches,
    RefreshRegistryRebasedBranch,
    RequestGeneratorDefinitionCheck,
    RequestProposedChangePipeline,
    RequestProposedChangeRefreshArtifacts,
    SendEchoRequest,
);

impl<D> HasMeta for Response<D> {
    fn meta(&self) -> &Meta {
        &self.meta
    }
    fn meta_mut(&mut self) -> &mut Meta {
        &mut self.meta
    }
}
