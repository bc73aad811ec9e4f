//! Config text made safe to print.

use std::borrow::Cow;

/// Text from a config (or its file name) as a diagnostic shows it: control
/// characters and bidirectional overrides escaped (`\u{1b}`, `\r`), so a
/// key or value cannot move the cursor, erase the line, hide what follows
/// or reorder it on a terminal. Escaping twice changes nothing.
pub fn shown(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match needs_escape(c) {
            true => out.extend(c.escape_default()),
            false => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{061c}')
        // Line and paragraph separators: some viewers break lines at them.
        || matches!(c, '\u{2028}' | '\u{2029}')
}

#[cfg(test)]
mod tests {
    use super::super::{Code, Diagnostic, Severity};
    use super::*;

    #[test]
    fn control_characters_and_bidi_overrides_are_escaped_once() {
        let key = "\u{1b}[2K\rok: all good\u{1b}[8m \u{202e}txt.exe\u{2066}\ttab";
        let once = shown(key);
        assert_eq!(once, "\\u{1b}[2K\\rok: all good\\u{1b}[8m \\u{202e}txt.exe\\u{2066}\\ttab");
        assert_eq!(shown(&once), once, "idempotent");
        assert!(matches!(shown("plain `text` é ✓"), Cow::Borrowed(_)));
        assert_eq!(shown("a\u{2028}b\u{2029}c"), "a\\u{2028}b\\u{2029}c");
        let d = Diagnostic {
            file: "a\u{1b}.yaml".into(),
            line: 1,
            column: 1,
            severity: Severity::Error,
            code: Code::UnknownField,
            path: format!("[{key:?}]"),
            message: format!("unknown field `{key}`"),
        };
        let printed = d.to_string();
        assert!(!printed.chars().any(needs_escape), "{printed:?}");
        assert!(printed.starts_with("a\\u{1b}.yaml:1:1: error[unknown-field]: "), "{printed}");
        assert!(printed.ends_with("unknown field `\\u{1b}[2K\\rok: all good\\u{1b}[8m \\u{202e}txt.exe\\u{2066}\\ttab`"), "{printed}");
    }
}
