//! The CI chaos run (README's test command): 6 node processes, RS(4,2), two minutes of a
//! seeded schedule of kills, wipes, corruption, a partition and slow nodes under load;
//! every invariant must hold. A longer soak is `andromede-testnet chaos --duration 30m`.

use std::time::Duration;

use andromede_testnet::chaos::{ChaosOptions, FaultKind, run};

use crate::common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_minutes_of_seeded_chaos_lose_nothing() {
    let _machine = common::MACHINE.write().await;
    let dir = tempfile::tempdir().unwrap();
    let options = ChaosOptions {
        dir: dir.path().join("testnet"),
        nodes: 6,
        k: 4,
        m: 2,
        duration: Duration::from_secs(120),
        seed: 20_261_123,
        faults_per_minute: 6.0,
        progress: false,
        node_bin: Some(common::node_binary()),
    };
    let report = run(&options).await.unwrap();
    println!("{}", report.table());
    assert!(report.ok(), "{}", report.table());
    for kind in [
        FaultKind::Kill,
        FaultKind::Wipe,
        FaultKind::Corrupt,
        FaultKind::Partition,
    ] {
        assert!(
            report.faults.get(&kind).copied().unwrap_or(0) > 0,
            "no {kind:?} injected: {:?}",
            report.faults
        );
    }
    assert!(report.objects_written > 50, "{}", report.table());
    assert_eq!(report.objects_lost, 0);
    assert!(report.plaintext_files.is_empty());
    assert!(report.redundancy.is_full());
}
