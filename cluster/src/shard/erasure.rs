//! Systematic Reed-Solomon over GF(2^8): `k` data shards are slices of the sealed segment
//! itself, `m` parity shards are computed. The code is deterministic, so a shard rebuilt by
//! repair has the same bytes, and therefore the same id, as the original.
//!
//! Repair in the node uses this module too: one implementation of the code.

use reed_solomon_erasure::galois_8::ReedSolomon;

use crate::error::ErasureError;
use andromede_proto::limits::SHARD_COUNT_MAX;

/// Data and parity shard counts of a bucket, validated: `k ≥ 1`, `m ≥ 1`, `k + m ≤ 255`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErasureParams {
    k: u8,
    m: u8,
}

impl ErasureParams {
    /// The default, RS(4,2): 1.5× storage, survives any 2 lost shards per segment.
    pub const DEFAULT: Self = Self { k: 4, m: 2 };

    /// Validates `k` and `m`.
    ///
    /// # Errors
    /// [`ErasureError::InvalidParameter`] when out of range.
    pub fn new(k: u32, m: u32) -> Result<Self, ErasureError> {
        let invalid = |field, value: u32| ErasureError::InvalidParameter {
            field,
            value: u64::from(value),
            allowed: "k >= 1, m >= 1, k + m <= 255",
        };
        if k == 0 || u64::from(k) >= SHARD_COUNT_MAX {
            return Err(invalid("k", k));
        }
        if m == 0 || u64::from(k) + u64::from(m) > SHARD_COUNT_MAX {
            return Err(invalid("m", m));
        }
        let k = u8::try_from(k).map_err(|_| invalid("k", k))?;
        let m = u8::try_from(m).map_err(|_| invalid("m", m))?;
        Ok(Self { k, m })
    }

    /// Data shards per segment.
    pub fn k(&self) -> u8 {
        self.k
    }

    /// Parity shards per segment.
    pub fn m(&self) -> u8 {
        self.m
    }

    /// Shards per segment (`k + m`).
    pub fn shard_count(&self) -> usize {
        usize::from(self.k) + usize::from(self.m)
    }

    /// Bytes of each shard of a segment whose sealed form is `sealed_bytes` long.
    pub fn shard_bytes(&self, sealed_bytes: u64) -> u64 {
        sealed_bytes.div_ceil(u64::from(self.k))
    }
}

/// A Reed-Solomon coder for one `(k, m)`.
#[derive(Debug)]
pub struct Erasure {
    params: ErasureParams,
    rs: ReedSolomon,
}

impl Erasure {
    /// Builds the coder (its matrix) for `params`.
    ///
    /// # Errors
    /// Never for validated params; the error path maps the crate's own refusal.
    pub fn new(params: ErasureParams) -> Result<Self, ErasureError> {
        let rs = ReedSolomon::new(usize::from(params.k), usize::from(params.m)).map_err(|_| {
            ErasureError::InvalidParameter {
                field: "k + m",
                value: params.shard_count() as u64,
                allowed: "k >= 1, m >= 1, k + m <= 255",
            }
        })?;
        Ok(Self { params, rs })
    }

    /// The parameters of this coder.
    pub fn params(&self) -> ErasureParams {
        self.params
    }

    /// Computes the `m` parity shards of `data`, which holds the `k` data shards back to
    /// back (its length is a multiple of `k`).
    ///
    /// # Errors
    /// [`ErasureError::ShardSize`] if `data` is empty or not a multiple of `k` long.
    pub fn encode_parity(&self, data: &[u8]) -> Result<Vec<Vec<u8>>, ErasureError> {
        let k = usize::from(self.params.k);
        let shard_len = data.len() / k;
        if shard_len == 0 || shard_len * k != data.len() {
            return Err(ErasureError::ShardSize {
                bytes: data.len() as u64,
                expected: (shard_len.max(1) * k) as u64,
            });
        }
        let data_shards: Vec<&[u8]> = data.chunks_exact(shard_len).collect();
        let mut parity = vec![vec![0u8; shard_len]; usize::from(self.params.m)];
        self.rs
            .encode_sep(&data_shards, &mut parity)
            .map_err(|_| ErasureError::ShardSize {
                bytes: data.len() as u64,
                expected: (shard_len * k) as u64,
            })?;
        Ok(parity)
    }

    /// Fills in every missing (`None`) shard from any `k` present ones, all of `shard_bytes`.
    /// Repair uses this: it must rebuild parity shards too.
    ///
    /// # Errors
    /// [`ErasureError::ShardSize`] if a present shard has the wrong length;
    /// [`ErasureError::SegmentUnrecoverable`] (segment 0: the caller knows which) if fewer
    /// than `k` shards are present.
    pub fn reconstruct(
        &self,
        shards: &mut [Option<Vec<u8>>],
        shard_bytes: usize,
    ) -> Result<(), ErasureError> {
        self.reconstruct_with(shards, shard_bytes, false)
    }

    /// Like [`Erasure::reconstruct`] but fills in only the data shards: all a read needs,
    /// and cheaper when parity shards are missing too.
    ///
    /// # Errors
    /// As [`Erasure::reconstruct`].
    pub fn reconstruct_data(
        &self,
        shards: &mut [Option<Vec<u8>>],
        shard_bytes: usize,
    ) -> Result<(), ErasureError> {
        self.reconstruct_with(shards, shard_bytes, true)
    }

    fn reconstruct_with(
        &self,
        shards: &mut [Option<Vec<u8>>],
        shard_bytes: usize,
        data_only: bool,
    ) -> Result<(), ErasureError> {
        if shards.len() != self.params.shard_count() {
            return Err(ErasureError::InvalidParameter {
                field: "shard count",
                value: shards.len() as u64,
                allowed: "exactly k + m",
            });
        }
        if let Some(bad) = shards.iter().flatten().find(|s| s.len() != shard_bytes) {
            return Err(ErasureError::ShardSize {
                bytes: bad.len() as u64,
                expected: shard_bytes as u64,
            });
        }
        let present = shards.iter().filter(|s| s.is_some()).count();
        if present < usize::from(self.params.k) {
            return Err(ErasureError::SegmentUnrecoverable {
                segment: 0,
                valid: u8::try_from(present).unwrap_or(u8::MAX),
                needed: self.params.k,
            });
        }
        let result = if data_only {
            self.rs.reconstruct_data(shards)
        } else {
            self.rs.reconstruct(shards)
        };
        result.map_err(|_| ErasureError::SegmentUnrecoverable {
            segment: 0,
            valid: u8::try_from(present).unwrap_or(u8::MAX),
            needed: self.params.k,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_validated() {
        assert!(ErasureParams::new(0, 1).is_err());
        assert!(ErasureParams::new(1, 0).is_err());
        assert!(ErasureParams::new(200, 56).is_err());
        assert!(ErasureParams::new(255, 1).is_err());
        let p = ErasureParams::new(200, 55).unwrap();
        assert_eq!(p.shard_count(), 255);
        assert_eq!(ErasureParams::DEFAULT.shard_bytes(41), 11);
    }

    #[test]
    fn reconstructs_any_m_missing() {
        let erasure = Erasure::new(ErasureParams::new(3, 2).unwrap()).unwrap();
        let data: Vec<u8> = (0..30u8).collect();
        let parity = erasure.encode_parity(&data).unwrap();
        let all: Vec<Vec<u8>> = data.chunks(10).map(<[u8]>::to_vec).chain(parity).collect();
        for a in 0..5 {
            for b in a + 1..5 {
                let mut shards: Vec<Option<Vec<u8>>> = all.iter().cloned().map(Some).collect();
                shards[a] = None;
                shards[b] = None;
                erasure.reconstruct(&mut shards, 10).unwrap();
                let rebuilt: Vec<Vec<u8>> = shards.into_iter().map(Option::unwrap).collect();
                assert_eq!(rebuilt, all);
            }
        }
        let mut too_few: Vec<Option<Vec<u8>>> = all.iter().cloned().map(Some).collect();
        too_few[0] = None;
        too_few[1] = None;
        too_few[2] = None;
        assert!(matches!(
            erasure.reconstruct(&mut too_few, 10),
            Err(ErasureError::SegmentUnrecoverable {
                valid: 2,
                needed: 3,
                ..
            })
        ));
        let mut wrong_size: Vec<Option<Vec<u8>>> = all.iter().cloned().map(Some).collect();
        wrong_size[4] = Some(vec![0; 9]);
        assert!(matches!(
            erasure.reconstruct(&mut wrong_size, 10),
            Err(ErasureError::ShardSize { .. })
        ));
        assert!(erasure.encode_parity(&data[..29]).is_err());
    }
}
