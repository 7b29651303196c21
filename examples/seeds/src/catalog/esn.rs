//! OpenPaaS ESN's topics (seed `001`): `pubsub.local` and `pubsub.global` carry the
//! same `topic(name).publish(data)` messages; `message:stored` and
//! `message:activity` also go global.
//!
//! ESN topics are fixed names, and several share one payload shape (the three
//! invitation failures carry `{invitation, error}`), so each topic is a newtype
//! around its shape: the type names the topic, the shape is written once.
//!
//! ```
//! use pubsub_core::Event;
//! use pubsub_seeds::catalog::esn::{MessageStored, TOPICS};
//!
//! assert_eq!(MessageStored::TOPIC, "message:stored");
//! assert!(TOPICS.contains(&"message:activity"));
//! ```

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{events, Document};

/// An ESN object id: a Mongo ObjectId string, or a number as in the seed's example.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Id {
    /// A numeric id (`_id: 123`).
    Number(i64),
    /// An ObjectId or other textual id.
    Text(String),
}

/// `{invitation, error}`: an invitation step failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvitationError {
    /// The invitation document.
    pub invitation: Document,
    /// What went wrong.
    pub error: Value,
}

/// `{user, domain, emails}`: domain invitations were sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainInvitations {
    /// Who sent them.
    pub user: Value,
    /// The domain invited to.
    pub domain: Value,
    /// Who was invited.
    pub emails: Vec<String>,
}

/// A comment: a message with an `inReplyTo` field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comment {
    /// The message this one answers.
    #[serde(rename = "inReplyTo")]
    pub in_reply_to: Value,
    /// The rest of the message document.
    #[serde(flatten)]
    pub message: Document,
}

/// An actor, object or target of an activity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivityObject {
    /// `user`, `whatsup`, `community`...
    #[serde(rename = "objectType")]
    pub object_type: String,
    /// Its id.
    #[serde(rename = "_id")]
    pub id: Id,
    /// Its avatar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<Id>,
    /// Its display name.
    #[serde(
        rename = "displayName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub display_name: Option<String>,
}

/// A timeline entry: some actor did `verb` on a message, maybe for some targets.
///
/// ```
/// use pubsub_seeds::catalog::esn::TimelineEntry;
///
/// let entry: TimelineEntry = serde_json::from_str(r#"{"verb":"post","language":"en",
///   "published":1,"actor":{"objectType":"user","_id":123},
///   "object":{"objectType":"whatsup","_id":456},"target":[]}"#).unwrap();
/// assert_eq!(entry.verb, "post");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// What was done: `post`, `comment`...
    pub verb: String,
    /// The message's language.
    pub language: String,
    /// When, in milliseconds since the epoch (`Date.now()`).
    pub published: i64,
    /// Who did it.
    pub actor: ActivityObject,
    /// What it was done on.
    pub object: ActivityObject,
    /// Whom it is for.
    pub target: Vec<ActivityObject>,
    /// Any further timeline fields, kept as they came.
    #[serde(flatten)]
    pub extra: Document,
}

/// `{author, target, community}`: a community membership change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommunityChange {
    /// Who did it.
    pub author: Id,
    /// Whom or what it concerns.
    pub target: Id,
    /// The community's id.
    pub community: Id,
}

/// `{author, target, membership, community}`: a membership invitation or request
/// was cancelled, declined or refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MembershipChange {
    /// A manager's or attendee's id.
    pub author: Id,
    /// An attendee's or community's id.
    pub target: Id,
    /// The membership data structure.
    pub membership: Document,
    /// The community's id.
    pub community: Id,
}

/// Declares one transparent newtype per topic around its payload shape.
macro_rules! topics {
    ($( $(#[$doc:meta])* $name:ident($payload:ty) => $topic:literal; )*) => {
        $(
            $(#[$doc])*
            #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
            #[serde(transparent)]
            pub struct $name(pub $payload);
        )*
        events! { $($name => $topic;)* }
    };
}

topics! {
    /// An invitation initialization failed.
    InvitationInitFailure(InvitationError) => "invitation:init:failure";
    /// An invitation initialization succeeded.
    InvitationInitSuccess(Document) => "invitation:init:success";
    /// An invitation finalization failed.
    InvitationFinalizeFailure(InvitationError) => "invitation:finalize:failure";
    /// An invitation finalization succeeded.
    InvitationFinalizeSuccess(Document) => "invitation:finalize:success";
    /// An invitation process failed.
    InvitationProcessFailure(InvitationError) => "invitation:process:failure";
    /// An invitation process succeeded.
    InvitationProcessSuccess(Document) => "invitation:process:success";
    /// A user login failed (the user).
    LoginFailure(Document) => "login:failure";
    /// A user logged in (the user).
    LoginSuccess(Document) => "login:success";
    /// The MongoDB configuration is available (no data).
    MongodbConfigurationAvailable(()) => "mongodb:configurationAvailable";
    /// The connection to MongoDB is established (no data), as the topic list spells it.
    MongodbConnexionAvailable(()) => "mongodb:connexionAvailable";
    /// The connection to MongoDB is established (no data), as the summary table spells it.
    MongodbConnectionAvailable(()) => "mongodb:connectionAvailable";
    /// The web server's session store moved to MongoDB (no data).
    WebserverMongosessionstoreEnabled(()) => "webserver:mongosessionstoreEnabled";
    /// The Redis configuration is available (no data).
    RedisConfigurationAvailable(()) => "redis:configurationAvailable";
    /// Domain invitations were sent.
    DomainInvitationsSent(DomainInvitations) => "domain:invitations:sent";
    /// A message was stored (the message, with its id). Also global.
    MessageStored(Document) => "message:stored";
    /// A comment was added to a message.
    MessageComment(Comment) => "message:comment";
    /// Some activity on a message. Also global.
    MessageActivity(TimelineEntry) => "message:activity";
    /// A user joined a community.
    CommunityJoin(CommunityChange) => "community:join";
    /// A user left a community.
    CommunityLeave(CommunityChange) => "community:leave";
    /// A manager withdrew an invitation.
    MembershipInvitationCancel(MembershipChange) => "community:membership:invitation:cancel";
    /// An attendee declined an invitation.
    MembershipInvitationDecline(MembershipChange) => "community:membership:invitation:decline";
    /// A manager refused a membership request.
    MembershipRequestRefuse(MembershipChange) => "community:membership:request:refuse";
    /// An attendee withdrew a membership request.
    MembershipRequestCancel(MembershipChange) => "community:membership:request:cancel";
    /// A manager invited a user.
    MembershipInvite(CommunityChange) => "community:membership:invite";
    /// A user asked to join.
    MembershipRequest(CommunityChange) => "community:membership:request";
    /// An external notification (the summary table names it, the seed gives no shape).
    NotificationExternal(Document) => "notification:external";
    /// A user notification was created (summary table; no shape given).
    UsernotificationCreated(Document) => "usernotification:created";
    /// The global pubsub's configuration (summary table; no shape given).
    GlobalpubsubConfig(Document) => "globalpubsub:config";
}

/// The topics ESN publishes on the global bus as well as the local one.
pub const GLOBAL_TOPICS: [&str; 2] = [
    <MessageStored as pubsub_core::Event>::TOPIC,
    <MessageActivity as pubsub_core::Event>::TOPIC,
];
