//! Signed records against real node processes (DESIGN.md, "Metadata"). A rogue peer,
//! admitted with a node certificate of the cluster's own authority and built here from
//! the project's types, sends forged records straight to every node: an object rolled
//! back to an overwritten version, a bucket policy rewritten. Every replica refuses them,
//! readers never see them, and a policy below the cluster's minimum is refused too.

use std::time::Duration;

use andromede_client::{BucketOptions, Client, ErasureParams};
use andromede_cluster::authority::{CertificateSpec, PeerRole};
use andromede_cluster::meta::hlc::Timestamp;
use andromede_cluster::meta::key::{RecordKey, Table};
use andromede_cluster::meta::record::{KeyedRecord, Record, Version, WriterId};
use andromede_cluster::meta::seal::RecordSigner;
use andromede_cluster::meta::values::BucketInfo;
use andromede_cluster::net::meta_message::{MetaRequest, MetaResponse};
use andromede_cluster::net::{
    Admission, CallError, Keypair, Multiaddr, NetConfig, NetHandle, PeerId, call_meta, spawn,
};
use andromede_testnet::cluster::{Testnet, UpOptions};
use bytes::Bytes;

use crate::common;

const BUCKET: &str = "signed";
const TIMEOUT: Duration = Duration::from_secs(10);

/// An admitted peer that does not play by the rules: a node certificate of the cluster's
/// authority, its own key, and requests sent to each node directly (no quorum).
struct Rogue {
    net: NetHandle,
    signer: RecordSigner,
    nodes: Vec<PeerId>,
}

impl Rogue {
    async fn join(testnet: &Testnet) -> Self {
        let authority = testnet.authority().unwrap();
        let keypair = Keypair::generate_ed25519();
        let spec = CertificateSpec::new(
            keypair.public().to_peer_id(),
            PeerRole::Node,
            "rogue",
            Duration::from_secs(3600),
        )
        .placed("rogue-zone", "FR");
        let admission = Admission::issued(&authority, spec).unwrap();
        let signer = RecordSigner::new(keypair.clone(), admission.certificate());
        // It answers nothing (its inbound requests are dropped).
        let (net, _inbound) = spawn(keypair, admission, NetConfig::new(PeerRole::Node)).unwrap();
        let mut nodes = Vec::new();
        for node in &testnet.state().nodes {
            let addr: Multiaddr = node.listen.parse().unwrap();
            nodes.push(net.dial(addr).await.unwrap());
        }
        Self { net, signer, nodes }
    }

    /// Each node's answer to `request`: `Ok` with its response, or the refusal's words.
    async fn ask_everyone(&self, request: &MetaRequest) -> Vec<Result<MetaResponse, String>> {
        let mut answers = Vec::new();
        for &node in &self.nodes {
            answers.push(match call_meta(&self.net, node, request, TIMEOUT).await {
                Ok(MetaResponse::Error { detail, .. }) => Err(detail),
                Ok(response) => Ok(response),
                Err(CallError::Remote { detail, .. }) => Err(detail),
                Err(error) => panic!("node {node} did not answer: {error}"),
            });
        }
        answers
    }

    /// Sends `records` to every node and asserts each refused them, saying `why`.
    async fn refused_everywhere(&self, records: Vec<KeyedRecord>, why: &str) {
        for answer in self.ask_everyone(&MetaRequest::Apply(records)).await {
            match answer {
                Err(detail) => assert!(detail.contains(why), "refused, but: {detail}"),
                Ok(response) => panic!("a node applied a forged record: {response:?}"),
            }
        }
    }

    /// The record each node holds for `key`.
    async fn held(&self, key: &RecordKey) -> Vec<Option<Record<Bytes>>> {
        let mut held = Vec::new();
        for answer in self.ask_everyone(&MetaRequest::Get(key.clone())).await {
            match answer {
                Ok(MetaResponse::Get(record)) => held.push(record),
                other => panic!("a node did not answer a get: {other:?}"),
            }
        }
        held
    }

    /// The newest record any node holds for `key`.
    async fn newest(&self, key: &RecordKey) -> Record<Bytes> {
        self.held(key)
            .await
            .into_iter()
            .flatten()
            .max_by(|a, b| a.version.cmp(&b.version))
            .unwrap()
    }

    /// A version a minute's fraction ahead of every clock, by `writer`.
    fn ahead(writer: &[u8]) -> Version {
        Version {
            timestamp: Timestamp {
                wall_ms: andromede_cluster::authority::unix_now() * 1000 + 30_000,
                logical: u32::MAX,
            },
            writer: WriterId::new(Bytes::copy_from_slice(writer)).unwrap(),
        }
    }
}

fn index_key(key: &str) -> RecordKey {
    RecordKey {
        table: Table::ObjectIndex,
        partition: BUCKET.into(),
        sort: key.as_bytes().to_vec(),
    }
}

async fn put(client: &Client, key: &str, body: &[u8]) {
    client
        .put_object(BUCKET, key, body, Default::default())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_index_entry_is_refused_by_every_replica_and_never_read() {
    let _machine = common::MACHINE.read().await;
    let dir = tempfile::tempdir().unwrap();
    let (testnet, client) = common::up(dir.path(), 5, BUCKET).await;
    let rogue = Rogue::join(&testnet).await;
    let key = index_key("report.txt");

    put(&client, "report.txt", b"version one").await;
    // An admitted peer keeps the entry of the version about to be overwritten...
    let old = rogue.newest(&key).await;
    put(&client, "report.txt", b"version two").await;

    // ...and tries to make it current again.
    let mut re_versioned = old.clone();
    re_versioned.version = Rogue::ahead(old.version.writer.as_bytes());
    rogue
        .refused_everywhere(
            vec![(key.clone(), re_versioned)],
            "signature does not verify",
        )
        .await;
    let mut maximal_writer = old.clone();
    maximal_writer.version = Rogue::ahead(&[0xff; 64]);
    rogue
        .refused_everywhere(vec![(key.clone(), maximal_writer)], "names writer")
        .await;
    // Signed by the rogue itself, even carrying the client's old entry as a cause.
    let own = Record::live(
        Rogue::ahead(&rogue.signer.peer().to_bytes()),
        old.value.clone().unwrap(),
    );
    for causes in [Vec::new(), vec![(key.clone(), old.clone())]] {
        let signed = rogue.signer.sign(&key, own.clone(), causes).unwrap();
        rogue
            .refused_everywhere(vec![(key.clone(), signed)], "a node may not write")
            .await;
    }

    // No replica holds a forged record, and every reader gets the latest bytes.
    for record in rogue.held(&key).await.into_iter().flatten() {
        assert!(
            record.version < Rogue::ahead(&[0; 1]),
            "a replica holds a forged version"
        );
        assert!(client.meta().verifier().verify(&key, &record).is_ok());
    }
    let fresh = testnet.client().await.unwrap();
    for reader in [&client, &fresh] {
        assert_eq!(
            reader.get_object_bytes(BUCKET, "report.txt").await.unwrap(),
            b"version two"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_policy_changes_only_through_its_owner_and_never_below_the_minimum() {
    let _machine = common::MACHINE.read().await;
    let dir = tempfile::tempdir().unwrap();
    let options = UpOptions {
        k: 2,
        m: 2,
        min_parity: 2,
        ..common::test_options(5)
    };
    let (testnet, client) = common::up_with(dir.path(), &options, BUCKET).await;
    let policy = client.head_bucket(BUCKET).await.unwrap();
    let bucket_key = RecordKey {
        table: Table::Bucket,
        partition: String::new(),
        sort: BUCKET.as_bytes().to_vec(),
    };
    let lowered = BucketInfo {
        params: ErasureParams::new(2, 1).unwrap(),
        jurisdictions: vec!["XX".into()],
        ..policy.clone()
    };

    // Below the minimum, even by an owner: refused with the minimum named.
    let low = client
        .create_bucket(
            "thin",
            BucketOptions {
                params: ErasureParams::new(4, 1).unwrap(),
                jurisdictions: Vec::new(),
            },
        )
        .await
        .expect_err("a bucket below the cluster's minimum redundancy was created");
    assert!(
        low.to_string()
            .contains("below this cluster's minimum of 2"),
        "{low}"
    );
    let rewrite = Record::live(client.meta().version_after(None), lowered.encode());
    let error = client
        .meta()
        .apply("", vec![(bucket_key.clone(), rewrite)])
        .await
        .expect_err("a policy below the minimum was applied");
    assert!(error.to_string().contains("minimum of 2"), "{error}");

    // A client without the owner grant.
    let mut config = testnet.client_config().unwrap();
    let identity = Keypair::generate_ed25519();
    let spec = CertificateSpec::new(
        identity.public().to_peer_id(),
        PeerRole::Client,
        "writer",
        Duration::from_secs(3600),
    )
    .granted(vec![format!("{BUCKET}:write").parse().unwrap()]);
    config.admission = Admission::issued(&testnet.authority().unwrap(), spec).unwrap();
    config.identity = identity;
    let writer = Client::connect(config).await.unwrap();
    let widened = BucketInfo {
        jurisdictions: vec!["XX".into()],
        ..policy.clone()
    };
    let rewrite = Record::live(writer.meta().version_after(None), widened.encode());
    let error = writer
        .meta()
        .apply("", vec![(bucket_key.clone(), rewrite.clone())])
        .await
        .expect_err("a writer rewrote the bucket's policy");
    assert!(error.to_string().contains("may not"), "{error}");
    // The same record, signed by that client, passed on by an admitted node.
    let signed = writer
        .meta()
        .sign(&bucket_key, rewrite, Vec::new())
        .unwrap();
    let rogue = Rogue::join(&testnet).await;
    rogue
        .refused_everywhere(
            vec![(bucket_key.clone(), signed)],
            "may not create, delete or set the policy",
        )
        .await;

    // A node's own policy record.
    let by_node = rogue
        .signer
        .sign(
            &bucket_key,
            Record::live(
                Rogue::ahead(&rogue.signer.peer().to_bytes()),
                widened.encode(),
            ),
            Vec::new(),
        )
        .unwrap();
    rogue
        .refused_everywhere(vec![(bucket_key.clone(), by_node)], "a node may not write")
        .await;

    // The policy is what its owner set.
    let fresh = testnet.client().await.unwrap();
    assert_eq!(fresh.head_bucket(BUCKET).await.unwrap(), policy);
    assert!(fresh.head_bucket("thin").await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_redirected_to_a_rogue_node_is_still_read_and_its_holders_restored() {
    let _machine = common::MACHINE.read().await;
    let dir = tempfile::tempdir().unwrap();
    let (testnet, client) = common::up(dir.path(), 5, BUCKET).await;
    let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    put(&client, "photo.raw", &body).await;
    let manifest = client.object_manifest(BUCKET, "photo.raw").await.unwrap();
    let key = RecordKey {
        table: Table::Manifest,
        partition: BUCKET.into(),
        sort: manifest.version_id.as_bytes().to_vec(),
    };

    // A rogue node rewrites the holders to itself: a holder update keeps the client's
    // content, so replicas take it (it is what repair writes) — but it holds nothing.
    let rogue = Rogue::join(&testnet).await;
    let written = rogue.newest(&key).await;
    let mut redirected = manifest.clone();
    let me = Bytes::from(rogue.signer.peer().to_bytes());
    redirected.holders = vec![me.clone(); manifest.holders.len()];
    redirected.moves.clear();
    let update = rogue
        .signer
        .sign(
            &key,
            Record::live(
                Rogue::ahead(&rogue.signer.peer().to_bytes()),
                Bytes::from(redirected.encode()),
            ),
            vec![(key.clone(), written)],
        )
        .unwrap();
    let applied = rogue
        .ask_everyone(&MetaRequest::Apply(vec![(key.clone(), update)]))
        .await;
    assert!(applied.iter().all(Result::is_ok), "{applied:?}");
    let rogue_peer = rogue.signer.peer();
    drop(rogue);

    // Readers find the shards where the client put them (the signed manifest it carries).
    assert!(
        client
            .object_manifest(BUCKET, "photo.raw")
            .await
            .unwrap()
            .distinct_holders()
            .contains(&me)
    );
    for reader in [&client, &testnet.client().await.unwrap()] {
        assert_eq!(
            reader.get_object_bytes(BUCKET, "photo.raw").await.unwrap(),
            body
        );
    }

    // Repair names the true holders again once the rogue counts as down.
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let now = client.object_manifest(BUCKET, "photo.raw").await.unwrap();
        if !now.distinct_holders().contains(&me) {
            assert_eq!(
                now.holders, manifest.holders,
                "not the holders the client wrote"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the manifest still names the rogue node {rogue_peer}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        client.get_object_bytes(BUCKET, "photo.raw").await.unwrap(),
        body
    );
}
