//! Transport failures, classified from error types (never from message text): what failed
//! below HTTP, with the innermost cause's text, which comes from the I/O and TLS stacks and
//! never from the server.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::time::Duration;

/// How a request failed below HTTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// No connection (refused, DNS, reset before an answer).
    Connect(String),
    /// No answer within the request timeout.
    Timeout(Duration),
    /// TLS failed, usually an unknown CA or a name mismatch.
    Tls(String),
    /// The connection broke while the answer was read.
    Body(String),
    /// The answer is longer than the cap (in bytes); not read further.
    TooLarge(usize),
}

/// The class of a transport failure found in an error chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportKind {
    /// See [`Transport::Connect`].
    Connect,
    /// See [`Transport::Timeout`].
    Timeout,
    /// See [`Transport::Tls`].
    Tls,
    /// See [`Transport::Body`].
    Body,
    /// See [`Transport::TooLarge`].
    TooLarge,
}

/// An answer over the cap: the typed error that capped bodies fail with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnswerTooLarge {
    /// The cap in bytes.
    pub limit: usize,
}

impl fmt::Display for AnswerTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the answer is larger than {} bytes; not read",
            self.limit
        )
    }
}

impl StdError for AnswerTooLarge {}

/// Every error of a chain, including the error inside each `io::Error` (whose `source()`
/// skips it).
fn chain<'a>(err: &'a (dyn StdError + 'static)) -> Vec<&'a (dyn StdError + 'static)> {
    let mut out = Vec::new();
    let mut current = Some(err);
    while let Some(e) = current {
        out.push(e);
        current = match e.downcast_ref::<io::Error>().and_then(|io| io.get_ref()) {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => e.source(),
        };
    }
    out
}

/// The transport class an error chain shows, from its types: a TLS error of `rustls`, an
/// I/O error kind, `hyper`'s incomplete or closed messages, a length limit. `None` when the
/// chain shows no transport failure.
pub fn transport_kind(err: &(dyn StdError + 'static)) -> Option<TransportKind> {
    let errors = chain(err);
    if errors
        .iter()
        .any(|e| e.is::<AnswerTooLarge>() || e.is::<http_body_util::LengthLimitError>())
    {
        return Some(TransportKind::TooLarge);
    }
    if errors.iter().any(|e| e.is::<rustls::Error>()) {
        return Some(TransportKind::Tls);
    }
    for e in &errors {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            use io::ErrorKind::*;
            match io.kind() {
                TimedOut => return Some(TransportKind::Timeout),
                ConnectionRefused | AddrNotAvailable | NotConnected | HostUnreachable
                | NetworkUnreachable => return Some(TransportKind::Connect),
                ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof => {
                    return Some(TransportKind::Body);
                }
                _ => {}
            }
        }
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            if h.is_timeout() {
                return Some(TransportKind::Timeout);
            }
            if h.is_incomplete_message()
                || h.is_closed()
                || h.is_canceled()
                || h.is_body_write_aborted()
            {
                return Some(TransportKind::Body);
            }
        }
    }
    None
}

/// The innermost cause's text.
fn innermost(err: &(dyn StdError + 'static)) -> String {
    chain(err)
        .last()
        .map(|e| e.to_string())
        .unwrap_or_else(|| "unknown error".to_owned())
}

impl Transport {
    /// Classifies a `reqwest` error of a request that had `timeout` to finish.
    pub fn from_reqwest(err: &reqwest::Error, timeout: Duration) -> Self {
        let cause = err
            .source()
            .map(innermost)
            .unwrap_or_else(|| "unknown error".to_owned());
        match transport_kind(err) {
            Some(TransportKind::TooLarge) => Self::TooLarge(crate::MAX_ANSWER_BYTES),
            Some(TransportKind::Tls) => Self::Tls(cause),
            _ if err.is_timeout() => Self::Timeout(timeout),
            Some(TransportKind::Timeout) => Self::Timeout(timeout),
            _ if err.is_connect() => Self::Connect(cause),
            Some(TransportKind::Connect) => Self::Connect(cause),
            _ if err.is_body() || err.is_decode() => Self::Body(cause),
            Some(TransportKind::Body) if !err.is_request() => Self::Body(cause),
            _ if err.is_request() => Self::Connect(cause),
            _ => Self::Body(cause),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Wrap(Box<dyn StdError + Send + Sync>);
    impl fmt::Display for Wrap {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("wrapped")
        }
    }
    impl StdError for Wrap {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&*self.0)
        }
    }

    #[test]
    fn classes_come_from_types_inside_io_errors_too() {
        let tls = Wrap(Box::new(io::Error::other(io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        ))));
        assert_eq!(transport_kind(&tls), Some(TransportKind::Tls));
        let refused = Wrap(Box::new(io::Error::from(io::ErrorKind::ConnectionRefused)));
        assert_eq!(transport_kind(&refused), Some(TransportKind::Connect));
        let reset = Wrap(Box::new(io::Error::from(io::ErrorKind::ConnectionReset)));
        assert_eq!(transport_kind(&reset), Some(TransportKind::Body));
        let timeout = io::Error::from(io::ErrorKind::TimedOut);
        assert_eq!(transport_kind(&timeout), Some(TransportKind::Timeout));
        let large = Wrap(Box::new(AnswerTooLarge { limit: 4 }));
        assert_eq!(transport_kind(&large), Some(TransportKind::TooLarge));
        // Text alone classifies nothing.
        let text = io::Error::other("certificate timed out: connection reset");
        assert_eq!(transport_kind(&text), None);
    }
}
