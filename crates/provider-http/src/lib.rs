//! HTTP plumbing shared by the `ci-secrets` providers, so that every provider gets the same
//! client settings, answer cap, retries, deadline handling and failure classification from
//! its first line:
//!
//! - [`client`]: a `reqwest` client from [`ClientSettings`] (CA roots, client certificate,
//!   skip-verify, proxy, redirects that never downgrade from https);
//! - [`tls`]: PEM roots from a file or a directory, a client identity, a proxy URL shown
//!   without its credentials;
//! - [`server_name`]: certificates verified against a configured name instead of the URL's
//!   host, with `Host` unchanged;
//! - [`exchange`]: one attempt: counted, bounded per server (connections over HTTP/1.1,
//!   [`MAX_STREAMS`] streams once the server speaks HTTP/2), [`MAX_ANSWER_BYTES`] cap
//!   (chunked answers included), `Retry-After`;
//! - [`retry`]: retries through `backon` with the resolution's policy;
//! - [`transport`]: typed classification of transport failures (connect, timeout, TLS,
//!   broken body, too large), from error types, never from message text;
//! - [`failure`]: [`Failure`], the one provider failure type, and its core error;
//! - [`slots`]: "one result per request, in order".

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod client;
pub mod exchange;
pub mod failure;
pub mod retry;
pub mod server_name;
pub mod slots;
pub mod tls;
pub mod transport;

pub use client::{ClientSettings, ShownProxy};
pub use exchange::{Answer, Endpoint, MAX_ANSWER_BYTES, MAX_STREAMS};
pub use failure::Failure;
pub use retry::{MAX_RETRY_AFTER, with_retry};
pub use server_name::TlsServerName;
pub use slots::Slots;
pub use transport::{AnswerTooLarge, Transport, TransportKind, transport_kind};
