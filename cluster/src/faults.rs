//! Planted bugs: DESIGN.md, "Testnet" asks that each of these makes some named scenario
//! fail, which shows that the scenarios and checkers would catch the real mistake.
//!
//! Only the names are here in every build, so that the testnet can ask for a bug without
//! being built with test hooks itself; the code that acts on one (in the quorum, the clock
//! and the node's shard store) is compiled only with the `fault-injection` feature, never
//! in a normal build. Nothing turns one on by default.

use std::fmt;
use std::str::FromStr;

/// A deliberate mistake a test can switch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PlantedBug {
    /// A node acknowledges a shard before it is durable (no fsync of the file or of its
    /// directory). Node side; the testnet passes it in `ANDROMEDE_PLANTED_BUG`.
    AckBeforeFsync,
    /// A metadata write returns after one replica acknowledged it instead of a quorum.
    WriteQuorumOne,
    /// A write is versioned with the writer's raw clock reading instead of a hybrid
    /// logical clock timestamp after the version it replaces.
    RawClockVersions,
}

/// The environment variable a fault-injection node reads its planted bug from.
pub const PLANTED_BUG_ENV: &str = "ANDROMEDE_PLANTED_BUG";

impl PlantedBug {
    /// Every planted bug, for help texts and tests.
    pub const ALL: [PlantedBug; 3] = [
        PlantedBug::AckBeforeFsync,
        PlantedBug::WriteQuorumOne,
        PlantedBug::RawClockVersions,
    ];

    /// Its name on the command line and in the environment.
    pub fn name(self) -> &'static str {
        match self {
            PlantedBug::AckBeforeFsync => "ack-before-fsync",
            PlantedBug::WriteQuorumOne => "write-quorum-one",
            PlantedBug::RawClockVersions => "raw-clock-versions",
        }
    }
}

impl fmt::Display for PlantedBug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for PlantedBug {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|bug| bug.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|b| b.name()).collect();
                format!("unknown planted bug {s:?}: one of {}", names.join(", "))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for bug in PlantedBug::ALL {
            assert_eq!(bug.name().parse::<PlantedBug>(), Ok(bug));
        }
        let refused = "ack-after-fsync".parse::<PlantedBug>().unwrap_err();
        assert!(refused.contains("write-quorum-one"), "{refused}");
    }
}
