//! How an error is told to people.

use std::error::Error;

/// An error's message followed by each of its causes', joined by `: ` (what anyhow's `{:#}`
/// prints): the form of errors shown in a stage's message, a run's description or a
/// command's output. Each message says only what its cause does not, so nothing repeats.
pub fn describe(error: &(dyn Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("pushing web:1")]
    struct Push(#[source] std::io::Error);

    #[test]
    fn causes_follow_the_message() {
        let error = Push(std::io::Error::other("connection refused"));
        assert_eq!(describe(&error), "pushing web:1: connection refused");
    }
}
