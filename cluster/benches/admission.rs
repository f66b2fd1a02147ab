//! What admission by certificate costs: verifying a certificate, and a whole new
//! connection over loopback (TCP, Noise, Yamux, the certificate exchange both ways)
//! until both sides have admitted each other.
//!
//! `cargo bench -p andromede-cluster --bench admission`
#![allow(
    clippy::unwrap_used,
    reason = "a benchmark: any failure is a bug to see"
)]

use std::time::Duration;

use andromede_cluster::authority::{Authority, CertificateSpec, PeerRole, Trust, unix_now};
use andromede_cluster::net::{Admission, Keypair, NetConfig, spawn};
use criterion::{Criterion, criterion_group, criterion_main};

fn member(authority: &Authority, role: PeerRole) -> (Keypair, Admission) {
    let key = Keypair::generate_ed25519();
    let spec = CertificateSpec::new(
        key.public().to_peer_id(),
        role,
        "bench",
        Duration::from_secs(3600),
    );
    let admission = Admission::issued(authority, spec).unwrap();
    (key, admission)
}

fn certificates(c: &mut Criterion) {
    let authority = Authority::generate();
    let trust = Trust::new(authority.public());
    let (key, admission) = member(&authority, PeerRole::Node);
    let peer = key.public().to_peer_id();
    let certificate = admission.certificate().clone();
    c.bench_function("verify a certificate", |b| {
        b.iter(|| trust.verify(&certificate, &peer, unix_now()).unwrap());
    });
}

fn connections(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let authority = Authority::generate();
    let (node, addr) = runtime.block_on(async {
        let (key, admission) = member(&authority, PeerRole::Node);
        let mut config = NetConfig::new(PeerRole::Node);
        config.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
        let (node, inbound) = spawn(key, admission, config).unwrap();
        loop {
            if let Some(addr) = node.listen_addrs().await.unwrap().into_iter().next() {
                break ((node, inbound), addr);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    let mut group = c.benchmark_group("new connection");
    group.sample_size(30);
    group.bench_function("connect and admit over loopback", |b| {
        b.iter_batched(
            || member(&authority, PeerRole::Client),
            |(key, admission)| {
                runtime.block_on(async {
                    let (client, _inbound) =
                        spawn(key, admission, NetConfig::new(PeerRole::Client)).unwrap();
                    client.dial(addr.clone()).await.unwrap();
                });
            },
            criterion::BatchSize::SmallInput,
        );
    });
    group.finish();
    drop(node);
}

criterion_group!(benches, certificates, connections);
criterion_main!(benches);
