//! Values that come from outside (a request's parameters, an identity provider's answers),
//! made safe to put in a log line: control characters (CR and LF above all, which would let a
//! caller forge whole lines in the text log), Unicode line and paragraph separators and
//! bidirectional overrides are written as `\u{…}` escapes, and the value is cut at
//! [`MAX_CHARS`] characters with the number of bytes left out.
//!
//! The JSON log escapes on its own; the text log (the default on a terminal and under
//! systemd) does not, so every such value is logged through [`Untrusted`].

use std::fmt;

/// Characters of an untrusted value that reach the log.
pub const MAX_CHARS: usize = 200;

/// Display an untrusted value escaped and capped.
#[derive(Debug, Clone, Copy)]
pub struct Untrusted<'a>(pub &'a str);

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

impl fmt::Display for Untrusted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (shown, (i, c)) in self.0.char_indices().enumerate() {
            if shown == MAX_CHARS {
                return write!(f, "…(+{} bytes)", self.0.len() - i);
            }
            if needs_escape(c) {
                write!(f, "\\u{{{:x}}}", u32::from(c))?;
            } else {
                fmt::Write::write_char(f, c)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_caps() {
        let forged = "denied\r\n2026-12-04T00:00:00Z ERROR posta: forged";
        let shown = Untrusted(forged).to_string();
        assert!(!shown.contains('\n') && !shown.contains('\r'), "{shown}");
        assert!(shown.starts_with("denied\\u{d}\\u{a}2026"), "{shown}");
        assert_eq!(
            Untrusted("a\u{2028}b\u{202e}c\u{7f}").to_string(),
            "a\\u{2028}b\\u{202e}c\\u{7f}"
        );
        let long = "x".repeat(MAX_CHARS + 50);
        assert_eq!(
            Untrusted(&long).to_string(),
            format!("{}…(+50 bytes)", "x".repeat(MAX_CHARS))
        );
        assert_eq!(Untrusted("accès refusé").to_string(), "accès refusé");
    }
}
