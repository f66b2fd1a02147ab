//! The front door under a flood, against a real `andromede-node` process on 127.0.0.1:
//! peers that were never admitted open many connections (fresh peer ids) and many
//! streams announcing 60 MiB frames, and keep writing; the node reads none of it (the
//! admission gate holds streams unread, limits unadmitted connections per address and
//! closes them after the admission deadline), its memory stays within a bound, and it
//! keeps serving an admitted client throughout.
#![allow(
    clippy::disallowed_methods,
    reason = "a test driving a process and sampling its memory"
)]

use std::io;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use andromede_cluster::authority::{JoinToken, PeerRole};
use andromede_cluster::net::message::{ShardRequest, ShardResponse, decode_shard_response};
use andromede_cluster::net::{Admission, NetConfig, Protocol, spawn};
use andromede_cluster::shard::hash::shard_id;
use bytes::Bytes;
use futures::{AsyncRead, AsyncWrite, AsyncWriteExt, StreamExt};
use libp2p::request_response::{self, Codec, ProtocolSupport};
use libp2p::{Multiaddr, PeerId, StreamProtocol, noise, tcp, yamux};

const NODE: &str = env!("CARGO_BIN_EXE_andromede-node");
/// The frame size the flood announces on every stream.
const ANNOUNCED_BYTES: u32 = 60 << 20;
/// Streams each flooding peer opens.
const STREAMS_PER_PEER: usize = 64;
/// Flooding peers (each a fresh identity, each its own connection).
const PEERS: usize = 48;
/// How long the flood lasts.
const FLOOD_FOR: Duration = Duration::from_secs(10);
/// Growth of the node's resident memory allowed during the flood.
const RSS_GROWTH_MAX_BYTES: u64 = 96 << 20;

/// Writes a frame header announcing [`ANNOUNCED_BYTES`], then zeros for as long as the
/// other side takes them.
#[derive(Debug, Clone, Copy, Default)]
struct FloodCodec;

impl Codec for FloodCodec {
    type Protocol = StreamProtocol;
    type Request = ();
    type Response = ();

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        _: &mut T,
    ) -> io::Result<()> {
        Ok(())
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        _: &mut T,
    ) -> io::Result<()> {
        Ok(())
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        (): (),
    ) -> io::Result<()> {
        io.write_all(&ANNOUNCED_BYTES.to_be_bytes()).await?;
        let chunk = vec![0u8; 64 * 1024];
        let mut sent = 0u32;
        while sent < ANNOUNCED_BYTES {
            io.write_all(&chunk).await?;
            sent += 64 * 1024;
        }
        io.close().await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        _: &mut T,
        (): (),
    ) -> io::Result<()> {
        Ok(())
    }
}

/// One flooding peer: a bare libp2p swarm that never speaks admission and floods the
/// shard protocol, until `until`.
async fn flood(addr: Multiaddr, node: PeerId, until: Instant) {
    let Ok(builder) = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
    else {
        return;
    };
    let behaviour = request_response::Behaviour::<FloodCodec>::new(
        [(
            StreamProtocol::new("/andromede/shard/1"),
            ProtocolSupport::Outbound,
        )],
        request_response::Config::default()
            .with_request_timeout(FLOOD_FOR)
            .with_max_concurrent_streams(STREAMS_PER_PEER),
    );
    let Ok(builder) = builder.with_behaviour(|_| behaviour);
    let mut swarm = builder.build();
    swarm.add_peer_address(node, addr);
    for _ in 0..STREAMS_PER_PEER {
        swarm.behaviour_mut().send_request(&node, ());
    }
    let deadline = tokio::time::Instant::from_std(until);
    loop {
        tokio::select! {
            _ = swarm.select_next_some() => {}
            () = tokio::time::sleep_until(deadline) => return,
        }
    }
}

fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib * 1024
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_unadmitted_peers_is_never_read_and_the_node_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let port = crate::free_port();
    let listen = format!("/ip4/127.0.0.1/tcp/{port}");
    let admin = format!("127.0.0.1:{}", crate::free_port());
    let log = std::fs::File::create(dir.path().join("node.log")).unwrap();
    let node = Killed(
        Command::new(NODE)
            .args(["run", "--data"])
            .arg(&data)
            .args(["--listen", &listen, "--admin", &admin])
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let pid = node.0.id();
    // An admitted client, certified the way an operator does it.
    let token = loop {
        let out = Command::new(NODE)
            .args(["invite", "--data"])
            .arg(&data)
            .args(["--client", "flood-test", "--grant", "*:all"])
            .output()
            .unwrap();
        if out.status.success() {
            break String::from_utf8(out.stdout).unwrap();
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let token = JoinToken::decode(&token).unwrap();
    let identity =
        andromede_cluster::authority::token::identity_from_secret(token.identity_secret().unwrap())
            .unwrap();
    let admission = Admission::new(
        token.certificate().clone(),
        andromede_cluster::authority::Trust::new(token.authority().clone()),
        &identity.public().to_peer_id(),
        PeerRole::Client,
    )
    .unwrap();
    let (client, _inbound) = spawn(identity, admission, NetConfig::new(PeerRole::Client)).unwrap();
    let addr: Multiaddr = listen.parse().unwrap();
    let mut node_peer = None;
    for _ in 0..100 {
        if let Ok(peer) = client.dial(addr.clone()).await {
            node_peer = Some(peer);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let node_peer = node_peer.expect("the node never admitted its client");
    let data_bytes = Bytes::from(vec![5u8; 100_000]);
    let id = shard_id(&data_bytes);
    let put = ShardRequest::Put {
        id,
        data: data_bytes.clone(),
    };
    let answer = client
        .request(node_peer, Protocol::Shard, put.encode())
        .await
        .unwrap();
    assert_eq!(
        decode_shard_response(&put, answer.into()).unwrap(),
        ShardResponse::Put { stored: true }
    );
    let baseline = rss_bytes(pid);

    // The flood, and an admitted client's reads all along.
    let until = Instant::now() + FLOOD_FOR;
    let floods: Vec<_> = (0..PEERS)
        .map(|_| tokio::spawn(flood(addr.clone(), node_peer, until)))
        .collect();
    let mut peak = baseline;
    let mut reads = 0;
    while Instant::now() < until {
        let get = ShardRequest::Get { id };
        let answer = client
            .request(node_peer, Protocol::Shard, get.encode())
            .await
            .expect("the node stopped serving its client during the flood");
        assert_eq!(
            decode_shard_response(&get, answer.into()).unwrap(),
            ShardResponse::Get {
                data: data_bytes.clone()
            }
        );
        reads += 1;
        peak = peak.max(rss_bytes(pid));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for flood in floods {
        flood.await.unwrap();
    }
    peak = peak.max(rss_bytes(pid));
    eprintln!(
        "node RSS {} MiB before the flood, {} MiB at its peak ({} peers x {} streams announcing {} MiB frames for {} s); {reads} reads served meanwhile",
        baseline >> 20,
        peak >> 20,
        PEERS,
        STREAMS_PER_PEER,
        ANNOUNCED_BYTES >> 20,
        FLOOD_FOR.as_secs()
    );
    assert!(reads > 0);
    assert!(
        peak.saturating_sub(baseline) <= RSS_GROWTH_MAX_BYTES,
        "the flood grew the node by {} MiB",
        (peak - baseline) >> 20
    );
}
