//! A token of the job payload: a secret's ID token (or, before expansion, the reference to
//! one, such as `$AWS_ID_TOKEN`).

use crate::redact::Redacted;
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A token held in a [`SecretString`] (zeroized on drop), with a redacted `Debug`.
///
/// It (de)serialises as the plain JSON string the job payload carries, so payloads read and
/// written through it are byte for byte what they were with a `String`. Reading the text
/// takes an explicit [`Token::expose`].
pub struct Token(SecretString);

impl Token {
    /// Wraps a token (or a token reference).
    pub fn new(token: impl Into<String>) -> Self {
        Self(SecretString::from(token.into()))
    }

    /// The token itself; call only where it has to be sent or parsed.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// Whether the token is empty.
    pub fn is_empty(&self) -> bool {
        self.expose().is_empty()
    }

    /// Empties the token.
    pub fn clear(&mut self) {
        *self = Self::default();
    }

    /// Replaces the token by `f` of it (expansion); the old text is zeroized.
    pub fn replace_with(&mut self, f: impl FnOnce(&str) -> String) {
        *self = Self::new(f(self.expose()));
    }
}

impl Default for Token {
    fn default() -> Self {
        Self::new(String::new())
    }
}

impl Clone for Token {
    fn clone(&self) -> Self {
        Self::new(self.expose())
    }
}

impl PartialEq for Token {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl Eq for Token {}

impl PartialEq<str> for Token {
    fn eq(&self, other: &str) -> bool {
        self.expose() == other
    }
}

impl PartialEq<&str> for Token {
    fn eq(&self, other: &&str) -> bool {
        self.expose() == *other
    }
}

impl From<String> for Token {
    fn from(token: String) -> Self {
        Self::new(token)
    }
}

impl From<&str> for Token {
    fn from(token: &str) -> Self {
        Self::new(token)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Redacted(Some(self.expose())).fmt(f)
    }
}

impl Serialize for Token {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.expose())
    }
}

impl<'de> Deserialize<'de> for Token {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted_and_serde_is_the_plain_string() {
        let token = Token::new("eyJ.canary.sig");
        assert_eq!(format!("{token:?}"), "<redacted>");
        assert_eq!(format!("{:?}", Token::default()), "\"\"");
        let json = serde_json::to_string(&token).unwrap();
        assert_eq!(json, "\"eyJ.canary.sig\"");
        let back: Token = serde_json::from_str(&json).unwrap();
        assert_eq!(back, token);
        assert_eq!(back, "eyJ.canary.sig");
        let mut t = back.clone();
        t.replace_with(|s| s.to_uppercase());
        assert_eq!(t.expose(), "EYJ.CANARY.SIG");
        t.clear();
        assert!(t.is_empty());
        assert!(serde_json::from_str::<Token>("12").is_err());
    }
}
