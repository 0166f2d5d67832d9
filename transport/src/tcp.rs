//! TCP: framed messages over a tokio `TcpStream`, the transport that works everywhere.
//!
//! [`TcpTransport`] is the client side: one connection, many requests in flight, replies matched
//! by request id. [`serve`] is the worker side: it accepts connections, checks each handshake and
//! runs every request through a [`Handler`], so the worker crate never touches sockets or frames.

mod client;
mod server;

pub(crate) use client::{BoxRead, BoxWrite, Framed, hello_reply, hello_request};
pub use client::{ConnectOptions, TcpTransport};
pub use server::{Handler, ServerConfig, serve};
pub(crate) use server::{SharedWriter, early_refusal, handshake_done, read_hello, refusal, run_requests};

use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::error::TransportResult;
use crate::wire::{Outgoing, Payload, encode_message};

/// Write one frame (header, message, payload pieces) and flush.
async fn write_frame<W: AsyncWrite + Unpin>(
    writer: &mut W,
    request_id: u64,
    message: Outgoing<'_>,
    payload: &Payload,
) -> TransportResult<()> {
    let head = encode_message(request_id, message, payload.len())?;
    writer.write_all(&head).await?;
    for piece in &payload.0 {
        writer.write_all(piece).await?;
    }
    writer.flush().await?;
    Ok(())
}

/// Compare two secrets in time that does not depend on where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
pub(crate) mod tests;
