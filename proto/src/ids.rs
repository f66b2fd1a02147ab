//! Fixed-size identifiers. Each checks its length when built from bytes, prints as hex,
//! and has a `short()` form (8 hex characters) for logs.

use std::fmt;

/// A byte string had the wrong length for the identifier it was meant to be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} must be {expected} bytes, got {actual}")]
pub struct IdLengthError {
    /// Which identifier was being built.
    pub kind: &'static str,
    /// Its required length.
    pub expected: usize,
    /// The length received.
    pub actual: usize,
}

macro_rules! fixed_id {
    ($(#[$doc:meta])* $name:ident, $len:expr, $kind:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// Length in bytes.
            pub const LEN: usize = $len;

            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            /// First 8 hex characters, for logs.
            pub fn short(&self) -> String {
                hex::encode(&self.0[..4])
            }

            /// Parses the full hex form.
            ///
            /// # Errors
            /// If `s` is not `2 * LEN` hex characters.
            pub fn from_hex(s: &str) -> Result<Self, IdLengthError> {
                let bytes = hex::decode(s).map_err(|_| IdLengthError {
                    kind: $kind,
                    expected: $len,
                    actual: s.len() / 2,
                })?;
                Self::try_from(bytes.as_slice())
            }
        }

        impl TryFrom<&[u8]> for $name {
            type Error = IdLengthError;

            fn try_from(bytes: &[u8]) -> Result<Self, Self::Error> {
                <[u8; $len]>::try_from(bytes).map($name).map_err(|_| IdLengthError {
                    kind: $kind,
                    expected: $len,
                    actual: bytes.len(),
                })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.short())
            }
        }
    };
}

fixed_id!(
    /// A shard's name: the blake3 hash of its bytes, so any holder can verify it.
    ShardId, 32, "shard id"
);
fixed_id!(
    /// An object version: 16 random bytes, bound into every seal of that version.
    VersionId, 16, "version id"
);
fixed_id!(
    /// A bucket's position in the DHT key space (its replicas are the closest peers).
    BucketId, 32, "bucket id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_length_is_refused() {
        let err = ShardId::try_from(&[0u8; 31][..]).unwrap_err();
        assert_eq!(err.expected, 32);
        assert_eq!(err.actual, 31);
        assert!(VersionId::try_from(&[0u8; 17][..]).is_err());
        assert!(ShardId::from_hex("zz").is_err());
    }

    #[test]
    fn hex_round_trip_and_short_form() {
        let id = ShardId([0xab; 32]);
        assert_eq!(ShardId::from_hex(&id.to_string()).unwrap(), id);
        assert_eq!(id.short(), "abababab");
        assert_eq!(format!("{id:?}"), "ShardId(abababab)");
    }
}
