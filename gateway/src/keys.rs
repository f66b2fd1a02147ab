//! S3 access keys: an id, a secret, and grants — per bucket (a name, a `prefix*`, or `*`)
//! read, write or owner, plus the right to create buckets.
//!
//! Keys are client-private values of the cluster (namespace [`NAMESPACE`]), sealed under
//! the tenant master key: every gateway of the cluster sees the same keys, and no storage
//! node can read them. SigV4 needs the secret itself on the verifying side (it is an HMAC
//! key), so it is stored sealed rather than hashed.
//!
//! [`KeyStore`] keeps what it read for [`KEY_CACHE_TTL`]: a key deleted on one gateway stops
//! working on the others within that time. Unknown ids are remembered as unknown for the
//! same time, so a flood of made-up ids costs one cluster read per id per period, and the
//! cache holds at most [`KEY_CACHE_ENTRIES_MAX`] entries.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use andromede_client::{Client, ClientError};
use andromede_cluster::authority::{Grant as CertifiedGrant, Rights};
use base64::Engine as _;
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};

/// The private-value namespace access keys live in.
pub const NAMESPACE: &str = "s3-access-keys";
/// How long a key read from the cluster is used before it is read again.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(10);
/// Keys (known or unknown) remembered at most; the cache is emptied when full.
pub const KEY_CACHE_ENTRIES_MAX: usize = 4096;
/// Grants one key holds at most.
pub const GRANTS_MAX: usize = 256;

/// What a grant allows on the buckets it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    /// Get, head and list objects.
    Read,
    /// Read, plus put, copy, delete objects and multipart uploads.
    Write,
    /// Write, plus delete the bucket.
    Owner,
}

impl Permission {
    fn allows(self, wanted: Permission) -> bool {
        self >= wanted
    }

    /// The certificate rights its S3 operations need on a bucket.
    pub fn rights(self) -> Rights {
        match self {
            Self::Read => Rights::READ,
            Self::Write => Rights::READ.union(Rights::WRITE).union(Rights::DELETE),
            Self::Owner => Rights::ALL,
        }
    }

    /// The widest permission `rights` carry (none below read).
    fn within(rights: Rights) -> Option<Self> {
        [Self::Owner, Self::Write, Self::Read]
            .into_iter()
            .find(|p| rights.contains(p.rights()))
    }
}

/// A permission on the buckets a pattern names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// A bucket name, `prefix*` for every bucket starting with `prefix`, or `*`.
    pub bucket: String,
    /// What is allowed.
    pub permission: Permission,
}

impl Grant {
    fn covers(&self, bucket: &str) -> bool {
        andromede_cluster::authority::grant::pattern_covers(&self.bucket, bucket)
    }

    /// Whether a certificate grant gives at least this on every bucket this names.
    fn within(&self, certified: &CertifiedGrant) -> bool {
        let names_all = match certified.buckets.strip_suffix('*') {
            // `photos*` names `photos-a` and `photos-*`.
            Some(prefix) => self.bucket.starts_with(prefix),
            None => !self.bucket.ends_with('*') && self.bucket == certified.buckets,
        };
        names_all && certified.rights.contains(self.permission.rights())
    }
}

/// The grants an access key of a gateway certified with `certified` starts with: each
/// certificate grant at the widest permission it carries, and the right to create
/// buckets when some grant carries `owner` (what `init` gives its first key).
pub fn admin_grants(certified: &[CertifiedGrant]) -> (Vec<Grant>, bool) {
    let grants = certified
        .iter()
        .filter_map(|g| {
            Permission::within(g.rights).map(|permission| Grant {
                bucket: g.buckets.clone(),
                permission,
            })
        })
        .collect();
    let create = certified.iter().any(|g| g.rights.contains(Rights::OWNER));
    (grants, create)
}

impl std::str::FromStr for Grant {
    type Err = String;

    /// `BUCKET:read|write|owner`, as `key create --grant` takes it.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (bucket, permission) = s.rsplit_once(':').ok_or_else(|| {
            format!("grant {s:?}: write BUCKET:read, BUCKET:write or BUCKET:owner")
        })?;
        let permission = match permission {
            "read" => Permission::Read,
            "write" => Permission::Write,
            "owner" => Permission::Owner,
            other => {
                return Err(format!(
                    "grant {s:?}: unknown permission {other:?} (read, write or owner)"
                ));
            }
        };
        let valid = !bucket.is_empty()
            && bucket.len() <= 63
            && bucket[..bucket.len() - usize::from(bucket.ends_with('*'))]
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !valid {
            return Err(format!(
                "grant {s:?}: the bucket must be a bucket name, a prefix followed by '*', or '*'"
            ));
        }
        Ok(Self {
            bucket: bucket.to_owned(),
            permission,
        })
    }
}

impl std::fmt::Display for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let permission = match self.permission {
            Permission::Read => "read",
            Permission::Write => "write",
            Permission::Owner => "owner",
        };
        write!(f, "{}:{permission}", self.bucket)
    }
}

/// One access key as stored.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessKey {
    /// The public id (`AKAND…`).
    pub id: String,
    /// The SigV4 secret.
    pub secret: String,
    /// Who or what it is for.
    pub name: String,
    /// May create buckets (and then owns those it creates).
    pub create_buckets: bool,
    /// What it may do to which buckets.
    pub grants: Vec<Grant>,
    /// When it was made (ms since the Unix epoch).
    pub created_ms: u64,
}

impl std::fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKey")
            .field("id", &self.id)
            .field("secret", &"[redacted]")
            .field("name", &self.name)
            .field("create_buckets", &self.create_buckets)
            .field("grants", &self.grants)
            .finish()
    }
}

impl AccessKey {
    /// A new key with a random id and secret.
    pub fn generate(name: &str, grants: Vec<Grant>, create_buckets: bool) -> Self {
        const ID_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        let mut raw = [0u8; 15];
        OsRng.fill_bytes(&mut raw);
        let id: String = "AKAND"
            .chars()
            .chain(
                raw.iter()
                    .map(|b| char::from(ID_ALPHABET[usize::from(b % 32)])),
            )
            .collect();
        let mut secret = [0u8; 30];
        OsRng.fill_bytes(&mut secret);
        Self {
            id,
            secret: base64::engine::general_purpose::STANDARD.encode(secret),
            name: name.to_owned(),
            create_buckets,
            grants,
            created_ms: andromede_cluster::authority::unix_now().saturating_mul(1000),
        }
    }

    /// Whether this key may do what `wanted` needs on `bucket`.
    pub fn allows(&self, bucket: &str, wanted: Permission) -> bool {
        self.grants
            .iter()
            .any(|g| g.covers(bucket) && g.permission.allows(wanted))
    }

    /// Whether the gateway's certificate (`certified`) allows what this key is given:
    /// every grant within one of the certificate's, and bucket creation only with an
    /// `owner` grant there (the nodes refuse the rest anyway; this says so up front).
    ///
    /// # Errors
    /// The first grant beyond the certificate, in words.
    pub fn check_within(&self, certified: &[CertifiedGrant]) -> Result<(), String> {
        let shown = || {
            certified
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        if let Some(grant) = self
            .grants
            .iter()
            .find(|g| !certified.iter().any(|c| g.within(c)))
        {
            return Err(format!(
                "grant {grant} goes beyond this gateway's certificate ({}): ask the authority for a wider one",
                shown()
            ));
        }
        if self.create_buckets && !certified.iter().any(|g| g.rights.contains(Rights::OWNER)) {
            return Err(format!(
                "--create-buckets needs the owner right in this gateway's certificate ({})",
                shown()
            ));
        }
        Ok(())
    }

    /// Whether any grant names `bucket` (ListBuckets shows only those).
    pub fn sees(&self, bucket: &str) -> bool {
        self.grants.iter().any(|g| g.covers(bucket))
    }
}

/// Keys in the cluster, with a short-lived cache.
#[derive(Debug)]
pub struct KeyStore {
    client: Client,
    cache: Mutex<HashMap<String, (Instant, Option<AccessKey>)>>,
}

impl KeyStore {
    /// Keys of the cluster `client` is connected to.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The key `id`, from the cache when fresh; `None` when there is no such key.
    ///
    /// # Errors
    /// The cluster cannot be read (no quorum), or the record does not open.
    pub async fn get(&self, id: &str) -> Result<Option<AccessKey>, ClientError> {
        if let Ok(cache) = self.cache.lock()
            && let Some((at, key)) = cache.get(id)
            && at.elapsed() < KEY_CACHE_TTL
        {
            return Ok(key.clone());
        }
        let key = match self.client.get_private(NAMESPACE, id).await? {
            Some(bytes) => Some(decode(&bytes)?),
            None => None,
        };
        self.remember(id, key.clone());
        Ok(key)
    }

    fn remember(&self, id: &str, key: Option<AccessKey>) {
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= KEY_CACHE_ENTRIES_MAX {
                cache.clear();
            }
            cache.insert(id.to_owned(), (Instant::now(), key));
        }
    }

    /// Stores `key` (new, or changed).
    ///
    /// # Errors
    /// Too many grants, or a cluster write failure.
    pub async fn put(&self, key: &AccessKey) -> Result<(), ClientError> {
        if key.grants.len() > GRANTS_MAX {
            return Err(ClientError::InvalidArgument(format!(
                "a key holds at most {GRANTS_MAX} grants"
            )));
        }
        let bytes = serde_json::to_vec(key)
            .map_err(|e| ClientError::InvalidArgument(format!("encoding the key: {e}")))?;
        self.client.put_private(NAMESPACE, &key.id, &bytes).await?;
        self.remember(&key.id, Some(key.clone()));
        Ok(())
    }

    /// Every key.
    ///
    /// # Errors
    /// As [`KeyStore::get`].
    pub async fn list(&self) -> Result<Vec<AccessKey>, ClientError> {
        self.client
            .list_private(NAMESPACE)
            .await?
            .iter()
            .map(|(_, bytes)| decode(bytes))
            .collect()
    }

    /// Deletes key `id`; whether it existed.
    ///
    /// # Errors
    /// A cluster read or write failure.
    pub async fn delete(&self, id: &str) -> Result<bool, ClientError> {
        let existed = self.client.get_private(NAMESPACE, id).await?.is_some();
        self.client.delete_private(NAMESPACE, id).await?;
        self.remember(id, None);
        Ok(existed)
    }
}

fn decode(bytes: &[u8]) -> Result<AccessKey, ClientError> {
    serde_json::from_slice(bytes).map_err(|e| {
        ClientError::InvalidArgument(format!("an access key record does not decode: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_parse_and_cover() {
        let g: Grant = "photos:write".parse().unwrap();
        assert!(g.covers("photos") && !g.covers("photos2"));
        let p: Grant = "logs-*:read".parse().unwrap();
        assert!(p.covers("logs-2026") && !p.covers("log"));
        let all: Grant = "*:owner".parse().unwrap();
        assert!(all.covers("anything"));
        for bad in ["photos", "photos:admin", ":read", "Photos:read", "a/b:read"] {
            assert!(bad.parse::<Grant>().is_err(), "{bad}");
        }
        let key = AccessKey::generate("k", vec![g, p], false);
        assert!(key.allows("photos", Permission::Read));
        assert!(key.allows("photos", Permission::Write));
        assert!(!key.allows("photos", Permission::Owner));
        assert!(key.allows("logs-1", Permission::Read));
        assert!(!key.allows("logs-1", Permission::Write));
        assert!(!key.allows("other", Permission::Read));
        assert!(key.sees("logs-1") && !key.sees("other"));
        assert_eq!(key.id.len(), 20);
        assert!(key.id.starts_with("AKAND"));
        assert_eq!(key.secret.len(), 40);
        assert!(!format!("{key:?}").contains(&key.secret));
    }

    #[test]
    fn a_key_gets_no_more_than_the_gateways_certificate() {
        let certified: Vec<CertifiedGrant> = ["photos*:all", "logs:read"]
            .iter()
            .map(|g| g.parse().unwrap())
            .collect();
        let key = |grants: &[&str], create| {
            AccessKey::generate(
                "k",
                grants.iter().map(|g| g.parse().unwrap()).collect(),
                create,
            )
        };
        assert!(
            key(&["photos:owner", "photos-2*:write", "logs:read"], true)
                .check_within(&certified)
                .is_ok()
        );
        let error = key(&["logs:write"], false)
            .check_within(&certified)
            .unwrap_err();
        assert!(error.contains("grant logs:write goes beyond"), "{error}");
        assert!(key(&["*:read"], false).check_within(&certified).is_err());
        assert!(key(&["docs:read"], false).check_within(&certified).is_err());
        let readers: Vec<CertifiedGrant> = vec!["logs:read".parse().unwrap()];
        assert!(key(&["logs:read"], true).check_within(&readers).is_err());
        // The first key of a gateway: what its certificate allows, no more.
        let (grants, create) = admin_grants(&certified);
        assert_eq!(
            grants.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["photos*:owner", "logs:read"]
        );
        assert!(create);
        assert!(!admin_grants(&readers).1);
    }
}
