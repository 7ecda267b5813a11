//! Why a request was refused: the field and the rule, ready for an operator to act on.

/// Why a request was refused. Displayed as `field: rule`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {rule}")]
pub struct Rejection {
    /// JSON path of the offending field (`destination.model_id`), or `request` for the whole.
    pub field: String,
    /// What the field must look like, and what was found.
    pub rule: String,
}

impl Rejection {
    pub fn new(field: impl Into<String>, rule: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            rule: rule.into(),
        }
    }
}

/// Cuts user input quoted in an error, so a rejection never echoes a huge payload.
pub fn clip(s: &str) -> &str {
    match s.char_indices().nth(80) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
