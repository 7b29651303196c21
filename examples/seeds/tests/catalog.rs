//! The catalogs against the seeds: the seeds' own example JSON round-trips, and a
//! sample of every message type decodes.

use pubsub_core::Event;
use pubsub_seeds::catalog::{brainlife, esn, infrahub, inthe_am};
use serde_json::{json, Value};

/// Decodes `sample` as `E`, checks that encoding it again gives the same JSON, and
/// returns `E`'s topic so the caller can check every topic was covered.
fn round_trip<E: Event + std::fmt::Debug>(sample: Value) -> &'static str {
    let decoded: E = serde_json::from_value(sample.clone())
        .unwrap_or_else(|e| panic!("{} does not decode its sample: {e}", E::TOPIC));
    let encoded = serde_json::to_value(&decoded).expect("encodes");
    assert_eq!(encoded, sample, "{} does not round-trip", E::TOPIC);
    E::TOPIC
}

fn assert_covers(system: &str, mut covered: Vec<&str>, topics: &[&str]) {
    let mut expected = topics.to_vec();
    covered.sort_unstable();
    expected.sort_unstable();
    assert_eq!(covered, expected, "{system}: a message type has no sample");
}

/// The seed's `message:activity` example, with `Date.now()` as a number.
#[test]
fn esn_activity_example_round_trips() {
    let example = json!({
        "verb": "post",
        "language": "en",
        "published": 1_470_000_000_000_i64,
        "actor": {"objectType": "user", "_id": 123, "image": 987654321, "displayName": "Awesome User"},
        "object": {"objectType": "whatsup", "_id": 456},
        "target": [{"objectType": "user", "_id": 798}]
    });
    round_trip::<esn::MessageActivity>(example.clone());
    let activity: esn::MessageActivity = serde_json::from_value(example).unwrap();
    assert_eq!(
        activity.0.actor.display_name.as_deref(),
        Some("Awesome User")
    );
    assert_eq!(activity.0.target[0].id, esn::Id::Number(798));
}

/// The seed's task message, byte for byte as Amaretti published it.
#[test]
fn brainlife_task_example_round_trips() {
    let example = r#"{"_id":"57c4a6fafe948ddd0372e20e","status_msg":"","request_date":"2016-08-30T19:52:46.992Z","status":"requested","progress_key":"brlife.57912b0fef01633d720918cf.57c4a6fafe948ddd0372e20e","user_id":"1","config":{"source_dir":"57c4a6fafe948ddd0372e20d/download"},"instance_id":"57912b0fef01633d720918cf","service":"soichih/bl-product-nifti","name":"diff import","__v":4,"_envs":{"BL_WORKFLOW_ID":"57912b0fef01633d720918cf","BL_WORKFLOW_DIR":"/N/dc2/scratch/hayashis/brainlife/s7-workflows/57912b0fef01633d720918cf","TASK_ID":"57c4a6fafe948ddd0372e20e","TASK_DIR":"/N/dc2/scratch/hayashis/brainlife/s7-workflows/57912b0fef01633d720918cf/57c4a6fafe948ddd0372e20e","SERVICE":"soichih/bl-product-nifti","BL_SERVICE_DIR":"$HOME/.bl/services/soichih/brlife-product-nifti","PROGRESS_URL":"https://soichi7.ppa.iu.edu/api/progress/status/_brlife.57912b0fef01633d720918cf.57c4a6fafe948ddd0372e20e","test":"hello"},"resource_id":"575ee815b62439c67b693b85","create_date":"2016-08-29T21:19:54.592Z","resource_ids":["575ee815b62439c67b693b85"],"resource_deps":[],"deps":["57c4a6fafe948ddd0372e20d"]}"#;
    let value: Value = serde_json::from_str(example).unwrap();
    round_trip::<brainlife::Task>(value);
    let task: brainlife::Task = serde_json::from_str(example).unwrap();
    assert_eq!(
        task.topic(),
        "wf.task.57912b0fef01633d720918cf.57c4a6fafe948ddd0372e20e"
    );
    assert_eq!(task.version, Some(4));
    assert!(!task.is_finished());
}

#[test]
fn brainlife_gateway_frames_decode() {
    let bind: brainlife::BindRequest =
        serde_json::from_value(json!({"bind": {"ex": "wf", "key": "task.57912b.#"}})).unwrap();
    assert_eq!(bind.bind.pattern(), "wf.task.57912b.#");
    let request: brainlife::NotificationRequest = serde_json::from_value(json!({
        "event": "wf.task.finished",
        "handler": "email",
        "config": {"task_id": "1234567abc", "subject": "Email subject", "message": "Hello! your workflow has completed!"}
    }))
    .unwrap();
    assert_eq!(request.handler, brainlife::NotificationHandler::Email);
    assert_eq!(request.event, brainlife::TASK_FINISHED);
    let ok: brainlife::Status = serde_json::from_value(json!({"status": "ok"})).unwrap();
    assert_eq!(ok.status, "ok");
    let relayed: brainlife::Relayed = serde_json::from_value(json!({"msg": {"_id": "t"}})).unwrap();
    assert_eq!(relayed.msg["_id"], "t");
    // The contract sheet's composed frame of an Amaretti `wf.task` event.
    let frame = r#"{"headers":{},"dinfo":{"contentType":"application/json","queue":"amq.gen-4Qm1x9","deliveryTag":{"type":"Buffer","data":[0,0,0,0,0,0,0,3]},"redelivered":false,"exchange":"wf.task","routingKey":"5f1a0c3e9d2b.5f1a0c4a77e1","consumerTag":"node-amqp-31-0.7261"},"msg":{"_id":"5f1a0c4a77e1","instance_id":"5f1a0c3e9d2b","status":"running","status_msg":"","service":"brainlife/app-foo","config":{"_tid":3},"name":"foo"}}"#;
    let relayed: brainlife::Relayed = serde_json::from_str(frame).unwrap();
    let dinfo = relayed.dinfo.expect("dinfo");
    assert_eq!(
        (dinfo.exchange.as_str(), dinfo.routing_key.as_str()),
        ("wf.task", "5f1a0c3e9d2b.5f1a0c4a77e1")
    );
    assert_eq!(relayed.msg["status"], "running");
}

#[test]
fn every_inthe_am_message_decodes() {
    use inthe_am::*;
    let covered = vec![
        round_trip::<GeneralAnnouncement>(
            json!({"title": "Maintenance", "message": "At noon", "system": true}),
        ),
        round_trip::<PersonalMessage>(
            json!({"username": "alice", "title": "Hi", "message": "Welcome"}),
        ),
        round_trip::<LocalSync>(
            json!({"username": "alice", "debounce_id": "x1", "start": "a1", "head": "b2"}),
        ),
        round_trip::<ChangedTask>(json!({"username": "alice", "start": "a1", "head": "b2",
            "task_id": "0b7c1ee0-0c8b-4f3f-9a3e-3b1d2a4c5e6f",
            "task_data": {"description": "Buy milk", "status": "pending", "urgency": 1.8},
            "changes": {"description": [null, "Buy milk"]}})),
        round_trip::<LogMessage>(
            json!({"username": "alice", "md5hash": "d41d8cd9", "last_seen": "2024-01-02T03:04:05Z",
            "created": "2024-01-01T00:00:00Z", "error": false, "silent": false, "message": "Synced", "count": 3}),
        ),
        round_trip::<IncomingMail>(
            json!({"username": "alice", "message_id": 17, "subject": "spam",
            "accepted": false, "rejection_reason": "passlist"}),
        ),
        round_trip::<Sync>(
            json!({"action": "sync", "username": "alice", "org": "inthe_am", "client": "taskwarrior 2.6.2",
            "ip": "127.0.0.1", "port": 53589, "client_key": "6a8e", "record_count": 12, "branch_point": "b1",
            "branch_record_count": 10, "delta_count": 2, "stored_count": 2, "merged_count": 0, "service_duration": 0.031}),
        ),
        round_trip::<CertificateCheck>(
            json!({"username": "alice", "org": "inthe_am", "client": "taskwarrior",
            "ip": "10.0.0.2", "port": 53589, "fingerprint": "ab:cd", "certificate_recognized": true,
            "certificate_accepted": true}),
        ),
    ];
    assert_covers("Inthe.AM", covered, inthe_am::TOPICS);

    // The shapes the running code publishes: a new log entry's dates and a sync's
    // debounce id may be null; Taskd writes indented JSON and may leave counts out.
    round_trip::<LogMessage>(
        json!({"username": "alice", "md5hash": "d41d8cd9", "last_seen": null,
        "created": null, "error": true, "silent": false, "message": "Refused", "count": 1}),
    );
    round_trip::<LocalSync>(
        json!({"username": "alice.smith", "debounce_id": null, "start": "a1", "head": "b2"}),
    );
    let taskd: Sync = serde_json::from_str(
        "{\n   \"action\" : \"sync\",\n   \"username\" : \"alice.smith\",\n   \"org\" : \"inthe_am\",\n   \"client\" : \"task\",\n   \"port\" : 1,\n   \"client_key\" : \"k\",\n   \"record_count\" : 1,\n   \"branch_point\" : \"k\",\n   \"branch_record_count\" : 0,\n   \"delta_count\" : 0,\n   \"service_duration\" : 0.5\n}\n",
    )
    .unwrap();
    assert_eq!(
        (taskd.ip.as_str(), taskd.stored_count, taskd.merged_count),
        ("", 0, 0)
    );
    assert_eq!(taskd.topic(), "sync.alice.smith");

    let accepted: IncomingMail =
        serde_json::from_value(json!({"username": "alice", "message_id": 18,
        "subject": "Buy milk", "accepted": true, "task_id": "0b7c"}))
        .unwrap();
    assert_eq!(
        (accepted.rejection_reason, accepted.task_id.as_deref()),
        (None, Some("0b7c"))
    );
    assert!(
        serde_json::from_value::<IncomingMail>(json!({"username": "a", "message_id": 1,
        "subject": "s", "accepted": false, "rejection_reason": "other"}))
        .is_err()
    );
}

#[test]
fn every_esn_message_decodes() {
    use esn::*;
    let invitation = json!({"_id": "5f1", "type": "signup", "data": {"email": "a@b.c"}});
    let failure = json!({"invitation": invitation, "error": "timeout"});
    let user = json!({"_id": "u1", "firstname": "Ada", "emails": ["ada@example.org"]});
    let change = json!({"author": "u1", "target": "u2", "community": "c1"});
    let membership = json!({"author": "u1", "target": "u2", "membership": {"user": "u2", "workflow": "invitation"}, "community": "c1"});
    let message = json!({"_id": "m1", "objectType": "whatsup", "content": "hello", "author": "u1"});
    let covered = vec![
        round_trip::<InvitationInitFailure>(failure.clone()),
        round_trip::<InvitationInitSuccess>(invitation.clone()),
        round_trip::<InvitationFinalizeFailure>(failure.clone()),
        round_trip::<InvitationFinalizeSuccess>(invitation.clone()),
        round_trip::<InvitationProcessFailure>(failure),
        round_trip::<InvitationProcessSuccess>(invitation),
        round_trip::<LoginFailure>(user.clone()),
        round_trip::<LoginSuccess>(user.clone()),
        round_trip::<MongodbConfigurationAvailable>(Value::Null),
        round_trip::<MongodbConnexionAvailable>(Value::Null),
        round_trip::<MongodbConnectionAvailable>(Value::Null),
        round_trip::<WebserverMongosessionstoreEnabled>(Value::Null),
        round_trip::<RedisConfigurationAvailable>(Value::Null),
        round_trip::<DomainInvitationsSent>(
            json!({"user": user, "domain": {"_id": "d1", "name": "linagora"},
            "emails": ["x@y.z"]}),
        ),
        round_trip::<MessageStored>(message.clone()),
        round_trip::<MessageComment>(
            json!({"_id": "m2", "content": "reply", "inReplyTo": {"objectType": "whatsup", "_id": "m1"}}),
        ),
        round_trip::<MessageActivity>(json!({"verb": "comment", "language": "fr", "published": 1,
            "actor": {"objectType": "user", "_id": "u1"}, "object": {"objectType": "whatsup", "_id": "m2"},
            "target": [], "inReplyTo": [{"objectType": "whatsup", "_id": "m1"}]})),
        round_trip::<CommunityJoin>(change.clone()),
        round_trip::<CommunityLeave>(change.clone()),
        round_trip::<MembershipInvitationCancel>(membership.clone()),
        round_trip::<MembershipInvitationDecline>(membership.clone()),
        round_trip::<MembershipRequestRefuse>(membership.clone()),
        round_trip::<MembershipRequestCancel>(membership),
        round_trip::<MembershipInvite>(change.clone()),
        round_trip::<MembershipRequest>(change),
        round_trip::<NotificationExternal>(
            json!({"title": "t", "target": [{"objectType": "user", "id": "u2"}]}),
        ),
        round_trip::<UsernotificationCreated>(json!({"_id": "n1", "user": "u2", "read": false})),
        round_trip::<GlobalpubsubConfig>(json!({"url": "amqp://localhost"})),
    ];
    assert_covers("ESN", covered, esn::TOPICS);
}

#[test]
fn every_infrahub_message_decodes() {
    use infrahub::*;
    let meta = json!({"request_id": "r1", "initiator_id": "worker-1", "retry_count": 2});
    let covered = vec![
        round_trip::<CheckGeneratorRun>(
            json!({"meta": meta, "generator_definition": {"name": "gen"},
            "commit": "abc", "repository_id": "repo1", "repository_name": "infra",
            "repository_kind": "CoreRepository", "branch_name": "main", "target_id": "t1", "target_name": "site",
            "query": "q", "variables": {"name": "site"}, "validator_id": "v1", "proposed_change": "pc1",
            "context": {"account": "admin"}}),
        ),
        round_trip::<BranchMerged>(
            json!({"meta": {"request_id": ""}, "source_branch": "feature", "target_branch": "main"}),
        ),
        round_trip::<NewPrimaryApi>(json!({"meta": {"request_id": ""}, "worker_id": "worker-2"})),
        round_trip::<FinalizeValidatorExecution>(
            json!({"meta": {"request_id": ""}, "validator_id": "v1",
            "validator_execution_id": "e1", "start_time": "2024-01-01T00:00:00Z",
            "validator_type": "CoreRepositoryValidator", "proposed_change": "pc1"}),
        ),
        round_trip::<GitFileGet>(
            json!({"meta": {"request_id": ""}, "commit": "abc", "file": "README.md",
            "repository_id": "repo1", "repository_name": "infra", "repository_kind": "CoreRepository"}),
        ),
        round_trip::<GitRepositoryConnectivity>(
            json!({"meta": {"request_id": ""}, "repository_name": "infra",
            "repository_location": "https://example.invalid/infra.git"}),
        ),
        round_trip::<RefreshGitFetch>(
            json!({"meta": {"request_id": ""}, "location": "https://example.invalid/infra.git",
            "repository_id": "repo1", "repository_name": "infra", "repository_kind": "CoreRepository",
            "infrahub_branch_name": "main", "infrahub_branch_id": "b1"}),
        ),
        round_trip::<RefreshRegistryBranches>(
            json!({"meta": {"request_id": "", "initiator_id": "worker-1"}}),
        ),
        round_trip::<RefreshRegistryRebasedBranch>(
            json!({"meta": {"request_id": ""}, "branch": "feature"}),
        ),
        round_trip::<RequestGeneratorDefinitionCheck>(
            json!({"meta": {"request_id": ""}, "generator_definition": {"name": "gen"},
            "branch_diff": {"nodes": []}, "proposed_change": "pc1", "source_branch": "feature",
            "source_branch_sync_with_git": true, "destination_branch": "main"}),
        ),
        round_trip::<RequestProposedChangePipeline>(
            json!({"meta": {"request_id": ""}, "proposed_change": "pc1",
            "source_branch": "feature", "source_branch_sync_with_git": false, "destination_branch": "main",
            "check_type": "all"}),
        ),
        round_trip::<RequestProposedChangeRefreshArtifacts>(
            json!({"meta": {"request_id": ""}, "proposed_change": "pc1",
            "source_branch": "feature", "source_branch_sync_with_git": false, "destination_branch": "main",
            "branch_diff": {}}),
        ),
        round_trip::<SendEchoRequest>(json!({"meta": {"request_id": ""}, "message": "ping"})),
        round_trip::<GitFileGetResponse>(
            json!({"meta": {"request_id": ""}, "passed": false, "routing_key": "git.file.get",
            "data": {"error_message": "not found", "http_code": 404},
            "errors": ["not found"], "initial_message": {"file": "missing.md"}}),
        ),
        round_trip::<SendEchoResponse>(json!({"meta": {"request_id": "", "correlation_id": "c1"},
            "passed": true, "routing_key": "send.echo.request", "data": {"response": "Reply to: ping"},
            "errors": []})),
        round_trip::<GitRepositoryConnectivityResponse>(json!({"meta": {"request_id": ""},
            "passed": true, "routing_key": "git.repository.connectivity",
            "data": {"message": "reached", "success": true}, "errors": []})),
    ];
    assert_covers("Infrahub", covered, infrahub::TOPICS);

    let pipeline: RequestProposedChangePipeline =
        serde_json::from_value(json!({"proposed_change": "pc1",
        "source_branch": "f", "source_branch_sync_with_git": false, "destination_branch": "main"}))
        .unwrap();
    assert_eq!(pipeline.check_type, "all", "the seed's default");
    assert_eq!(SendEchoResponse::PRIORITY, 5);
    assert_eq!(RequestProposedChangePipeline::PRIORITY, 5);
    assert_eq!(BranchMerged::PRIORITY, 5);
    assert_eq!(GitFileGet::PRIORITY, 4);
    assert_eq!(RefreshGitFetch::PRIORITY, 3);
}

/// The contract sheet's composed examples (infrahub.md §2), byte for byte: `meta`
/// first, `request_id` an empty string, nulls left out; and a body with keys
/// Infrahub's models ignore, or without `meta`, still decodes.
#[test]
fn infrahub_bodies_are_the_sheets_composed_examples() {
    use infrahub::*;
    let id = "1879c0d2-94ab-3e1f-0b6c-a71e3f09d2c4";
    let ping = SendEchoRequest {
        meta: Meta::rpc(id, "api-callback-6a0e"),
        message: "ping".into(),
    };
    assert_eq!(
        serde_json::to_string(&ping).unwrap(),
        r#"{"meta":{"request_id":"","correlation_id":"1879c0d2-94ab-3e1f-0b6c-a71e3f09d2c4","reply_to":"api-callback-6a0e"},"message":"ping"}"#
    );
    let data = EchoData {
        response: "Reply to: ping".into(),
    };
    let reply = SendEchoResponse::passed(SendEchoRequest::TOPIC, &ping.meta, data);
    assert_eq!(
        serde_json::to_string(&reply).unwrap(),
        r#"{"meta":{"request_id":"","correlation_id":"1879c0d2-94ab-3e1f-0b6c-a71e3f09d2c4"},"passed":true,"routing_key":"send.echo.request","data":{"response":"Reply to: ping"},"errors":[]}"#
    );
    let failed = rpc_error(&ping.meta, "boom".into(), json!({"message": "ping"}));
    assert_eq!(
        serde_json::to_string(&failed).unwrap(),
        r#"{"meta":{"request_id":"","correlation_id":"1879c0d2-94ab-3e1f-0b6c-a71e3f09d2c4"},"passed":false,"routing_key":"rpc_error","data":{},"errors":["boom"],"initial_message":{"message":"ping"}}"#
    );
    // AMQP properties only: priority, headers and expiration never enter the body.
    let with_properties: RefreshRegistryBranches = serde_json::from_value(json!({"meta": {
        "request_id": "r", "priority": 5, "headers": {"traceparent": "00-1"}, "expiration": 3,
        "initiator_id": "w1"}, "unknown": 1}))
    .unwrap();
    assert_eq!(with_properties.meta.priority, Some(5));
    assert_eq!(
        serde_json::to_string(&with_properties).unwrap(),
        r#"{"meta":{"request_id":"r","initiator_id":"w1"}}"#
    );
    let bare: SendEchoRequest = serde_json::from_str(r#"{"message":"hi","x":[1]}"#).unwrap();
    assert_eq!(bare.meta, Meta::default());
    let null_id =
        serde_json::from_str::<SendEchoRequest>(r#"{"meta":{"request_id":null},"message":"hi"}"#);
    assert!(
        null_id.is_err(),
        "request_id is a string, as Infrahub types it"
    );
}

#[test]
fn per_user_topics_fill_the_pattern() {
    let task = inthe_am::ChangedTask {
        username: "alice".into(),
        start: "a".into(),
        head: "b".into(),
        task_id: "t".into(),
        task_data: Default::default(),
        changes: Default::default(),
    };
    assert_eq!(task.topic(), "changed_task.alice");
    let cert: inthe_am::CertificateCheck =
        serde_json::from_value(json!({"username": "bob", "org": "o",
        "client": "c", "ip": "i", "port": 1, "fingerprint": "f", "certificate_recognized": false,
        "certificate_accepted": false}))
        .unwrap();
    assert_eq!(cert.topic(), "taskd.certificate.bob");
    assert!(
        pubsub_core::Pattern::parse(inthe_am::CertificateCheck::TOPIC)
            .unwrap()
            .matches(&cert.topic())
    );
    assert_eq!(
        inthe_am::kind_of("changed_task.alice.smith"),
        "changed_task"
    );
    assert_eq!(inthe_am::kind_of("__general__"), "__general__");
}
