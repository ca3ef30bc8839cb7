//! Masking secret values in a job's output, as GitLab Runner masks its job log, as a
//! streaming filter.
//!
//! GitLab Runner replaces every occurrence of a masked variable's value, trimmed of
//! surrounding whitespace, with `[MASKED]`, whatever its length, over write boundaries
//! (gitlab-runner `common/buildlogger/internal/masker/masker.go`, phrases from
//! `common/spec/variables.go` `Masked()`, trimmed and deduplicated by
//! `common/buildlogger/internal/unique.go`). It masks no other form of a value.
//!
//! [`Masker`] masks the same phrases and, because a value also leaks in other shapes, these
//! forms of each value too (docs/security.md lists them): each line of a multi-line value
//! (lines of at least [`MIN_LINE_LEN`] bytes), its percent-encoding (upper- and lower-case
//! hex, space as `%20` or `+`) and its JSON string escaping. One multi-pattern automaton
//! (`aho-corasick`, leftmost-longest) finds them all; [`MaskStream`] applies it to a stream
//! written in arbitrary pieces and gives exactly what masking the whole stream at once gives:
//! a value split across writes is masked, of overlapping values the one that starts first
//! wins and of those starting at the same byte the longest, and every other byte passes
//! through unchanged (binary too). It holds back only the bytes at the end of a write that
//! could still begin a value, so a partial line that is no prefix of a secret is passed on
//! at once.

use crate::materialise::SecretVariable;
use crate::value::SecretValue;
use aho_corasick::{AhoCorasick, Input, MatchKind};
use std::fmt;
use std::io::{self, Write};
use std::sync::Arc;
use zeroize::Zeroizing;

/// What every masked occurrence becomes, as in GitLab Runner.
pub const MASK: &[u8] = b"[MASKED]";

/// The most a stream holds back for a region of overlapping occurrences still growing
/// (only a value repeated over itself, `aaaa...`, makes one); beyond it the region is
/// masked in several pieces.
const HOLD_CAP: usize = 16 * 1024;

/// The shortest line of a multi-line value that is masked on its own. Shorter lines (`}`,
/// `---`, an empty line) would mask ordinary output everywhere; they are still masked as part
/// of the whole value.
pub const MIN_LINE_LEN: usize = 8;

/// The secrets to mask and the automaton that finds them. Cheap to clone (shared); build it
/// once per job and take a [`MaskStream`] per output stream.
#[derive(Clone)]
pub struct Masker {
    inner: Arc<Inner>,
}

struct Inner {
    /// Sorted, deduplicated, none empty; zeroized on drop.
    patterns: Vec<Zeroizing<Vec<u8>>>,
    /// `None` when there is nothing to mask.
    matcher: Option<AhoCorasick>,
    max_len: usize,
}

impl Masker {
    /// A masker for these values and the forms of each that are masked (see the module
    /// documentation). Empty and whitespace-only values are ignored, as the runner does.
    pub fn new<I, S>(values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut patterns: Vec<Zeroizing<Vec<u8>>> = Vec::new();
        for value in values {
            forms(value.as_ref(), &mut patterns);
        }
        patterns.sort_unstable_by(|a, b| a.as_slice().cmp(b.as_slice()));
        patterns.dedup_by(|a, b| a.as_slice() == b.as_slice());
        let max_len = patterns.iter().map(|p| p.len()).max().unwrap_or(0);
        let matcher = if patterns.is_empty() {
            None
        } else {
            Some(
                AhoCorasick::builder()
                    .match_kind(MatchKind::LeftmostLongest)
                    .build(patterns.iter().map(|p| p.as_slice()))
                    .unwrap_or_else(|e| {
                        // Only a pattern set beyond the automaton's size limits fails, far
                        // beyond what a job holds; refuse loudly rather than print values.
                        panic!("building the secret masker: {e}")
                    }),
            )
        };
        Self {
            inner: Arc::new(Inner {
                patterns,
                matcher,
                max_len,
            }),
        }
    }

    /// A masker for resolved values.
    pub fn from_secrets<'a>(values: impl IntoIterator<Item = &'a SecretValue>) -> Self {
        Self::new(values.into_iter().map(SecretValue::expose))
    }

    /// A masker for the masked variables among `variables` (every resolved secret is).
    pub fn for_variables(variables: &[SecretVariable]) -> Self {
        Self::from_secrets(variables.iter().filter(|v| v.masked).map(|v| &v.value))
    }

    /// Whether there is nothing to mask: the filter passes everything through.
    pub fn is_empty(&self) -> bool {
        self.inner.patterns.is_empty()
    }

    /// How many distinct byte strings are masked (values and their forms).
    pub fn patterns_len(&self) -> usize {
        self.inner.patterns.len()
    }

    /// A streaming filter for one output stream.
    pub fn stream(&self) -> MaskStream {
        MaskStream {
            masker: self.clone(),
            pending: Zeroizing::new(Vec::new()),
            written: 0,
            work: Zeroizing::new(Vec::new()),
        }
    }

    /// A writer that masks everything written to it before passing it to `inner`.
    pub fn writer<W: Write>(&self, inner: W) -> MaskWriter<W> {
        MaskWriter {
            stream: self.stream(),
            out: Vec::new(),
            inner: Some(inner),
        }
    }

    /// `input` masked as a whole.
    pub fn mask_all(&self, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(input.len());
        let mut stream = self.stream();
        stream.write(input, &mut out);
        stream.finish(&mut out);
        out
    }
}

impl fmt::Debug for Masker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Masker")
            .field("patterns", &self.inner.patterns.len())
            .finish_non_exhaustive()
    }
}

impl Inner {
    /// Whether `tail` is a proper prefix of a pattern: more input could complete a match
    /// starting there. Patterns are sorted, so the extensions of `tail` follow it directly.
    fn could_start(&self, tail: &[u8]) -> bool {
        let at = self.patterns.partition_point(|p| p.as_slice() < tail);
        self.patterns[at..]
            .iter()
            .take(2)
            .any(|p| p.len() > tail.len() && p.starts_with(tail))
    }

    /// The first position at or after `from` where the rest of `buf` could begin a match.
    fn hold_from(&self, buf: &[u8], from: usize) -> usize {
        let window = buf.len().saturating_sub(self.max_len.saturating_sub(1));
        (from.max(window)..buf.len())
            .find(|&q| self.could_start(&buf[q..]))
            .unwrap_or(buf.len())
    }

    /// The leftmost(-longest) match starting at or after `from`.
    fn find(matcher: &AhoCorasick, buf: &[u8], from: usize) -> Option<(usize, usize)> {
        matcher
            .find(Input::new(buf).span(from..buf.len()))
            .map(|m| (m.start(), m.end()))
    }

    /// Masks `buf` into `out` as far as it is decided; returns where the undecided rest
    /// starts (`buf.len()` at the end of the stream) and how much of that rest was already
    /// written as part of a mask. The first `written` bytes of `buf` were written (masked)
    /// before: they are scanned again as context, never written again.
    ///
    /// Overlapping occurrences form one region, masked as one `[MASKED]`, so no byte of any
    /// occurrence is shown; occurrences that only touch are masked one by one.
    fn process(
        &self,
        buf: &[u8],
        written: usize,
        at_end: bool,
        out: &mut Vec<u8>,
    ) -> (usize, usize) {
        let Some(matcher) = &self.matcher else {
            out.extend_from_slice(&buf[written.min(buf.len())..]);
            return (buf.len(), 0);
        };
        let emit = |out: &mut Vec<u8>, from: usize, to: usize| {
            let from = from.max(written);
            if from < to {
                out.extend_from_slice(&buf[from..to]);
            }
        };
        // Before `window` every pattern fits inside `buf`: no match can start there later.
        let window = buf.len().saturating_sub(self.max_len.saturating_sub(1));
        let mut cursor = 0;
        let mut undecided = buf.len();
        while let Some((start, mut end)) = Self::find(matcher, buf, cursor) {
            // Grow the region over every occurrence that starts inside it.
            let mut probe = start + 1;
            while probe < end {
                match Self::find(matcher, buf, probe) {
                    Some((s, e)) if s < end => {
                        end = end.max(e);
                        probe = s + 1;
                    }
                    _ => break,
                }
            }
            // Undecided while more input could start a match before its end (one that would
            // come first, be longer, or grow the region).
            if !at_end && end > window && self.hold_from(buf, cursor) < end {
                undecided = start;
                break;
            }
            emit(out, cursor, start);
            if end > written {
                out.extend_from_slice(MASK);
            }
            cursor = end;
        }
        if at_end {
            emit(out, cursor, buf.len());
            return (buf.len(), 0);
        }
        if buf.len() - undecided > HOLD_CAP {
            // A region of overlapping occurrences this long only comes from a value repeated
            // over itself (`aaaa...`): mask all of it now and keep its end as context, so
            // that what follows is still masked and memory stays bounded.
            emit(out, cursor, undecided);
            out.extend_from_slice(MASK);
            return (window, buf.len() - window);
        }
        let limit = self.hold_from(buf, cursor).min(undecided);
        emit(out, cursor, limit);
        (limit, written.saturating_sub(limit))
    }
}

/// One output stream being masked: feed it with [`MaskStream::write`], end it with
/// [`MaskStream::finish`]. The bytes it holds back (at most the longest value less one byte)
/// are zeroized when dropped.
pub struct MaskStream {
    masker: Masker,
    pending: Zeroizing<Vec<u8>>,
    /// How many bytes at the start of `pending` were already written inside a mask.
    written: usize,
    work: Zeroizing<Vec<u8>>,
}

impl MaskStream {
    /// Masks `input`, the next piece of the stream, appending what is decided to `out`.
    pub fn write(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let inner = &self.masker.inner;
        if self.pending.is_empty() {
            let (used, written) = inner.process(input, 0, false, out);
            self.pending.extend_from_slice(&input[used..]);
            self.written = written;
            return;
        }
        self.work.clear();
        self.work.extend_from_slice(&self.pending);
        self.work.extend_from_slice(input);
        let (used, written) = inner.process(&self.work, self.written, false, out);
        self.pending.clear();
        self.pending.extend_from_slice(&self.work[used..]);
        self.written = written;
        self.work.clear();
    }

    /// Ends the stream: appends the bytes still held back, masked as the end requires.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        let pending = Zeroizing::new(std::mem::take(&mut *self.pending));
        self.masker.inner.process(&pending, self.written, true, out);
        self.written = 0;
    }

    /// How many bytes are held back, waiting to see whether they begin a value.
    pub fn pending_len(&self) -> usize {
        self.pending.len() - self.written
    }
}

impl fmt::Debug for MaskStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MaskStream")
            .field("masker", &self.masker)
            .finish_non_exhaustive()
    }
}

/// A [`Write`] adapter that masks what passes through. Call [`MaskWriter::finish`] at the end
/// of the stream to write what is held back; dropping it does the same, ignoring errors.
pub struct MaskWriter<W: Write> {
    stream: MaskStream,
    out: Vec<u8>,
    inner: Option<W>,
}

impl<W: Write> MaskWriter<W> {
    /// Writes the bytes held back and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.write_rest()?;
        Ok(self
            .inner
            .take()
            .unwrap_or_else(|| unreachable!("taken only here and in drop")))
    }

    fn write_rest(&mut self) -> io::Result<()> {
        self.out.clear();
        self.stream.finish(&mut self.out);
        if let Some(inner) = self.inner.as_mut() {
            inner.write_all(&self.out)?;
            inner.flush()?;
        }
        self.out.clear();
        Ok(())
    }
}

impl<W: Write> Write for MaskWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.clear();
        self.stream.write(buf, &mut self.out);
        if let Some(inner) = self.inner.as_mut() {
            inner.write_all(&self.out)?;
        }
        self.out.clear();
        Ok(buf.len())
    }

    /// Flushes the inner writer; bytes that could begin a value stay held back.
    fn flush(&mut self) -> io::Result<()> {
        match self.inner.as_mut() {
            Some(inner) => inner.flush(),
            None => Ok(()),
        }
    }
}

impl<W: Write> Drop for MaskWriter<W> {
    fn drop(&mut self) {
        if self.inner.is_some() {
            let _ = self.write_rest();
        }
    }
}

impl<W: Write> fmt::Debug for MaskWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MaskWriter")
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

/// Appends the masked forms of `value`.
fn forms(value: &str, out: &mut Vec<Zeroizing<Vec<u8>>>) {
    let value = value.trim();
    if value.is_empty() {
        return;
    }
    let mut push = |form: Zeroizing<Vec<u8>>| {
        if !form.is_empty() {
            out.push(form);
        }
    };
    push(Zeroizing::new(value.as_bytes().to_vec()));
    if value.contains(['\n', '\r']) {
        for line in value.lines() {
            let line = line.trim();
            if line.len() >= MIN_LINE_LEN {
                push(Zeroizing::new(line.as_bytes().to_vec()));
            }
        }
    }
    for (upper, plus) in [(true, false), (true, true), (false, false)] {
        let encoded = percent_encode(value, upper, plus);
        if encoded.as_slice() != value.as_bytes() {
            push(encoded);
        }
    }
    let escaped = json_escape(value);
    if escaped.as_slice() != value.as_bytes() {
        push(escaped);
    }
}

/// RFC 3986 percent-encoding of everything but the unreserved characters.
fn percent_encode(value: &str, upper: bool, space_as_plus: bool) -> Zeroizing<Vec<u8>> {
    let digits: &[u8; 16] = if upper {
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    let mut out = Zeroizing::new(Vec::with_capacity(value.len() * 3));
    for &b in value.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(b),
            b' ' if space_as_plus => out.push(b'+'),
            _ => out.extend_from_slice(&[
                b'%',
                digits[usize::from(b >> 4)],
                digits[usize::from(b & 0xf)],
            ]),
        }
    }
    out
}

/// The value as it appears inside a JSON string (the escapes `serde_json` and most encoders
/// write: `\"`, `\\`, `\n`, `\r`, `\t`, `\b`, `\f`, `\u00XX` for other control characters).
fn json_escape(value: &str) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(value.len() + 8));
    for &b in value.as_bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            0..=0x1f => {
                let hex = b"0123456789abcdef";
                out.extend_from_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    hex[usize::from(b >> 4)],
                    hex[usize::from(b & 0xf)],
                ]);
            }
            _ => out.push(b),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn mask(values: &[&str], input: &str) -> String {
        String::from_utf8(Masker::new(values).mask_all(input.as_bytes())).unwrap()
    }

    /// Masks `input` written in the pieces `|` separates.
    fn mask_split(values: &[&str], input: &str) -> String {
        let masker = Masker::new(values);
        let mut stream = masker.stream();
        let mut out = Vec::new();
        for piece in input.split('|') {
            stream.write(piece.as_bytes(), &mut out);
        }
        stream.finish(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn masks_as_the_runner_does() {
        // The runner's own table (common/buildlogger/internal/masker/masker_test.go),
        // re-expressed: the same inputs give the same outputs.
        let cases: &[(&[&str], &str, &str)] = &[
            (
                &[""],
                "empty secrets have no affect",
                "empty secrets have no affect",
            ),
            (&[], "no escaping at all", "no escaping at all"),
            (&["secrets"], "secrets", "[MASKED]"),
            (&["secrets"], "secret|s", "[MASKED]"),
            (&["secrets"], "s|ecrets", "[MASKED]"),
            (&["secrets"], "secretssecrets", "[MASKED][MASKED]"),
            (&["secrets"], "ssecrets", "s[MASKED]"),
            (&["secrets"], "s|secrets", "s[MASKED]"),
            (&["at"], "at the start", "[MASKED] the start"),
            (
                &["buffer"],
                "at the end of the buffer",
                "at the end of the [MASKED]",
            ),
            (
                &["foo", "bar"],
                "prefix|ed, xfo|ox y|bary ffo|o ba|rr ffooo b|barr",
                "prefixed, x[MASKED]x y[MASKED]y f[MASKED] [MASKED]r f[MASKED]o b[MASKED]r",
            ),
            (
                &["mask", "prefix_mask"],
                "prefix_mask mask prefix_|mask prefix_ma|sk mas|k",
                "[MASKED] [MASKED] [MASKED] [MASKED] [MASKED]",
            ),
            (
                &["this is the end", "en foobar", "en"],
                "overlap: this is the en| foobar",
                "overlap: this is the [MASKED]",
            ),
            (&["  padded\n"], "a padded b", "a [MASKED] b"),
        ];
        for (values, input, expected) in cases {
            assert_eq!(&mask_split(values, input), expected, "{input:?}");
        }
    }

    #[test]
    fn overlapping_values_are_masked_as_one_region() {
        assert_eq!(
            mask(&["abc", "abcdef"], "xabcdefx abcx"),
            "x[MASKED]x [MASKED]x"
        );
        assert_eq!(
            mask_split(&["abc", "abcdef"], "xabc|def|x ab|c"),
            "x[MASKED]x [MASKED]"
        );
        assert_eq!(
            mask(&["bcd", "abc"], "abcd"),
            "[MASKED]",
            "overlapping: one region"
        );
        assert_eq!(
            mask_split(
                &["canary-AAAA", "AAAA-tail-BBBB"],
                "x canary-AA|AA-tail-BB|BB y"
            ),
            "x [MASKED] y",
            "no byte of either value is shown"
        );
        assert_eq!(
            mask(&["abc", "cde"], "abcde abccde"),
            "[MASKED] [MASKED][MASKED]"
        );
    }

    #[test]
    fn holds_back_only_what_could_begin_a_value() {
        let masker = Masker::new(["s3cr3t-value"]);
        let mut stream = masker.stream();
        let mut out = Vec::new();
        stream.write(b"progress 42%\r", &mut out);
        assert_eq!(out, b"progress 42%\r", "nothing held: no value starts here");
        assert_eq!(stream.pending_len(), 0);
        out.clear();
        stream.write(b"user=s3c", &mut out);
        assert_eq!(out, b"user=");
        assert_eq!(stream.pending_len(), 3);
        out.clear();
        stream.write(b"x", &mut out);
        assert_eq!(out, b"s3cx", "released as soon as it is no value");
        out.clear();
        stream.write(b" s3cr3t-valu", &mut out);
        stream.write(b"e!", &mut out);
        stream.finish(&mut out);
        assert_eq!(out, b" [MASKED]!");
    }

    #[test]
    fn a_prefix_at_the_end_of_the_stream_is_written() {
        assert_eq!(
            mask_split(&["s3cr3t-value"], "ends with s3cr|3t"),
            "ends with s3cr3t"
        );
    }

    #[test]
    fn binary_passes_through_byte_for_byte() {
        let masker = Masker::new(["\u{fffd}secret-\u{1}value"]);
        let input: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
        assert_eq!(masker.mask_all(&input), input);
        let mut planted = input.clone();
        planted.extend_from_slice("\u{fffd}secret-\u{1}value".as_bytes());
        planted.extend_from_slice(&[0xff, 0xfe, 0]);
        let mut expected = input;
        expected.extend_from_slice(MASK);
        expected.extend_from_slice(&[0xff, 0xfe, 0]);
        assert_eq!(masker.mask_all(&planted), expected);
    }

    #[test]
    fn lines_and_encodings_are_masked() {
        let pem = "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n}\n-----END KEY-----\n";
        let masker = Masker::new([pem, "p@ss w/rd&\"x\""]);
        let check = |input: &str, expected: &str| {
            assert_eq!(
                String::from_utf8(masker.mask_all(input.as_bytes())).unwrap(),
                expected,
                "{input:?}"
            );
        };
        check("  MIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n", "  [MASKED]\n");
        check("} brace", "} brace");
        check(
            r#"{"key":"-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n}\n-----END KEY-----"}"#,
            r#"{"key":"[MASKED]"}"#,
        );
        check("u=p%40ss%20w%2Frd%26%22x%22&", "u=[MASKED]&");
        check("u=p%40ss+w%2Frd%26%22x%22&", "u=[MASKED]&");
        check("u=p%40ss%20w%2frd%26%22x%22&", "u=[MASKED]&");
        check(r#"{"p":"p@ss w/rd&\"x\""}"#, r#"{"p":"[MASKED]"}"#);
        check("p@ss w/rd&\"x\"", "[MASKED]");
    }

    #[test]
    fn a_value_repeated_over_itself_is_held_back_boundedly() {
        let masker = Masker::new(["aaaaaaaa"]);
        let mut stream = masker.stream();
        let mut out = Vec::new();
        for _ in 0..40 {
            stream.write(&[b'a'; 1000], &mut out);
            assert!(
                stream.pending_len() <= HOLD_CAP + 8,
                "{}",
                stream.pending_len()
            );
        }
        stream.write(b"aaa b aaaaaaa", &mut out);
        stream.finish(&mut out);
        let out = String::from_utf8(out).unwrap();
        assert!(out.starts_with("[MASKED][MASKED]"), "{out}");
        assert!(out.ends_with("[MASKED] b aaaaaaa"), "{out}");
        assert!(
            !out.contains("a["),
            "no byte of the run outside a mask: {out}"
        );
        assert_eq!(masker.mask_all(&[b'a'; 1000]), MASK, "whole: one region");
    }

    #[test]
    fn an_empty_masker_passes_everything() {
        let masker = Masker::new(["", "  \n"]);
        assert!(masker.is_empty());
        assert_eq!(masker.mask_all(b"anything"), b"anything");
    }

    #[test]
    fn the_writer_masks_and_finishes() {
        let masker = Masker::new(["canary-41c7"]);
        let mut writer = masker.writer(Vec::new());
        writer.write_all(b"a canary-4").unwrap();
        writer.write_all(b"1c7 b canary-41").unwrap();
        let out = writer.finish().unwrap();
        assert_eq!(out, b"a [MASKED] b canary-41");
    }

    #[test]
    fn debug_never_shows_a_value() {
        let masker = Masker::new(["canary-debug-5e2"]);
        let mut stream = masker.stream();
        stream.write(b"canary-de", &mut Vec::new());
        let writer = masker.writer(Vec::new());
        let printed = format!("{masker:?} {stream:?} {writer:?} {masker:#?}");
        assert!(!printed.contains("canary"), "{printed}");
        assert!(!printed.contains("5e2"), "{printed}");
    }

    /// Values for the property test: short alphabets make overlaps and shared prefixes common.
    fn values() -> impl Strategy<Value = Vec<String>> {
        prop::collection::vec("[ab]{1,6}|[abc%\n ]{2,12}", 1..6)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn streaming_equals_masking_the_whole_stream(
            values in values(),
            filler in prop::collection::vec(prop::collection::vec(any::<u8>().prop_map(|b| b"abcx\n%"[usize::from(b) % 6]), 0..8), 1..12),
            plants in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..16),
        ) {
            let masker = Masker::new(&values);
            // The stream: filler pieces with values planted between them.
            let mut stream_bytes = Vec::new();
            for (i, piece) in filler.iter().enumerate() {
                stream_bytes.extend_from_slice(piece);
                if let Some(plant) = plants.get(i) {
                    stream_bytes.extend_from_slice(plant.get(&values).as_bytes());
                }
            }
            let whole = masker.mask_all(&stream_bytes);
            // The same stream written in pieces cut at random points.
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(stream_bytes.len() + 1)).collect();
            points.sort_unstable();
            let mut stream = masker.stream();
            let mut out = Vec::new();
            let mut last = 0;
            for point in points {
                stream.write(&stream_bytes[last..point], &mut out);
                prop_assert!(stream.pending_len() <= HOLD_CAP + masker.inner.max_len);
                last = point;
            }
            stream.write(&stream_bytes[last..], &mut out);
            stream.finish(&mut out);
            prop_assert_eq!(&out, &whole);
            // And the whole-stream result is the reference: overlapping occurrences merged.
            prop_assert_eq!(whole, reference(&masker, &stream_bytes));
        }
    }

    /// A naive reference: every occurrence of every pattern, overlapping ones merged, each
    /// merged region replaced by one mask.
    fn reference(masker: &Masker, input: &[u8]) -> Vec<u8> {
        let mut spans: Vec<(usize, usize)> = Vec::new();
        for at in 0..input.len() {
            for p in &masker.inner.patterns {
                if input[at..].starts_with(p) {
                    spans.push((at, at + p.len()));
                }
            }
        }
        spans.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::new();
        for (s, e) in spans {
            match merged.last_mut() {
                Some(last) if s < last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        let mut out = Vec::new();
        let mut at = 0;
        for (s, e) in merged {
            out.extend_from_slice(&input[at..s]);
            out.extend_from_slice(MASK);
            at = e;
        }
        out.extend_from_slice(&input[at..]);
        out
    }
}
