//! Length-prefixed frames for request-response protocols: a 4-byte big-endian length, then
//! the message. The length is checked against the protocol's limit before anything is
//! allocated, so a peer cannot make us buffer more than the limit, and the buffer grows
//! with the bytes that actually arrive. Messages stay bytes
//! here; the receiver decodes them with `decode_bounded` into validated domain types.

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use libp2p::request_response::Codec;

/// A request-response codec of raw frames with per-direction size limits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FrameCodec {
    pub(crate) request_bytes_max: usize,
    pub(crate) response_bytes_max: usize,
}

async fn read_frame<T: AsyncRead + Unpin + Send>(
    io: &mut T,
    bytes_max: usize,
) -> io::Result<Vec<u8>> {
    let mut prefix = [0u8; 4];
    io.read_exact(&mut prefix).await?;
    let len = usize::try_from(u32::from_be_bytes(prefix)).unwrap_or(usize::MAX);
    if len > bytes_max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds the limit of {bytes_max}"),
        ));
    }
    // Memory follows what arrives, never what was announced: the buffer doubles as it
    // fills, up to `len` exactly, so a peer that announces 60 MiB and sends little
    // costs little.
    let mut body = Vec::with_capacity(len.min(FIRST_READ_BYTES));
    while body.len() < len {
        if body.len() == body.capacity() {
            body.reserve_exact(body.capacity().min(len - body.len()));
        }
        let start = body.len();
        let end = body.capacity().min(len);
        body.resize(end, 0);
        let read = io.read(&mut body[start..end]).await?;
        body.truncate(start + read);
        if read == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(body)
}

/// Bytes a frame's buffer starts with.
const FIRST_READ_BYTES: usize = 64 * 1024;

async fn write_frame<T: AsyncWrite + Unpin + Send>(
    io: &mut T,
    body: &[u8],
    bytes_max: usize,
) -> io::Result<()> {
    let len = u32::try_from(body.len())
        .ok()
        .filter(|&len| len as usize <= bytes_max)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "frame of {} bytes exceeds the limit of {bytes_max}",
                    body.len()
                ),
            )
        })?;
    io.write_all(&len.to_be_bytes()).await?;
    io.write_all(body).await?;
    io.close().await
}

impl Codec for FrameCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, self.request_bytes_max).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, self.response_bytes_max).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &request, self.request_bytes_max).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &response, self.response_bytes_max).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_oversize_is_refused_before_allocation() {
        futures::executor::block_on(async {
            let mut wire = Vec::new();
            write_frame(&mut futures::io::Cursor::new(&mut wire), b"hello", 10)
                .await
                .unwrap();
            assert_eq!(read_frame(&mut &wire[..], 10).await.unwrap(), b"hello");
            assert!(read_frame(&mut &wire[..], 4).await.is_err());
            // A peer declaring 4 GiB gets an error, not an allocation.
            let huge = [0xff, 0xff, 0xff, 0xff];
            assert_eq!(
                read_frame(&mut &huge[..], 1 << 20)
                    .await
                    .unwrap_err()
                    .kind(),
                io::ErrorKind::InvalidData
            );
            // Truncated body.
            assert!(read_frame(&mut &wire[..6], 10).await.is_err());
            // A large frame arrives whole, in pieces.
            let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
            let mut wire = Vec::new();
            write_frame(&mut futures::io::Cursor::new(&mut wire), &big, 1 << 20)
                .await
                .unwrap();
            assert_eq!(read_frame(&mut &wire[..], 1 << 20).await.unwrap(), big);
            assert!(
                write_frame(&mut futures::io::Cursor::new(Vec::new()), &[0u8; 11], 10)
                    .await
                    .is_err()
            );
        });
    }
}
