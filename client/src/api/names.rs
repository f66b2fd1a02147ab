//! Bucket names and object keys: S3's rules, so that names that work here work with the
//! tools users already have.

use andromede_proto::limits::OBJECT_KEY_BYTES_MAX;

use super::ClientError;

/// Checks a bucket name: 3 to 63 characters, lowercase letters, digits, `-` and `.`,
/// starting and ending with a letter or digit.
///
/// # Errors
/// [`ClientError::InvalidBucketName`] naming the rule broken.
pub fn validate_bucket_name(name: &str) -> Result<(), ClientError> {
    let invalid = |reason| {
        Err(ClientError::InvalidBucketName {
            name: name.to_owned(),
            reason,
        })
    };
    if !(3..=63).contains(&name.len()) {
        return invalid("must be 3 to 63 characters long");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    {
        return invalid("only lowercase letters, digits, '-' and '.' are allowed");
    }
    let edge_ok = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !edge_ok(name.bytes().next()) || !edge_ok(name.bytes().last()) {
        return invalid("must start and end with a letter or digit");
    }
    if name.contains("..") {
        return invalid("must not contain '..'");
    }
    Ok(())
}

/// Checks an object key: 1 to 1024 bytes of UTF-8 (a Rust `str` already is).
///
/// # Errors
/// [`ClientError::InvalidKey`].
pub fn validate_key(key: &str) -> Result<(), ClientError> {
    if key.is_empty() {
        return Err(ClientError::InvalidKey {
            reason: "must not be empty",
        });
    }
    if key.len() as u64 > OBJECT_KEY_BYTES_MAX {
        return Err(ClientError::InvalidKey {
            reason: "must be at most 1024 bytes",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_bucket_rules() {
        for good in ["abc", "my-bucket.2", &"a".repeat(63)] {
            assert!(validate_bucket_name(good).is_ok(), "{good}");
        }
        for bad in ["ab", "Abc", "-abc", "abc-", "a..b", "a_b", &"a".repeat(64)] {
            assert!(validate_bucket_name(bad).is_err(), "{bad}");
        }
        assert!(validate_key("").is_err());
        assert!(validate_key(&"k".repeat(1025)).is_err());
        assert!(validate_key("dir/ü.txt").is_ok());
    }
}
