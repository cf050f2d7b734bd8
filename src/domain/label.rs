//! Runner labels: what a runner offers (`[runner] labels`) and what a pipeline asks for
//! (`runs_on`). A run goes only to a runner that has every label its pipelines ask for.

/// Longest label accepted; real ones are short (`linux/arm64`, `gpu`, `big`).
pub const MAX_LABEL_LEN: usize = 64;
/// Most labels one runner offers or one pipeline asks for.
pub const MAX_LABELS: usize = 32;

/// Checks one label: 1 to 64 ASCII letters, digits and `. _ - / : =`, so that a label is
/// the same word in the config, the pipeline file, the store and the pages.
pub fn check_runner_label(label: &str) -> Result<(), String> {
    if label.is_empty() || label.len() > MAX_LABEL_LEN {
        return Err(format!(
            "a label is 1 to {MAX_LABEL_LEN} characters long, not {}",
            label.len()
        ));
    }
    if let Some(bad) = label
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "._-/:=".contains(*c)))
    {
        return Err(format!(
            "label `{}` has `{}`: use letters, digits and `. _ - / : =`",
            label.escape_debug(),
            bad.escape_debug()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_plain_words() {
        assert!(check_runner_label("linux/amd64").is_ok());
        assert!(check_runner_label("gpu=a100").is_ok());
        assert!(check_runner_label("").is_err());
        assert!(check_runner_label("big; rm -rf /").is_err());
        assert!(check_runner_label(&"x".repeat(65)).is_err());
    }
}
