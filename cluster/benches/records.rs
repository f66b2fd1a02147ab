//! What signed records cost (DESIGN.md, "Metadata"): signing an object's index entry, a
//! replica or reader verifying it (its author already known, as after the first record),
//! and the record's encoded size with and without its seal.
//!
//! `cargo bench -p andromede-cluster --bench records`
#![allow(
    clippy::unwrap_used,
    reason = "a benchmark: any failure is a bug to see"
)]

use std::time::Duration;

use andromede_cluster::authority::{Authority, CertificateSpec, PeerRole, unix_now};
use andromede_cluster::meta::hlc::Timestamp;
use andromede_cluster::meta::key::{RecordKey, Table};
use andromede_cluster::meta::record::{Record, Version, WriterId};
use andromede_cluster::meta::seal::{RecordSigner, RecordVerifier};
use andromede_cluster::meta::values::ObjectEntry;
use andromede_cluster::net::Keypair;
use andromede_proto::VersionId;
use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};

fn records(c: &mut Criterion) {
    let authority = Authority::generate();
    let keypair = Keypair::generate_ed25519();
    let peer = keypair.public().to_peer_id();
    let spec = CertificateSpec::new(peer, PeerRole::Client, "laptop", Duration::from_secs(3600))
        .granted(vec!["*:all".parse().unwrap()]);
    let signer = RecordSigner::new(keypair, &authority.certify(spec).unwrap());
    let verifier = RecordVerifier::new(authority.public());
    let key = RecordKey {
        table: Table::ObjectIndex,
        partition: "photos".into(),
        sort: b"2026/12/holiday/IMG_0042.jpg".to_vec(),
    };
    let entry = ObjectEntry {
        version_id: VersionId([9; 16]),
        size: 4096,
        etag: [7; 32],
        modified_ms: unix_now() * 1000,
        content_type: "image/jpeg".into(),
        sealed_etag: Bytes::from(vec![1; 56]),
    };
    let record = Record::live(
        Version {
            timestamp: Timestamp {
                wall_ms: unix_now() * 1000,
                logical: 0,
            },
            writer: WriterId::new(Bytes::from(peer.to_bytes())).unwrap(),
        },
        entry.encode(),
    );
    let signed = signer.sign(&key, record.clone(), Vec::new()).unwrap();
    eprintln!(
        "index entry record: {} bytes unsigned, {} bytes signed",
        record.encode().len(),
        signed.encode().len()
    );
    c.bench_function("sign an index entry", |b| {
        b.iter(|| signer.sign(&key, record.clone(), Vec::new()).unwrap());
    });
    verifier.verify(&key, &signed).unwrap();
    c.bench_function("verify an index entry (author known)", |b| {
        b.iter(|| verifier.verify(&key, &signed).unwrap());
    });
    let bytes = signed.encode();
    c.bench_function("decode a signed index entry", |b| {
        b.iter(|| Record::decode(&bytes).unwrap());
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = records
}
criterion_main!(benches);
