//! Grants (DESIGN.md, "Trust model"): what a client certificate allows, per bucket.
//!
//! A grant names buckets — one bucket, every bucket starting with a prefix (`photos-*`),
//! or every bucket (`*`) — and the rights it gives on them: `read` (get, head, list),
//! `write` (put, copy, multipart uploads), `delete` (delete objects) and `owner` (create
//! and delete the bucket, set its policy). `all` is the four. Rights add up across the
//! grants that name a bucket; nothing is allowed that no grant names.
//!
//! The text form, as `invite --grant` and the gateway's `key create --grant` take it, is
//! `BUCKET:RIGHT[+RIGHT…]` (`photos:read`, `backup-*:read+write`, `*:all`).

use std::fmt;
use std::str::FromStr;

use andromede_proto::limits::BUCKET_NAME_BYTES_MAX;

/// Grants one certificate carries at most (prefixes name many buckets at once; the
/// certificate stays within `CERTIFICATE_BYTES_MAX`).
pub const GRANTS_MAX: usize = 16;

/// A set of rights on a bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Rights(u8);

impl Rights {
    /// Get, head and list objects; see the bucket.
    pub const READ: Self = Self(1);
    /// Put, copy and upload objects.
    pub const WRITE: Self = Self(2);
    /// Delete objects.
    pub const DELETE: Self = Self(4);
    /// Create and delete the bucket, set its policy.
    pub const OWNER: Self = Self(8);
    /// Every right.
    pub const ALL: Self = Self(15);
    /// No right.
    pub const NONE: Self = Self(0);

    /// The rights from their wire bits (unknown bits are refused by the caller).
    pub fn from_bits(bits: u32) -> Option<Self> {
        u8::try_from(bits)
            .ok()
            .filter(|b| b & !Self::ALL.0 == 0)
            .map(Self)
    }

    /// The wire bits.
    pub fn bits(self) -> u32 {
        u32::from(self.0)
    }

    /// Whether every right of `wanted` is here.
    pub fn contains(self, wanted: Self) -> bool {
        self.0 & wanted.0 == wanted.0
    }

    /// Both sets together.
    #[must_use]
    pub fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// What both sets allow.
    #[must_use]
    pub fn intersection(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    /// Whether no right is here.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    const NAMES: [(Self, &'static str); 4] = [
        (Self::READ, "read"),
        (Self::WRITE, "write"),
        (Self::DELETE, "delete"),
        (Self::OWNER, "owner"),
    ];
}

impl fmt::Display for Rights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Self::ALL {
            return f.write_str("all");
        }
        if self.is_empty() {
            return f.write_str("none");
        }
        let names: Vec<&str> = Self::NAMES
            .iter()
            .filter(|(right, _)| self.contains(*right))
            .map(|(_, name)| *name)
            .collect();
        f.write_str(&names.join("+"))
    }
}

impl FromStr for Rights {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut rights = Self::NONE;
        for name in s.split('+') {
            rights = rights.union(match name {
                "all" => Self::ALL,
                other => Self::NAMES
                    .iter()
                    .find(|(_, n)| *n == other)
                    .map(|(right, _)| *right)
                    .ok_or_else(|| {
                        format!("unknown right {other:?} (read, write, delete, owner or all)")
                    })?,
            });
        }
        Ok(rights)
    }
}

/// Rights on the buckets a pattern names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Grant {
    /// A bucket name, `prefix*` for every bucket starting with `prefix`, or `*`.
    pub buckets: String,
    /// What is allowed on them.
    pub rights: Rights,
}

impl Grant {
    /// Every right on every bucket.
    pub fn everything() -> Self {
        Self {
            buckets: "*".to_owned(),
            rights: Rights::ALL,
        }
    }

    /// Whether the grant names `bucket`.
    pub fn covers(&self, bucket: &str) -> bool {
        pattern_covers(&self.buckets, bucket)
    }

    /// Whether the pattern is a bucket name, `prefix*` or `*`.
    ///
    /// # Errors
    /// What is wrong with it.
    pub fn check(&self) -> Result<(), String> {
        let name = self.buckets.strip_suffix('*').unwrap_or(&self.buckets);
        let valid = (self.buckets.ends_with('*') || !name.is_empty())
            && self.buckets.len() as u64 <= BUCKET_NAME_BYTES_MAX
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !valid {
            return Err(format!(
                "grant {:?}: the bucket must be a bucket name, a prefix followed by '*', or '*'",
                self.buckets
            ));
        }
        if self.rights.is_empty() {
            return Err(format!("grant {:?}: no right given", self.buckets));
        }
        Ok(())
    }
}

impl FromStr for Grant {
    type Err = String;

    /// `BUCKET:RIGHT[+RIGHT…]`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (buckets, rights) = s.rsplit_once(':').ok_or_else(|| {
            format!("grant {s:?}: write BUCKET:RIGHTS, as photos:read or backup-*:read+write")
        })?;
        let grant = Self {
            buckets: buckets.to_owned(),
            rights: rights.parse().map_err(|e| format!("grant {s:?}: {e}"))?,
        };
        grant.check()?;
        Ok(grant)
    }
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.buckets, self.rights)
    }
}

/// What a set of grants allows on `bucket`: the rights of every grant that names it.
pub fn rights_on(grants: &[Grant], bucket: &str) -> Rights {
    grants
        .iter()
        .filter(|g| g.covers(bucket))
        .fold(Rights::NONE, |rights, g| rights.union(g.rights))
}

/// Whether a bucket pattern (a bucket name, `prefix*`, or `*`) names `bucket`: the one
/// rule for certificate grants and for the S3 gateway's key grants.
pub fn pattern_covers(pattern: &str, bucket: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => bucket.starts_with(prefix),
        None => pattern == bucket,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_parse_print_and_add_up() {
        let grants: Vec<Grant> = ["photos:read", "backup-*:read+write", "backup-old:delete"]
            .iter()
            .map(|g| g.parse().unwrap())
            .collect();
        assert_eq!(grants[1].to_string(), "backup-*:read+write");
        assert_eq!(rights_on(&grants, "photos"), Rights::READ);
        assert_eq!(rights_on(&grants, "photos2"), Rights::NONE);
        assert_eq!(
            rights_on(&grants, "backup-old"),
            Rights::READ.union(Rights::WRITE).union(Rights::DELETE)
        );
        assert!(!rights_on(&grants, "backup-new").contains(Rights::DELETE));
        let all: Grant = "*:all".parse().unwrap();
        assert_eq!(all, Grant::everything());
        assert_eq!(all.to_string(), "*:all");
        assert_eq!(rights_on(&[all], "anything"), Rights::ALL);
    }

    #[test]
    fn malformed_grants_are_refused() {
        for bad in [
            "photos",
            "photos:",
            "photos:admin",
            ":read",
            "Photos:read",
            "pho*tos:read",
            "photos:read+",
        ] {
            assert!(bad.parse::<Grant>().is_err(), "{bad}");
        }
        assert!(Rights::from_bits(16).is_none());
        assert_eq!(Rights::from_bits(15), Some(Rights::ALL));
    }
}
