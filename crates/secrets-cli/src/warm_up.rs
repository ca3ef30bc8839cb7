//! Seeds the TLS library's random generator on a thread of its own as the process starts.
//!
//! aws-lc (the crypto under rustls and the AWS SDK) seeds its generator the first time a
//! process needs randomness, from CPU jitter entropy as well as the OS: about 50 ms of CPU
//! (48-53 ms measured here; aws/aws-lc-rs#1140). Left to the first TLS handshake, that lands
//! on the critical path right after the TCP connect; started here, it runs while the payload
//! is read and the first connection opens. Builds from this repository leave the jitter
//! source out (`.cargo/config.toml`, docs/adr/0006), which makes seeding take microseconds;
//! this keeps a build without that setting (`cargo install --git`) from paying the full cost
//! in its first handshake.

use crate::cli::Command;

/// Starts seeding for the commands that talk to servers; the others never need it.
pub(crate) fn start_for(command: &Command) {
    let talks_to_servers = matches!(
        command,
        Command::Resolve(_)
            | Command::Exec(_)
            | Command::Doctor(_)
            | Command::AwsCredentials(_)
            | Command::Get(_)
    );
    if !talks_to_servers {
        return;
    }
    // Detached: a process that finishes first simply does not wait for it.
    let _ = std::thread::Builder::new()
        .name("seed-random".to_owned())
        .spawn(|| {
            let mut byte = [0u8; 1];
            let _ = rustls::crypto::aws_lc_rs::default_provider()
                .secure_random
                .fill(&mut byte);
        });
}
