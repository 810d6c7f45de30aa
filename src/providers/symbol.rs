//! What a provider symbol may contain, checked before any request.
//!
//! URL parsing silently drops tab, CR and LF and resolves `.` and `..`
//! path segments, so `A\tB` would be fetched as `AB`: another instrument.
//! A symbol is therefore 1 to 64 printable ASCII characters without space,
//! `,` (it separates batched symbols) or `%` (it would be decoded into
//! something else by the server), and not `.` or `..`. The schema applies
//! the same rule to `assets` (`symbol_is_valid`, migration 0020); a test
//! keeps the two in agreement.

use std::borrow::Cow;
use std::fmt;

/// Longest symbol accepted, in bytes.
pub const MAX_LEN: usize = 64;

/// Why a symbol was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SymbolError {
    #[error("the symbol is empty")]
    Empty,
    #[error("the symbol is longer than {MAX_LEN} characters")]
    TooLong,
    #[error("the symbol {} is a path segment that URL parsing removes", Printable(.0))]
    DotSegment(String),
    #[error("the symbol {} contains {}, which is not allowed", Printable(.symbol), describe(*.found))]
    Forbidden { symbol: String, found: char },
}

/// Refuses a symbol that a URL would change or that is no ticker at all.
pub fn check(symbol: &str) -> Result<(), SymbolError> {
    if symbol.is_empty() {
        return Err(SymbolError::Empty);
    }
    if let Some(found) = symbol.chars().find(|&c| !allowed(c)) {
        return Err(SymbolError::Forbidden {
            symbol: symbol.to_owned(),
            found,
        });
    }
    if symbol.len() > MAX_LEN {
        return Err(SymbolError::TooLong);
    }
    if symbol == "." || symbol == ".." {
        return Err(SymbolError::DotSegment(symbol.to_owned()));
    }
    Ok(())
}

fn allowed(c: char) -> bool {
    c.is_ascii_graphic() && c != ',' && c != '%'
}

fn describe(c: char) -> String {
    match c {
        ' ' => "a space".to_owned(),
        c if c.is_control() => format!("the control character {}", c.escape_debug()),
        c if !c.is_ascii() => format!("the non-ASCII character {:?} (U+{:04X})", c, c as u32),
        c => format!("{c:?}"),
    }
}

/// A symbol as logs and messages may print it: quoted, with control
/// characters escaped, so `A\nB` cannot start a forged log line.
#[derive(Debug, Clone, Copy)]
pub struct Printable<'a>(pub &'a str);

impl fmt::Display for Printable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match escaped(self.0) {
            Cow::Borrowed(plain) => f.write_str(plain),
            Cow::Owned(escaped) => write!(f, "\"{escaped}\""),
        }
    }
}

/// `text` unchanged when every character is printable, else with control
/// (and other non-printing) characters escaped.
pub fn escaped(text: &str) -> Cow<'_, str> {
    if text.chars().all(|c| !c.is_control()) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_debug().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

/// Examples of the rule (symbol, accepted), checked against both this
/// module and the schema's `symbol_is_valid`.
pub const EXAMPLES: &[(&str, bool)] = &[
    ("AAPL", true),
    ("OCDO.L", true),
    ("BRK.B", true),
    ("BRK-B", true),
    ("^GSPC", true),
    ("GC=F", true),
    ("EURUSD=X", true),
    ("EUR/USD", true),
    ("BTC-USD", true),
    ("bitcoin", true),
    ("wrapped-bitcoin", true),
    ("", false),
    ("   ", false),
    ("A B", false),
    ("A\tB", false),
    ("A\nB", false),
    ("A\rB", false),
    ("A\u{0}B", false),
    ("A\u{7f}B", false),
    (".", false),
    ("..", false),
    ("...", true),
    ("A,B", false),
    ("%2e%2e", false),
    ("ÄPL", false),
    ("A\u{a0}B", false),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_that_a_url_would_change_are_refused() {
        for (symbol, ok) in EXAMPLES {
            assert_eq!(
                check(symbol).is_ok(),
                *ok,
                "{symbol:?}: {:?}",
                check(symbol)
            );
        }
        assert_eq!(check(&"A".repeat(65)), Err(SymbolError::TooLong));
        assert_eq!(
            check("A\nB").unwrap_err().to_string(),
            "the symbol \"A\\nB\" contains the control character \\n, which is not allowed"
        );
        assert_eq!(
            check("..").unwrap_err().to_string(),
            "the symbol .. is a path segment that URL parsing removes"
        );
    }

    #[test]
    fn printing_escapes_control_characters() {
        assert_eq!(Printable("AAPL").to_string(), "AAPL");
        assert_eq!(Printable("A\r\nB").to_string(), "\"A\\r\\nB\"");
        assert_eq!(escaped("x\ty"), "x\\ty");
    }
}
