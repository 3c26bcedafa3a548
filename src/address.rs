//! Addresses: one member at one provider, written `PROVIDER/EMAIL`.
//!
//! The email part is trimmed and lowercased, because members are keyed by
//! email compared case-insensitively; the email *as written* travels in the
//! attributes and is what providers receive.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A member at a provider, e.g. `community/jane.doe@example.com`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(transparent)]
pub struct Address(String);

impl Address {
    /// Builds the address of `email` at `provider`, normalising the email.
    #[must_use]
    pub fn new(provider: &str, email: &str) -> Self {
        Self(format!("{provider}/{}", normalize_email(email)))
    }

    /// Parses `PROVIDER/EMAIL` as typed by a user (for `--target`, `state rm`, ...).
    pub fn parse(text: &str) -> Result<Self, String> {
        let (provider, email) =
            text.split_once('/').ok_or_else(|| format!("`{text}` is not an address; expected `PROVIDER/EMAIL`"))?;
        if provider.is_empty() || email.trim().is_empty() {
            return Err(format!("`{text}` is not an address; expected `PROVIDER/EMAIL`"));
        }
        Ok(Self::new(provider, email))
    }

    /// Every address at `provider`, as a range of the address order.
    #[must_use]
    pub fn provider_range(provider: &str) -> std::ops::Range<Address> {
        // Addresses sort as strings, and `0` is the character after `/`.
        Address(format!("{provider}/"))..Address(format!("{provider}0"))
    }

    /// The provider name part.
    #[must_use]
    pub fn provider(&self) -> &str {
        self.slash().map_or("", |at| &self.0[..at])
    }

    /// The normalised email part.
    #[must_use]
    pub fn email(&self) -> &str {
        self.slash().map_or("", |at| &self.0[at + 1..])
    }

    /// Where the `/` after the provider is. A plain loop over the short
    /// provider name: `split_once` sets up a general searcher each time,
    /// and these are called for every change a plan makes and renders
    /// (the searcher was some 4% of a first plan's samples in `perf`; the
    /// wall time gain is within the noise).
    fn slash(&self) -> Option<usize> {
        self.0.bytes().position(|b| b == b'/')
    }

    /// The address as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Trims and lowercases an email so that two spellings of one inbox compare equal.
#[must_use]
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_normalises_email_but_keeps_provider() {
        let a = Address::new("Community", "  Jane.Doe@Example.com ");
        assert_eq!(a.as_str(), "Community/jane.doe@example.com");
        assert_eq!(a.provider(), "Community");
        assert_eq!(a.email(), "jane.doe@example.com");
    }

    #[test]
    fn parse_rejects_text_without_provider() {
        assert!(Address::parse("jane@example.com").is_err());
        assert!(Address::parse("/jane@example.com").is_err());
        assert_eq!(Address::parse("c/J@x.io").unwrap().as_str(), "c/j@x.io");
    }
}
