//! Counting HTTP/1.1 message heads in a byte stream, without buffering bodies.
//!
//! A [`MessageCounter`] is fed the bytes of one direction of one connection, in order, in
//! chunks of any size. It finds each message head (`\r\n\r\n`), reads `Content-Length` and
//! `Transfer-Encoding: chunked`, skips the body and reports each head it completes. Anything
//! it cannot follow (an oversized head, an upgrade, a response delimited by the connection's
//! close) makes it stop counting on that connection rather than guess.

use crate::log::RequestHead;

/// The longest head the counter accepts before it gives up on the connection.
const MAX_HEAD: usize = 64 * 1024;

/// Which side of the exchange a stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// Client to upstream: requests.
    Request,
    /// Upstream to client: responses.
    Response,
}

/// A message head, as far as framing needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Head {
    /// A request; `is_head` when its method is `HEAD` (its response has no body).
    Request {
        /// Whether the method is `HEAD`.
        is_head: bool,
        /// Method, target and `X-Amz-Target`, for the proxy's records.
        head: RequestHead,
    },
    /// A final (non-1xx) response.
    Response {
        /// The status code.
        status: u16,
    },
}

#[derive(Debug)]
enum State {
    /// Reading a head; the bytes so far.
    Head(Vec<u8>),
    /// Skipping this many body bytes.
    Body(u64),
    /// A chunk-size line of a chunked body; the bytes so far.
    ChunkSize(Vec<u8>),
    /// Skipping chunk data, then its CRLF.
    ChunkData(u64),
    /// Trailer lines after the last chunk; the current line so far.
    Trailers(Vec<u8>),
    /// Not following this stream any more.
    Opaque,
}

/// Counts message heads in one direction of one connection.
#[derive(Debug)]
pub(crate) struct MessageCounter {
    side: Side,
    state: State,
}

/// How the body of a message is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body.
    None,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Unknown to this counter (upgrade, read-until-close): stop counting.
    Opaque,
}

impl MessageCounter {
    pub(crate) fn new(side: Side) -> Self {
        Self {
            side,
            state: State::Head(Vec::new()),
        }
    }

    /// Feeds `bytes`; for every head completed, calls `on_head`. For a response, `on_head`
    /// answers whether a body may follow (not after a `HEAD` request); for a request its
    /// answer is ignored.
    pub(crate) fn feed(&mut self, mut bytes: &[u8], on_head: &mut dyn FnMut(Head) -> bool) {
        while !bytes.is_empty() {
            match &mut self.state {
                State::Opaque => return,
                State::Head(buf) => {
                    // Blank lines before a message are ignored (RFC 9112 §2.2).
                    if buf.is_empty() {
                        let skip = bytes
                            .iter()
                            .take_while(|b| **b == b'\r' || **b == b'\n')
                            .count();
                        bytes = &bytes[skip..];
                        if bytes.is_empty() {
                            return;
                        }
                    }
                    let start = buf.len().saturating_sub(3);
                    let before = buf.len();
                    buf.extend_from_slice(bytes);
                    match find(&buf[start..], b"\r\n\r\n") {
                        Some(at) => {
                            let end = start + at + 4;
                            let used = end - before;
                            bytes = &bytes[used..];
                            let head = std::mem::take(buf);
                            self.state = self.on_head(&head[..end], on_head);
                        }
                        None if buf.len() > MAX_HEAD => {
                            self.state = State::Opaque;
                            return;
                        }
                        None => return,
                    }
                }
                State::Body(remaining) => {
                    let take = (*remaining).min(bytes.len() as u64);
                    *remaining -= take;
                    bytes = &bytes[take as usize..];
                    if *remaining == 0 {
                        self.state = State::Head(Vec::new());
                    }
                }
                State::ChunkSize(line) => match bytes.iter().position(|b| *b == b'\n') {
                    Some(at) => {
                        line.extend_from_slice(&bytes[..at]);
                        bytes = &bytes[at + 1..];
                        let text = String::from_utf8_lossy(line);
                        let size = text.trim().split(';').next().unwrap_or("").trim();
                        self.state = match u64::from_str_radix(size, 16) {
                            Ok(0) => State::Trailers(Vec::new()),
                            // The chunk's data, then its CRLF.
                            Ok(n) => State::ChunkData(n.saturating_add(2)),
                            Err(_) => State::Opaque,
                        };
                    }
                    None => {
                        line.extend_from_slice(bytes);
                        if line.len() > MAX_HEAD {
                            self.state = State::Opaque;
                        }
                        return;
                    }
                },
                State::ChunkData(remaining) => {
                    let take = (*remaining).min(bytes.len() as u64);
                    *remaining -= take;
                    bytes = &bytes[take as usize..];
                    if *remaining == 0 {
                        self.state = State::ChunkSize(Vec::new());
                    }
                }
                State::Trailers(line) => match bytes.iter().position(|b| *b == b'\n') {
                    Some(at) => {
                        line.extend_from_slice(&bytes[..at]);
                        bytes = &bytes[at + 1..];
                        let blank = line.iter().all(|b| *b == b'\r');
                        line.clear();
                        if blank {
                            self.state = State::Head(Vec::new());
                        }
                    }
                    None => {
                        line.extend_from_slice(bytes);
                        if line.len() > MAX_HEAD {
                            self.state = State::Opaque;
                        }
                        return;
                    }
                },
            }
        }
    }

    fn on_head(&self, head: &[u8], on_head: &mut dyn FnMut(Head) -> bool) -> State {
        let text = String::from_utf8_lossy(head);
        let mut lines = text.split("\r\n");
        let first = lines.next().unwrap_or_default();
        let mut length = None;
        let mut chunked = false;
        let mut amz_target = None;
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let name = name.trim();
            if name.eq_ignore_ascii_case("x-amz-target") {
                amz_target = Some(value.trim().to_owned());
            } else if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse::<u64>().ok();
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value
                    .split(',')
                    .next_back()
                    .is_some_and(|v| v.trim().eq_ignore_ascii_case("chunked"));
            }
        }
        let declared = if chunked {
            Framing::Chunked
        } else {
            length.map_or(Framing::None, Framing::Length)
        };
        let framing = match self.side {
            Side::Request => {
                let mut parts = first.split(' ');
                let method = parts.next().unwrap_or_default();
                on_head(Head::Request {
                    is_head: method.eq_ignore_ascii_case("HEAD"),
                    head: RequestHead {
                        method: method.to_owned(),
                        path: parts.next().unwrap_or_default().to_owned(),
                        amz_target,
                    },
                });
                if method.eq_ignore_ascii_case("CONNECT") {
                    Framing::Opaque
                } else {
                    declared
                }
            }
            Side::Response => {
                let status: u16 = first
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                match status {
                    101 => Framing::Opaque,
                    // Interim responses (100 Continue, 103 Early Hints) precede the final one.
                    100..=199 => Framing::None,
                    _ => {
                        let body_allowed = on_head(Head::Response { status });
                        if !body_allowed || status == 204 || status == 304 {
                            Framing::None
                        } else if declared == Framing::None {
                            // Neither length nor chunked: the body runs to the close.
                            Framing::Opaque
                        } else {
                            declared
                        }
                    }
                }
            }
        };
        match framing {
            Framing::None | Framing::Length(0) => State::Head(Vec::new()),
            Framing::Length(n) => State::Body(n),
            Framing::Chunked => State::ChunkSize(Vec::new()),
            Framing::Opaque => State::Opaque,
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` split into pieces of `step` bytes; returns the heads seen (request
    /// heads without their method and path: `request_heads_keep_method_path_and_target`
    /// checks those).
    fn heads(side: Side, input: &[u8], step: usize) -> Vec<Head> {
        let mut counter = MessageCounter::new(side);
        let mut seen = Vec::new();
        for piece in input.chunks(step) {
            counter.feed(piece, &mut |head| {
                seen.push(match head {
                    Head::Request { is_head, .. } => Head::Request {
                        is_head,
                        head: RequestHead::default(),
                    },
                    other => other,
                });
                true
            });
        }
        seen
    }

    const REQUESTS: &[u8] = b"PUT /v1/auth/jwt/login HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n{\"jwt\":\"a\"}\
GET /v1/secret/data/ci/a HTTP/1.1\r\nHost: x\r\n\r\n\
POST /v1/x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\nGET \r\n5\r\n/ HTT\r\n0\r\nX-Trailer: y\r\n\r\n\
HEAD /v1/sys/health HTTP/1.1\r\ncontent-length: 0\r\n\r\n";

    #[test]
    fn counts_keep_alive_requests_whatever_the_chunking() {
        for step in [1, 2, 3, 7, 64, REQUESTS.len()] {
            let seen = heads(Side::Request, REQUESTS, step);
            let kinds: Vec<bool> = seen
                .iter()
                .map(|h| matches!(h, Head::Request { is_head: true, .. }))
                .collect();
            assert_eq!(kinds, vec![false, false, false, true], "step {step}");
        }
    }

    #[test]
    fn request_heads_keep_method_path_and_target() {
        let input = b"POST /x?y=1 HTTP/1.1\r\nX-Amz-Target: secretsmanager.GetSecretValue\r\nContent-Length: 2\r\n\r\n{}";
        let mut counter = MessageCounter::new(Side::Request);
        let mut heads = Vec::new();
        counter.feed(input, &mut |h| {
            heads.push(h);
            true
        });
        assert_eq!(
            heads,
            vec![Head::Request {
                is_head: false,
                head: RequestHead {
                    method: "POST".into(),
                    path: "/x?y=1".into(),
                    amz_target: Some("secretsmanager.GetSecretValue".into()),
                },
            }]
        );
    }

    #[test]
    fn request_like_text_inside_bodies_is_not_counted() {
        let body = b"GET / HTTP/1.1\r\n\r\n";
        let mut input =
            format!("POST /a HTTP/1.1\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
        input.extend_from_slice(body);
        input.extend_from_slice(b"GET /b HTTP/1.1\r\n\r\n");
        assert_eq!(heads(Side::Request, &input, 5).len(), 2);
    }

    #[test]
    fn responses_skip_interim_and_bodiless_ones() {
        let input = b"HTTP/1.1 100 Continue\r\n\r\n\
HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello\
HTTP/1.1 204 No Content\r\n\r\n\
HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n\
HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
        for step in [1, 4, input.len()] {
            let seen = heads(Side::Response, input, step);
            let statuses: Vec<u16> = seen
                .iter()
                .map(|h| match h {
                    Head::Response { status } => *status,
                    Head::Request { .. } => 0,
                })
                .collect();
            assert_eq!(statuses, vec![200, 204, 200, 404], "step {step}");
        }
    }

    #[test]
    fn a_response_to_head_has_no_body() {
        let input = b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        let mut counter = MessageCounter::new(Side::Response);
        let mut seen = 0;
        counter.feed(input, &mut |_| {
            seen += 1;
            seen != 1
        });
        assert_eq!(seen, 2);
    }

    #[test]
    fn gives_up_on_what_it_cannot_follow() {
        let input = b"HTTP/1.1 200 OK\r\n\r\nbody until close HTTP/1.1 200 OK\r\n\r\n";
        assert_eq!(heads(Side::Response, input, 3).len(), 1);
        let huge = vec![b'a'; MAX_HEAD + 10];
        assert!(heads(Side::Request, &huge, 1000).is_empty());
    }
}
