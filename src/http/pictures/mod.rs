//! Pictures drawn on the server as SVG: a run's timeline and a pipeline's trend. No build
//! step and no script draws them; the run page's script only fetches a fresh timeline.
//! Every name in them comes from a payload or a pipeline file, so all text is escaped.

pub mod sparkline;
pub mod timeline;

use std::fmt::Write;

/// Text or an attribute value for SVG (an XML document on its own, an HTML fragment inline).
pub(super) fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            // Control characters are not allowed in XML 1.0.
            c if c.is_control() && c != '\n' && c != '\t' => escaped.push('\u{fffd}'),
            c => escaped.push(c),
        }
    }
    escaped
}

/// `name` cut to `max` characters, with an ellipsis when it was longer.
fn shorten(name: &str, max: usize) -> String {
    if name.chars().count() <= max {
        return name.to_owned();
    }
    let mut short: String = name.chars().take(max.saturating_sub(1)).collect();
    short.push('…');
    short
}

/// `1m 5s` for a span of milliseconds; tenths below ten seconds.
pub fn span_text(millis: i64) -> String {
    let millis = millis.max(0);
    let seconds = millis / 1000;
    let mut text = String::new();
    let _ = match seconds {
        0..=9 => write!(text, "{:.1}s", millis as f64 / 1000.0),
        10..=59 => write!(text, "{seconds}s"),
        60..=3599 => write!(text, "{}m {}s", seconds / 60, seconds % 60),
        _ => write!(text, "{}h {}m", seconds / 3600, seconds % 3600 / 60),
    };
    text
}

/// Fill colours by state, shared by both pictures; a class per state keeps the markup short
/// and the tests able to tell states apart.
const STATE_STYLE: &str = ".s-success{fill:#2da44e}.s-failure{fill:#cf222e}\
.s-error{fill:#bc4c00}.s-canceled{fill:#8c959f}.s-running{fill:#0969da}\
.s-pending{fill:#d0d7de}.s-skipped{fill:#eaeef2}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_control_characters() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>\u{7}"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;\u{fffd}"
        );
    }

    #[test]
    fn shortens_long_names_only() {
        assert_eq!(shorten("build", 8), "build");
        assert_eq!(shorten("a-very-long-stage", 8), "a-very-…");
    }

    #[test]
    fn spans_read_as_people_say_them() {
        assert_eq!(span_text(1234), "1.2s");
        assert_eq!(span_text(42_000), "42s");
        assert_eq!(span_text(65_000), "1m 5s");
        assert_eq!(span_text(3_720_000), "1h 2m");
    }
}
