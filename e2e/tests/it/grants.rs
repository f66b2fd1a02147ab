//! Grants every node enforces (DESIGN.md, "Trust model"): a client certificate names
//! what it may do per bucket, and every replica refuses the rest with a clear error,
//! changing nothing. Real daemons on 127.0.0.1.

use andromede_client::{Client, ClientError, ListOptions, PutObjectOptions};

use crate::objects::{body, bucket, get, put};
use crate::repair::Cluster;

/// The error of an operation that must be refused for want of a grant.
fn refused<T: std::fmt::Debug>(result: Result<T, ClientError>, what: &str) -> String {
    let error = result.expect_err(&format!("{what} succeeded without its grant"));
    let text = error.to_string();
    assert!(text.contains("this client may not"), "{what}: {text}");
    text
}

/// The buckets `client` lists.
async fn bucket_names(client: &Client) -> Vec<String> {
    let listed = client.list_buckets().await.unwrap();
    listed.into_iter().map(|(name, _)| name).collect()
}

async fn put_result(client: &Client, bucket: &str, key: &str) -> Result<(), ClientError> {
    let data = body(1_000, 9);
    client
        .put_object(
            bucket,
            key,
            &data[..],
            PutObjectOptions {
                size_hint: Some(data.len() as u64),
                ..PutObjectOptions::default()
            },
        )
        .await
        .map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_does_only_what_its_grants_allow_on_every_node() {
    let cluster = Cluster::start(3).await;
    let admin = &cluster.client;
    for name in ["photos", "docs"] {
        admin.create_bucket(name, bucket(2, 1, &[])).await.unwrap();
        put(admin, name, "a", &body(2_000, 1)).await;
    }

    // Read only: reads and lists its bucket, writes and deletes nothing, sees no other.
    let reader = cluster.client_granted(&["photos:read"], 3).await;
    assert_eq!(get(&reader, "photos", "a").await, body(2_000, 1));
    let listed = reader
        .list_objects("photos", &ListOptions::default())
        .await
        .unwrap();
    assert_eq!(listed.objects.len(), 1);
    let text = refused(put_result(&reader, "photos", "b").await, "a reader's PUT");
    assert!(text.contains("may not write bucket photos"), "{text}");
    let text = refused(
        reader.delete_object("photos", "a").await,
        "a reader's DELETE",
    );
    assert!(text.contains("may not delete from bucket photos"), "{text}");
    let text = refused(
        reader.list_objects("docs", &ListOptions::default()).await,
        "listing another bucket",
    );
    assert!(text.contains("may not read bucket docs"), "{text}");
    refused(
        reader.get_object_bytes("docs", "a").await,
        "reading another bucket",
    );
    assert_eq!(bucket_names(&reader).await, ["photos"]);
    // The same write sent straight to the replicas, past the client library's own check:
    // every replica refuses it.
    let index = andromede_cluster::meta::key::RecordKey {
        table: andromede_cluster::meta::key::Table::ObjectIndex,
        partition: "photos".into(),
        sort: b"a".to_vec(),
    };
    let forged =
        andromede_cluster::meta::record::Record::tombstone(reader.meta().version_after(None));
    let error = reader
        .meta()
        .apply("photos", vec![(index, forged)])
        .await
        .expect_err("a reader's raw index write was applied");
    assert!(
        error
            .to_string()
            .contains("this client may not delete from bucket photos"),
        "{error}"
    );

    // Write only: puts, but neither deletes nor creates buckets.
    let writer = cluster.client_granted(&["photos:write"], 3).await;
    put(&writer, "photos", "b", &body(3_000, 2)).await;
    refused(
        writer.delete_object("photos", "a").await,
        "a writer's DELETE",
    );
    let text = refused(
        writer.create_bucket("fresh", bucket(2, 1, &[])).await,
        "a writer creating a bucket",
    );
    assert!(text.contains("bucket fresh"), "{text}");
    refused(
        put_result(&writer, "docs", "b").await,
        "a write to another bucket",
    );

    // No grant at all: nothing.
    let stranger = cluster.client_granted(&["other:all"], 3).await;
    refused(
        stranger.get_object_bytes("photos", "a").await,
        "a read without a grant",
    );

    // Nothing the refused requests carried changed anything.
    assert_eq!(get(admin, "photos", "a").await, body(2_000, 1));
    assert_eq!(get(admin, "photos", "b").await, body(3_000, 2));
    assert_eq!(get(admin, "docs", "a").await, body(2_000, 1));
    assert!(admin.head_object("docs", "b").await.is_err());
    assert_eq!(bucket_names(admin).await, ["docs", "photos"]);
}
