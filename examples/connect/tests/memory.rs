//! `memory://`: a new in-process bus, or the one of a name.

use pubsub_connect::connect;
use pubsub_core::testkit::support::{next, text, unique, within};
use pubsub_core::Error;

#[tokio::test]
async fn buses_of_one_name_are_one_bus() {
    let name = unique("node").replace('.', "-");
    let a = connect(&format!("memory://{name}")).await.unwrap();
    let b = connect(&format!("memory://{name}")).await.unwrap();
    let mut stored = a.topic("message:stored").subscribe().await.unwrap();
    b.topic("message:stored").publish(&456).await.unwrap();
    assert_eq!(
        text(&next(&mut stored, "the other node's message").await),
        "456"
    );
}

#[tokio::test]
async fn each_unnamed_memory_url_is_a_bus_of_its_own() {
    let a = connect("memory://").await.unwrap();
    let b = connect("memory://").await.unwrap();
    let _listening = a.topic("send.echo.request").subscribe().await.unwrap();
    // A request knows at once whether anyone on its bus listens: nobody on b does.
    let asked = within(
        "a request on the other bus",
        b.topic("send.echo.request")
            .request::<_, String>(&"ping", std::time::Duration::from_secs(30)),
    )
    .await;
    assert!(
        matches!(asked, Err(Error::NoResponders { .. })),
        "{asked:?}"
    );
}
