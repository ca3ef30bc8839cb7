//! The simulated link: each direction of a connection is a queue of timestamped chunks,
//! delivered one delay after they were read; the client's first bytes wait for the connect
//! round trip. Faults act on the bytes going to the client.

use crate::http::{Head, MessageCounter, Side};
use crate::log::{Protocol, RequestSlot};
use crate::{Fault, Shared};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

/// Bytes read per chunk.
pub(crate) const READ_BUF: usize = 64 * 1024;

/// One chunk in a direction's queue.
enum Item {
    Data(Instant, Vec<u8>),
    Eof(Instant),
}

/// Per-connection state both directions share.
#[derive(Debug)]
pub(crate) struct Conn {
    /// The connection's id in the proxy's records.
    pub(crate) id: u64,
    /// For each request whose response has not started: whether it was a `HEAD`, and its
    /// record.
    pending: Mutex<VecDeque<(bool, Option<RequestSlot>)>>,
    /// Set when the connection must end at once (an error, or a reset fault).
    pub(crate) kill: Notify,
}

impl Conn {
    pub(crate) fn new(id: u64) -> Self {
        Self {
            id,
            pending: Mutex::new(VecDeque::new()),
            kill: Notify::new(),
        }
    }

    /// Requests counted on this connection that were never answered.
    pub(crate) fn unanswered(&self) -> usize {
        self.pending.lock().map(|p| p.len()).unwrap_or(0)
    }
}

/// Where a direction delivers: the client's socket (which a reset fault can reset), or the
/// in-process end of a TLS connection.
pub(crate) trait Sink: AsyncWrite + Unpin {
    /// Makes the next close a reset (RST) rather than a FIN, where that means something.
    fn arm_reset(&mut self) {}
}

impl Sink for tokio::net::tcp::WriteHalf<'_> {
    fn arm_reset(&mut self) {
        let _ = self.as_ref().set_zero_linger();
    }
}

impl<T: AsyncRead + AsyncWrite> Sink for tokio::io::WriteHalf<T> {}

/// A plain connection: the client's bytes to `upstream` and back through the link, HTTP/1.1
/// heads counted on the way.
pub(crate) async fn plain(mut client: TcpStream, upstream: SocketAddr, shared: Arc<Shared>) {
    let opened = std::time::Instant::now();
    let accepted = Instant::from_std(opened);
    let id = shared.log.connection_opened(opened, Protocol::Http1);
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    // Borrowed halves: dropping them does not send FIN, so a reset fault resets.
    let (client_read, client_write) = client.split();
    let (server_read, server_write) = server.split();
    let conn = Conn::new(id);
    // The handshake the client did not wait for: its first bytes leave at accepted + 2d.
    let ready_at = accepted + shared.delay() * 2;
    let up = direction(
        client_read,
        server_write,
        Side::Request,
        ready_at,
        true,
        &shared,
        &conn,
    );
    let down = direction(
        server_read,
        client_write,
        Side::Response,
        accepted,
        true,
        &shared,
        &conn,
    );
    tokio::select! {
        _ = async { tokio::join!(up, down) } => {}
        () = conn.kill.notified() => {}
    }
    // Requests this connection left unanswered are no longer in flight.
    shared.log.abandoned(conn.unanswered());
}

/// Pumps one direction: a reader that timestamps chunks and a writer that delivers each at
/// its time. `counting`: follow HTTP/1.1 heads in these bytes (plain connections).
pub(crate) async fn direction<R, W>(
    mut from: R,
    mut to: W,
    side: Side,
    ready_at: Instant,
    counting: bool,
    shared: &Shared,
    conn: &Conn,
) where
    R: AsyncRead + Unpin,
    W: Sink,
{
    let (tx, mut rx) = mpsc::unbounded_channel::<Item>();
    let reader = async {
        let mut counter = MessageCounter::new(side);
        let mut buf = vec![0u8; READ_BUF];
        loop {
            match from.read(&mut buf).await {
                Ok(0) => {
                    let at = Instant::now().max(ready_at) + shared.delay();
                    let _ = tx.send(Item::Eof(at));
                    return;
                }
                Ok(n) => {
                    let at = Instant::now().max(ready_at) + shared.delay();
                    if counting {
                        count(&mut counter, &buf[..n], side, at, shared, conn);
                    }
                    if tx.send(Item::Data(at, buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
                Err(_) => {
                    conn.kill.notify_one();
                    return;
                }
            }
        }
    };
    let writer = async {
        let mut sent: u64 = 0;
        let mut fault = shared.fault.subscribe();
        while let Some(item) = rx.recv().await {
            match item {
                Item::Eof(at) => {
                    crate::clock::sleep_until(at.into_std()).await;
                    let _ = to.shutdown().await;
                    return;
                }
                Item::Data(at, bytes) => {
                    crate::clock::sleep_until(at.into_std()).await;
                    if side == Side::Response {
                        // Hold while stalled.
                        if fault
                            .wait_for(|f| *f != Fault::StallResponses)
                            .await
                            .is_err()
                        {
                            return;
                        }
                        let current = *fault.borrow();
                        let cut = match current {
                            Fault::ResetMidResponse { after_bytes } => Some((after_bytes, true)),
                            Fault::TruncateResponse { after_bytes } => Some((after_bytes, false)),
                            _ => None,
                        };
                        if let Some((after_bytes, reset)) = cut {
                            let room = after_bytes.saturating_sub(sent);
                            if room < bytes.len() as u64 {
                                let head = &bytes[..usize::try_from(room).unwrap_or(0)];
                                let _ = to.write_all(head).await;
                                let _ = to.flush().await;
                                if reset {
                                    to.arm_reset();
                                } else {
                                    let _ = to.shutdown().await;
                                }
                                conn.kill.notify_one();
                                return;
                            }
                        }
                    }
                    sent += bytes.len() as u64;
                    if to.write_all(&bytes).await.is_err() {
                        conn.kill.notify_one();
                        return;
                    }
                }
            }
        }
    };
    tokio::join!(reader, writer);
}

/// Feeds the counter and updates the log for each head; requests arrive upstream at `at`.
fn count(
    counter: &mut MessageCounter,
    bytes: &[u8],
    side: Side,
    at: Instant,
    shared: &Shared,
    conn: &Conn,
) {
    let log = &shared.log;
    counter.feed(bytes, &mut |head| match head {
        Head::Request { is_head, head } => {
            let slot = log.request_started(conn.id, Protocol::Http1, head, at.into_std());
            if let Ok(mut pending) = conn.pending.lock() {
                pending.push_back((is_head, slot));
            }
            true
        }
        Head::Response { status } => {
            debug_assert_eq!(side, Side::Response);
            let was = conn.pending.lock().ok().and_then(|mut p| p.pop_front());
            match was {
                Some((is_head, slot)) => {
                    log.response_started(slot, status, true);
                    !is_head
                }
                // An answer without a counted request (a request this counter could not
                // follow).
                None => {
                    log.response_started(None, status, false);
                    true
                }
            }
        }
    });
}
