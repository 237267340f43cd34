//! A value that must never be printed: API keys and tokens.
//! `Debug` and `Display` print `*****`; only [`Secret::expose`] gives the value, at the one place that sends it.

use std::fmt;

/// An API key or token. Printing it in any form shows `*****`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The real value, for the request header or URL that needs it. Never log the result.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when no secret was given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Replaces every occurrence of this secret in `text` with `*****` (for provider error bodies
    /// that echo the key back).
    pub fn scrub(&self, text: &str) -> String {
        if self.0.len() < 4 {
            return text.to_string();
        }
        text.replace(&self.0, "*****")
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(*****)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("*****")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_printed() {
        let s = Secret::new("gsk_live_abcdef123456");
        assert_eq!(format!("{s}"), "*****");
        assert!(!format!("{s:?}").contains("abcdef"));
        assert_eq!(s.expose(), "gsk_live_abcdef123456");
        assert_eq!(s.scrub("bad key gsk_live_abcdef123456!"), "bad key *****!");
    }
}
