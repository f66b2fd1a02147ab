//! Cutting the input into segments: each read fills one buffer laid out for in-place
//! sealing (room for the nonce in front, the tag and Reed-Solomon padding behind), so a
//! segment's bytes are never copied between reading and hashing.

use tokio::io::{AsyncRead, AsyncReadExt};

use super::seal::{NONCE_BYTES, TAG_BYTES};

/// A buffer ready to receive up to `segment_bytes` of plaintext after the nonce space.
pub(super) fn segment_buffer(segment_bytes: usize, k: u8) -> Vec<u8> {
    // Spare capacity beyond the sealed length: up to k-1 bytes of padding, plus the 32
    // bytes tokio's read_to_end reserves before it sees the end of a `Take`.
    let mut buf = Vec::with_capacity(NONCE_BYTES + segment_bytes + TAG_BYTES + usize::from(k) + 32);
    buf.resize(NONCE_BYTES, 0);
    buf
}

/// Reads up to `segment_bytes` into `buf` (after its nonce space). Returns the number of
/// plaintext bytes read; fewer than `segment_bytes` means the input has ended.
pub(super) async fn read_segment<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    segment_bytes: usize,
) -> std::io::Result<usize> {
    let limit = u64::try_from(segment_bytes).unwrap_or(u64::MAX);
    reader.take(limit).read_to_end(buf).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_whole_segments_without_reallocating() {
        let data = vec![7u8; 250];
        let mut reader = &data[..];
        let mut sizes = Vec::new();
        loop {
            let mut buf = segment_buffer(100, 4);
            let capacity = buf.capacity();
            let n = read_segment(&mut reader, &mut buf, 100).await.unwrap();
            assert_eq!(buf.capacity(), capacity);
            assert_eq!(buf.len(), NONCE_BYTES + n);
            sizes.push(n);
            if n < 100 {
                break;
            }
        }
        assert_eq!(sizes, [100, 100, 50]);
    }
}
