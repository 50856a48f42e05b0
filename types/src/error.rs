//! The one error type of this crate: a string that did not parse as the id it claimed to be.

/// A value could not be parsed as one of this crate's ids.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A hex digest had the wrong length or a character outside `0-9a-f`.
    #[error("invalid {what} '{input}': expected {expected}")]
    Digest {
        /// Which kind of digest was being parsed.
        what: &'static str,
        /// The rejected input.
        input: String,
        /// What a valid value looks like.
        expected: &'static str,
    },
    /// A name (namespace component, backup id, datastore, node or site) broke the naming rules.
    #[error("invalid {what} '{input}': {rule}")]
    Name {
        /// Which kind of name was being parsed.
        what: &'static str,
        /// The rejected input.
        input: String,
        /// The rule that was broken, phrased so the user can fix the value.
        rule: &'static str,
    },
}
