//! Infrahub's message bus (seed `002`): routing keys like `git.file.get` on a topic
//! exchange, each message class with a priority, and typed responses for RPCs.
//!
//! Fields the seed types as `string` are `String`; the ones it leaves `N/A` (ids of
//! objects, the Infrahub context, generator definitions) are JSON values, optional
//! where the seed says they may be missing.
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

/// Meta properties every message carries (Infrahub's `Meta`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// The id of the request this message belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Ties a response to its request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// Where the response goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// The worker or API server that sent the message; a worker skips its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initiator_id: Option<String>,
    /// How often the message was retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_count: Option<u32>,
    /// Further headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Document>,
    /// The validator execution this message is part of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validator_execution_id: Option<String>,
    /// The check execution this message is part of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_execution_id: Option<String>,
    /// The priority the message was sent with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
}

/// `check.generator.run`: a check that runs a generator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckGeneratorRun {
    /// Meta properties for the message.
    #[serde(default)]
    pub meta: Option<Meta>,
    /// The Generator definition.
    pub generator_definition: Value,
    /// The id of the generator instance if it previously existed.
    #[serde(default)]
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
    #[serde(default)]
    pub validator_id: Option<String>,
    /// The unique ID of the Proposed Change.
    #[serde(default)]
    pub proposed_change: Option<String>,
    /// The Infrahub context.
    #[serde(default)]
    pub context: Option<Value>,
}

/// `event.branch.merge`: a branch has been merged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BranchMerged {
    /// Meta properties for the message.
    #[serde(default)]
    pub meta: Option<Meta>,
    /// The source branch.
    pub source_branch: String,
    /// The target branch.
    pub target_branch: String,
    /// The context of the event.
    #[serde(default)]
    pub context: Option<Value>,
}

/// `event.worker.new_primary_api`: a new primary API worker was elected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewPrimaryApi {
    /// Meta properties for the message.
    #[serde(default)]
    pub meta: Option<Meta>,
    /// The worker ID that got elected.
    pub worker_id: String,
}

/// `finalize.validator.execution`: update a validator once all its checks are done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinalizeValidatorExecution {
    /// Meta properties for the message.
    #[serde(default)]
    pub meta: Option<Meta>,
    /// The id of the validator associated with this check.
    pub validator_id: String,
    /// The id of current execution of the associated validator.
    pub validator_execution_id: String,
    /// Start time when the message was first created.
    pub start_time: String,
    /// The type of validator to complete.
    pub validator_type: String,
    /// The Infrahub context.
    #[serde(default)]
    pub context: Option<Value>,
    /// The ID of the proposed change.
    #[serde(default)]
    pub proposed_change: Option<String>,
}

/// `git.file.get`: read a file from a Git repository (an RPC: see [`GitFileGetResponse`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GitFileGet {
    /// Meta properties for the message.
    #[serde(default)]
    pub meta: Option<Meta>,
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
    pub meta: Option<Meta>,
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
    pub meta: Option<Meta>,
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
    pub meta: Option<Meta>,
}

/// `refresh.registry.rebased_branch`: refresh a rebased branch in the local registry
/// (a broadcast).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefreshRegistryRebasedBranch {
    /// Meta properties for the message.
    #[serde(default)]
    pub meta: Option<Meta>,
    /// The branch that was rebased.
    pub branch: String,
}

/// `request.generator_definition.check`: run Generators for a proposed change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestGeneratorDefinitionCheck {
    /// Meta properties for the message.
    #[serde(default)]
    pub meta: Option<Meta>,
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
    #[serde(default)]
    pub context: Option<Value>,
}

/// `request.proposed_change.pipeline`: start the pipeline of a proposed change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestProposedChangePipeline {
    /// Meta properties for the message.
    #[serde(default)]
    pub meta: Option<Meta>,
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
    #[serde(default)]
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
    pub meta: Option<Meta>,
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
    #[serde(default)]
    pub context: Option<Value>,
}

/// `send.echo.request`: an echo request, a ping (an RPC: see [`SendEchoResponse`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendEchoRequest {
    /// Meta properties for the message.
    #[serde(default)]
    pub meta: Option<Meta>,
    /// The message to send.
    pub message: String,
}

/// The response to an RPC: `passed`, the `routing_key` it answers, and `data` whose
/// keys depend on the request (the seed's `data.response`, `data.content`...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response<D> {
    /// Meta properties for the message.
    #[serde(default)]
    pub meta: Option<Meta>,
    /// Whether the request was carried out.
    pub passed: bool,
    /// The routing key of the request.
    pub routing_key: String,
    /// The answer.
    pub data: D,
    /// What went wrong, if anything.
    #[serde(default)]
    pub errors: Vec<String>,
    /// The request as received, for context when there is an error.
    #[serde(default)]
    pub initial_message: Option<Value>,
}

impl<D> Response<D> {
    /// A passed response to the request of routing key `routing_key`.
    pub fn passed(routing_key: &str, data: D) -> Self {
        Response {
            meta: None,
            passed: true,
            routing_key: routing_key.to_owned(),
            data,
            errors: Vec::new(),
            initial_message: None,
        }
    }
}

/// `data` of the response to `git.file.get`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GitFileData {
    /// The file's content.
    #[serde(default)]
    pub content: Option<String>,
    /// Why it could not be read.
    #[serde(default)]
    pub error_message: Option<String>,
    /// The HTTP status of the read.
    #[serde(default)]
    pub http_code: Option<u16>,
}

/// `data` of the response to `send.echo.request`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EchoData {
    /// The response string.
    pub response: String,
}

/// The response to `git.file.get`.
pub type GitFileGetResponse = Response<GitFileData>;
/// The response to `send.echo.request`.
pub type SendEchoResponse = Response<EchoData>;

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
}

/// The patterns Infrahub's shared work queue is bound to, one group per pattern.
pub const WORK_PATTERNS: &[&str] = &[
    "check.*.*",
    "event.*.*",
    "finalize.*.*",
    "git.*.*",
    "refresh.git.*",
    "request.*.*",
    "send.*.*",
];

/// The pattern of the broadcast events every worker receives on its own queue.
pub const BROADCAST_PATTERN: &str = "refresh.registry.*";
