//! A real node daemon (store + swarm + shard service) on 127.0.0.1, driven by a client
//! swarm over real TCP: the shard protocol works end to end, and malformed or oversized
//! requests get errors while the node keeps serving.

use andromede_cluster::net::message::{
    RemoteErrorCode, ShardRequest, ShardResponse, decode_shard_response,
};
use andromede_cluster::net::{NetConfig, NetHandle, PeerId, PeerRole, Protocol, spawn};
use andromede_cluster::shard::hash::shard_id;
use andromede_node::daemon::Daemon;
use andromede_proto::{Message, ShardId, pb};
use bytes::Bytes;

use crate::{listen_addr, start_daemon};

/// A client swarm admitted to the daemon's cluster and connected to it.
async fn connect_client(daemon: &Daemon) -> (NetHandle, PeerId) {
    let (identity, admission) = crate::daemons::client_identity();
    let (client, _inbound) = spawn(identity, admission, NetConfig::new(PeerRole::Client)).unwrap();
    let peer = client.dial(listen_addr(daemon).await).await.unwrap();
    (client, peer)
}

/// A peer certified as a node (as the cluster's own maintenance asks), connected.
async fn connect_node(daemon: &Daemon) -> (NetHandle, PeerId) {
    let dir = tempfile::tempdir().unwrap();
    crate::daemons::certify_node(dir.path(), "z", "FR");
    let data = andromede_node::data_dir::DataDir::new(dir.path());
    let identity = andromede_cluster::net::load_or_create_identity(&data.identity_key()).unwrap();
    let admission = andromede_node::credentials::load_admission(
        &data,
        &crate::daemons::test_authority().public(),
        &identity.public().to_peer_id(),
    )
    .unwrap();
    let (node, _inbound) = spawn(identity, admission, NetConfig::new(PeerRole::Node)).unwrap();
    let peer = node.dial(listen_addr(daemon).await).await.unwrap();
    (node, peer)
}

async fn call(client: &NetHandle, node: PeerId, request: &ShardRequest) -> ShardResponse {
    let bytes = client
        .request(node, Protocol::Shard, request.encode())
        .await
        .unwrap();
    decode_shard_response(request, bytes.into()).unwrap()
}

async fn call_raw(client: &NetHandle, node: PeerId, bytes: Vec<u8>) -> ShardResponse {
    let any = ShardRequest::Get {
        id: ShardId([0; 32]),
    };
    let answer = client.request(node, Protocol::Shard, bytes).await.unwrap();
    decode_shard_response(&any, answer.into()).unwrap()
}

fn error_code(response: &ShardResponse) -> Option<RemoteErrorCode> {
    match response {
        ShardResponse::Error { code, .. } => Some(*code),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shard_protocol_round_trip_against_a_real_node() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start_daemon(dir.path()).await;
    // `have` and `delete` are node-only: a peer node asks.
    let (client, node) = connect_node(&daemon).await;
    let data = Bytes::from(vec![42u8; 100_000]);
    let id = shard_id(&data);
    let other = ShardId([9; 32]);

    let put = ShardRequest::Put {
        id,
        data: data.clone(),
    };
    assert_eq!(
        call(&client, node, &put).await,
        ShardResponse::Put { stored: true }
    );
    assert_eq!(
        call(&client, node, &put).await,
        ShardResponse::Put { stored: false }
    );
    assert_eq!(
        call(&client, node, &ShardRequest::Get { id }).await,
        ShardResponse::Get { data }
    );
    assert_eq!(
        call(
            &client,
            node,
            &ShardRequest::Have {
                ids: vec![id, other]
            }
        )
        .await,
        ShardResponse::Have {
            present: vec![true, false]
        }
    );
    assert_eq!(
        call(
            &client,
            node,
            &ShardRequest::Delete {
                ids: vec![id, other]
            }
        )
        .await,
        ShardResponse::Delete { deleted: 1 }
    );
    let gone = call(&client, node, &ShardRequest::Get { id }).await;
    assert_eq!(error_code(&gone), Some(RemoteErrorCode::NotFound));
    daemon.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_errors_and_the_node_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start_daemon(dir.path()).await;
    let (client, node) = connect_client(&daemon).await;

    // Garbage, an empty message, a short id, a wrong hash, an oversize batch.
    assert_eq!(
        error_code(&call_raw(&client, node, vec![0xff, 0xff, 0xff]).await),
        Some(RemoteErrorCode::Invalid)
    );
    assert_eq!(
        error_code(&call_raw(&client, node, Vec::new()).await),
        Some(RemoteErrorCode::Invalid)
    );
    let short_id = pb::ShardRequest {
        request: Some(pb::shard_request::Request::Get(pb::GetShard {
            id: vec![1u8; 5].into(),
        })),
    };
    assert_eq!(
        error_code(&call_raw(&client, node, short_id.encode_to_vec()).await),
        Some(RemoteErrorCode::Invalid)
    );
    let lying = ShardRequest::Put {
        id: ShardId([7; 32]),
        data: Bytes::from_static(b"not those bytes"),
    };
    assert_eq!(
        error_code(&call(&client, node, &lying).await),
        Some(RemoteErrorCode::Invalid)
    );
    let too_many = pb::ShardRequest {
        request: Some(pb::shard_request::Request::Have(pb::HaveShards {
            ids: vec![Bytes::from(vec![0u8; 32]); 2000],
        })),
    };
    assert_eq!(
        error_code(&call_raw(&client, node, too_many.encode_to_vec()).await),
        Some(RemoteErrorCode::TooLarge)
    );
    // Nothing was stored, and the node still serves.
    assert_eq!(daemon.store().usage().shard_count, 0);
    let data = Bytes::from_static(b"still serving");
    let id = shard_id(&data);
    assert_eq!(
        call(&client, node, &ShardRequest::Put { id, data }).await,
        ShardResponse::Put { stored: true }
    );
    daemon.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_keeps_its_identity_and_shards() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start_daemon(dir.path()).await;
    let first_id = daemon.net().local_peer_id();
    let (client, node) = connect_client(&daemon).await;
    let data = Bytes::from_static(b"durable");
    let id = shard_id(&data);
    call(
        &client,
        node,
        &ShardRequest::Put {
            id,
            data: data.clone(),
        },
    )
    .await;
    daemon.stop().await.unwrap();
    drop(client);

    let daemon = start_daemon(dir.path()).await;
    assert_eq!(daemon.net().local_peer_id(), first_id);
    let (client, node) = connect_client(&daemon).await;
    assert_eq!(
        call(&client, node, &ShardRequest::Get { id }).await,
        ShardResponse::Get { data }
    );
    daemon.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_records_are_applied_and_listed_over_the_network() {
    use andromede_cluster::meta::hlc::Hlc;
    use andromede_cluster::meta::key::{RecordKey, Table};
    use andromede_cluster::meta::record::{Record, Version, WriterId};
    use andromede_cluster::meta::seal::RecordSigner;
    use andromede_cluster::net::meta_message::{MetaRequest, MetaResponse, decode_meta_response};

    let dir = tempfile::tempdir().unwrap();
    let daemon = start_daemon(dir.path()).await;
    let (identity, admission) = crate::daemons::client_identity();
    let signer = RecordSigner::new(identity.clone(), admission.certificate());
    let (client, _inbound) = spawn(identity, admission, NetConfig::new(PeerRole::Client)).unwrap();
    let node = client.dial(listen_addr(&daemon).await).await.unwrap();
    let hlc = Hlc::system();
    let writer = WriterId::new(client.local_peer_id().to_bytes()).unwrap();
    let key = |k: &str| RecordKey {
        table: Table::ObjectIndex,
        partition: "photos".into(),
        sort: k.as_bytes().to_vec(),
    };
    let version = || Version {
        timestamp: hlc.now(),
        writer: writer.clone(),
    };
    let meta_call = |request: MetaRequest| {
        let client = client.clone();
        async move {
            let bytes = client
                .request(node, Protocol::Meta, request.encode())
                .await
                .unwrap();
            decode_meta_response(&request, &bytes).unwrap()
        }
    };

    let signed = |k: &str, record: Record<Bytes>| {
        let key = key(k);
        let record = signer.sign(&key, record, Vec::new()).unwrap();
        (key, record)
    };
    // Unsigned records are refused, and nothing is stored.
    let unsigned = MetaRequest::Apply(vec![(
        key("2026/a.jpg"),
        Record::live(version(), Bytes::from_static(b"unsigned")),
    )]);
    assert!(matches!(
        meta_call(unsigned).await,
        MetaResponse::Error { code: RemoteErrorCode::Forbidden, detail } if detail.contains("not signed")
    ));
    assert_eq!(
        meta_call(MetaRequest::Get(key("2026/a.jpg"))).await,
        MetaResponse::Get(None)
    );
    let apply = MetaRequest::Apply(vec![
        signed(
            "2026/a.jpg",
            Record::live(version(), Bytes::from_static(b"manifest-a")),
        ),
        signed(
            "2026/b.jpg",
            Record::live(version(), Bytes::from_static(b"manifest-b")),
        ),
        signed(
            "2025/c.jpg",
            Record::live(version(), Bytes::from_static(b"manifest-c")),
        ),
    ]);
    assert_eq!(
        meta_call(apply).await,
        MetaResponse::Apply {
            replaced: vec![true; 3]
        }
    );
    // A delete (tombstone) wins over the older value and is listed as such.
    let delete = MetaRequest::Apply(vec![signed("2026/a.jpg", Record::tombstone(version()))]);
    assert_eq!(
        meta_call(delete).await,
        MetaResponse::Apply {
            replaced: vec![true]
        }
    );
    let scan = MetaRequest::Scan {
        table: Table::ObjectIndex,
        partition: "photos".into(),
        prefix: b"2026/".to_vec(),
        start_after: None,
        limit: 10,
    };
    let MetaResponse::Scan { records, more } = meta_call(scan).await else {
        panic!("not a page")
    };
    assert!(!more);
    let listed: Vec<(String, bool)> = records
        .iter()
        .map(|(k, r)| (String::from_utf8(k.sort.clone()).unwrap(), r.is_tombstone()))
        .collect();
    assert_eq!(
        listed,
        [
            ("2026/a.jpg".to_owned(), true),
            ("2026/b.jpg".to_owned(), false)
        ]
    );
    // Malformed metadata requests get errors; the node keeps serving.
    let bytes = client
        .request(node, Protocol::Meta, vec![0xff, 0xff])
        .await
        .unwrap();
    let any = MetaRequest::Get(key("x"));
    assert!(matches!(
        decode_meta_response(&any, &bytes).unwrap(),
        MetaResponse::Error { .. }
    ));
    let MetaResponse::Get(Some(record)) = meta_call(MetaRequest::Get(key("2025/c.jpg"))).await
    else {
        panic!("record not found")
    };
    assert_eq!(record.value, Some(Bytes::from_static(b"manifest-c")));
    daemon.stop().await.unwrap();
}

/// A client certificate sending each node-only request gets a clear refusal, and nothing
/// changes: the shard it tried to delete is still served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_only_requests_from_a_client_are_refused_and_change_nothing() {
    use andromede_cluster::meta::key::Table;
    use andromede_cluster::net::meta_message::{MetaRequest, MetaResponse, decode_meta_response};

    let dir = tempfile::tempdir().unwrap();
    let daemon = start_daemon(dir.path()).await;
    let (client, node) = connect_client(&daemon).await;
    let data = Bytes::from_static(b"a shard a client stored");
    let id = shard_id(&data);
    assert_eq!(
        call(
            &client,
            node,
            &ShardRequest::Put {
                id,
                data: data.clone()
            }
        )
        .await,
        ShardResponse::Put { stored: true }
    );
    let answer = call(&client, node, &ShardRequest::Delete { ids: vec![id] }).await;
    assert_eq!(
        error_code(&answer),
        Some(RemoteErrorCode::Forbidden),
        "{answer:?}"
    );
    let ShardResponse::Error { detail, .. } = answer else {
        unreachable!()
    };
    assert!(detail.contains("certified as a client"), "{detail}");
    // Whether a holder has a shard is a client's question too (`andromede audit`).
    assert_eq!(
        call(&client, node, &ShardRequest::Have { ids: vec![id] }).await,
        ShardResponse::Have {
            present: vec![true]
        }
    );
    assert_eq!(
        call(&client, node, &ShardRequest::Get { id }).await,
        ShardResponse::Get { data }
    );
    let holder = node.to_bytes();
    for request in [
        MetaRequest::Compare {
            table: Table::Manifest,
            partition: "photos".into(),
            entries: Vec::new(),
        },
        MetaRequest::Referenced {
            holder: holder.clone(),
            start_after: None,
        },
        MetaRequest::HeldBy { holder },
    ] {
        let bytes = client
            .request(node, Protocol::Meta, request.encode())
            .await
            .unwrap();
        match decode_meta_response(&request, &bytes).unwrap() {
            MetaResponse::Error { code, detail } => {
                assert_eq!(code, RemoteErrorCode::Forbidden, "{detail}");
                assert!(detail.contains("nodes only"), "{detail}");
            }
            other => panic!("{request:?} from a client answered {other:?}"),
        }
    }
    // The same request from a node is served.
    let (peer_node, node_id) = connect_node(&daemon).await;
    assert_eq!(
        call(&peer_node, node_id, &ShardRequest::Delete { ids: vec![id] }).await,
        ShardResponse::Delete { deleted: 1 }
    );
    daemon.stop().await.unwrap();
}
