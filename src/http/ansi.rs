//! Terminal colours in stage output, shown in a page: SGR sequences (`ESC [ … m`) become
//! `<span class="…">` around HTML-escaped text; every other escape sequence is dropped. The
//! page's script does the same for lines that arrive live (`gantry.js`, `renderAnsi`).

use std::fmt::Write;

/// One line of output as HTML: escaped, with colour spans.
pub fn to_html(line: &str) -> String {
    let mut html = String::with_capacity(line.len());
    let mut classes: Vec<String> = Vec::new();
    let mut open = false;
    let mut rest = line;
    while let Some(at) = rest.find('\u{1b}') {
        escape_into(&mut html, &rest[..at]);
        let sequence = &rest[at + 1..];
        let Some(body) = sequence.strip_prefix('[') else {
            // A lone ESC or another kind of sequence: drop the ESC and its next char.
            rest = sequence
                .get(sequence.chars().next().map_or(0, char::len_utf8)..)
                .unwrap_or("");
            continue;
        };
        let end = body
            .find(|c: char| c.is_ascii_alphabetic() || c == '~')
            .unwrap_or(body.len());
        let (params, final_byte) = (&body[..end], body[end..].chars().next());
        rest = body
            .get(end + final_byte.map_or(0, char::len_utf8)..)
            .unwrap_or("");
        if final_byte != Some('m') {
            continue;
        }
        apply_sgr(params, &mut classes);
        if open {
            html.push_str("</span>");
            open = false;
        }
        if !classes.is_empty() {
            let _ = write!(html, "<span class=\"{}\">", classes.join(" "));
            open = true;
        }
    }
    escape_into(&mut html, rest);
    if open {
        html.push_str("</span>");
    }
    html
}

/// Updates the active classes for the parameters of one SGR sequence.
fn apply_sgr(params: &str, classes: &mut Vec<String>) {
    let codes: Vec<u32> = if params.is_empty() {
        vec![0]
    } else {
        params.split(';').map(|p| p.parse().unwrap_or(0)).collect()
    };
    let mut codes = codes.into_iter();
    while let Some(code) = codes.next() {
        match code {
            0 => classes.clear(),
            1 => set(classes, "ansi-bold", "ansi-bold"),
            3 => set(classes, "ansi-italic", "ansi-italic"),
            4 => set(classes, "ansi-underline", "ansi-underline"),
            22 => classes.retain(|c| c != "ansi-bold"),
            30..=37 | 90..=97 => set(classes, "ansi-fg-", &format!("ansi-fg-{code}")),
            39 => classes.retain(|c| !c.starts_with("ansi-fg-")),
            40..=47 | 100..=107 => set(classes, "ansi-bg-", &format!("ansi-bg-{code}")),
            49 => classes.retain(|c| !c.starts_with("ansi-bg-")),
            // 256-colour and true-colour forms: their arguments are skipped, not coloured.
            38 | 48 => match codes.next() {
                Some(5) => {
                    codes.next();
                }
                Some(2) => {
                    codes.next();
                    codes.next();
                    codes.next();
                }
                _ => {}
            },
            _ => {}
        }
    }
}

/// Replaces the class starting with `family` (or adds `class`).
fn set(classes: &mut Vec<String>, family: &str, class: &str) {
    classes.retain(|c| !c.starts_with(family));
    classes.push(class.to_owned());
}

pub fn escape_into(html: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '<' => html.push_str("&lt;"),
            '>' => html.push_str("&gt;"),
            '&' => html.push_str("&amp;"),
            '"' => html.push_str("&quot;"),
            '\'' => html.push_str("&#39;"),
            c => html.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_become_spans_and_markup_stays_text() {
        assert_eq!(
            to_html("\u{1b}[1;31mfailed\u{1b}[0m: <script>alert(1)</script> & more"),
            "<span class=\"ansi-bold ansi-fg-31\">failed</span>: \
             &lt;script&gt;alert(1)&lt;/script&gt; &amp; more"
        );
    }

    #[test]
    fn other_escape_sequences_are_dropped() {
        assert_eq!(to_html("\u{1b}[2Kprogress\u{1b}[1G done"), "progress done");
        assert_eq!(to_html("\u{1b}[38;5;196mred\u{1b}[m"), "red");
        assert_eq!(to_html("tail \u{1b}"), "tail ");
        assert_eq!(
            to_html("\u{1b}[32mgreen"),
            "<span class=\"ansi-fg-32\">green</span>"
        );
    }
}
