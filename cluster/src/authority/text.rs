//! One-line text forms of binary statements (`KIND:base64url`), for files people copy
//! and for tokens pasted on a command line.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Why a text is not of the expected kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not {what}: {reason}")]
pub struct TextError {
    what: &'static str,
    reason: &'static str,
}

/// `kind:base64url(bytes)`.
pub fn armour(kind: &str, bytes: &[u8]) -> String {
    format!("{kind}:{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// The bytes of a text made by [`armour`] with `kind`; `what` names it in errors. Input
/// longer than `bytes_max` once decoded is refused before decoding.
///
/// # Errors
/// [`TextError`] for another kind, bad base64 or oversize input.
pub fn dearmour(
    kind: &str,
    what: &'static str,
    text: &str,
    bytes_max: u64,
) -> Result<Vec<u8>, TextError> {
    let payload = text
        .trim()
        .strip_prefix(kind)
        .and_then(|rest| rest.strip_prefix(':'))
        .ok_or(TextError {
            what,
            reason: "it does not start with the expected prefix",
        })?;
    if payload.len() as u64 / 4 * 3 > bytes_max {
        return Err(TextError {
            what,
            reason: "too long",
        });
    }
    URL_SAFE_NO_PAD.decode(payload).map_err(|_| TextError {
        what,
        reason: "not base64url",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn armour_round_trips_and_checks_kind_and_size() {
        let text = armour("andromede-x-v1", b"hello");
        assert_eq!(
            dearmour("andromede-x-v1", "x", &text, 10).unwrap(),
            b"hello"
        );
        assert!(dearmour("andromede-y-v1", "x", &text, 10).is_err());
        assert!(dearmour("andromede-x-v1", "x", &text, 2).is_err());
        assert!(dearmour("andromede-x-v1", "x", "andromede-x-v1:!!", 10).is_err());
    }
}
