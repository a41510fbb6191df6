//! Rules for usernames and display names.

/// Longest username, in characters (all ASCII, so also bytes).
pub const MAX_USERNAME_CHARS: usize = 64;
/// Longest display name, in characters, after trimming.
pub const MAX_DISPLAY_NAME_CHARS: usize = 64;

/// Why a username was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsernameError {
    /// Nothing given.
    #[error("username is empty")]
    Empty,
    /// More than [`MAX_USERNAME_CHARS`].
    #[error("username is too long: at most {max} characters")]
    TooLong {
        /// The limit.
        max: usize,
    },
    /// A character outside `a-z 0-9 . - _`.
    #[error("username contains {0:?}: only letters a-z, digits 0-9, '.', '-' and '_' are allowed")]
    InvalidChar(char),
}

/// Why a display name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DisplayNameError {
    /// Nothing but white space.
    #[error("display name is empty")]
    Empty,
    /// More than [`MAX_DISPLAY_NAME_CHARS`] after trimming.
    #[error("display name is too long: at most {max} characters")]
    TooLong {
        /// The limit.
        max: usize,
    },
    /// A control character, or an invisible character that reorders or hides text.
    #[error("display name contains the control character U+{0:04X}")]
    ControlChar(u32),
}

/// The canonical form of a username: ASCII letters lowercased (usernames are
/// case-insensitive), then checked: 1 to 64 characters of `a-z 0-9 . - _`.
pub fn normalize_username(input: &str) -> Result<String, UsernameError> {
    if input.is_empty() {
        return Err(UsernameError::Empty);
    }
    if let Some(c) = input
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
    {
        return Err(UsernameError::InvalidChar(c));
    }
    if input.len() > MAX_USERNAME_CHARS {
        return Err(UsernameError::TooLong {
            max: MAX_USERNAME_CHARS,
        });
    }
    Ok(input.to_ascii_lowercase())
}

/// The canonical form of a display name: trimmed; 1 to 64 characters; no control characters
/// and no bidirectional or zero-width formatting characters (which let a name pose as
/// another in lists read by moderators).
pub fn normalize_display_name(input: &str) -> Result<String, DisplayNameError> {
    let name = input.trim();
    if name.is_empty() {
        return Err(DisplayNameError::Empty);
    }
    if let Some(c) = name.chars().find(|&c| is_hidden_char(c)) {
        return Err(DisplayNameError::ControlChar(u32::from(c)));
    }
    if name.chars().count() > MAX_DISPLAY_NAME_CHARS {
        return Err(DisplayNameError::TooLong {
            max: MAX_DISPLAY_NAME_CHARS,
        });
    }
    Ok(name.to_owned())
}

/// Control characters (Cc) and the format characters that reorder or hide text.
fn is_hidden_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200B}'..='\u{200F}' // zero-width space/joiners, LRM, RLM
                | '\u{202A}'..='\u{202E}' // bidi embeddings and overrides
                | '\u{2060}'..='\u{2064}' // word joiner, invisible operators
                | '\u{2066}'..='\u{2069}' // bidi isolates
                | '\u{FEFF}' // zero-width no-break space
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert_eq!(normalize_username("alice").unwrap(), "alice");
        assert_eq!(normalize_username("Alice.B-c_9").unwrap(), "alice.b-c_9");
        assert_eq!(normalize_username(""), Err(UsernameError::Empty));
        assert_eq!(
            normalize_username(&"a".repeat(65)),
            Err(UsernameError::TooLong { max: 64 })
        );
        assert!(normalize_username(&"a".repeat(64)).is_ok());
        for (bad, c) in [
            ("a b", ' '),
            ("a@b", '@'),
            ("jörg", 'ö'),
            ("a\u{0}", '\0'),
            ("İx", 'İ'),
        ] {
            assert_eq!(normalize_username(bad), Err(UsernameError::InvalidChar(c)));
        }
    }

    #[test]
    fn display_names() {
        assert_eq!(
            normalize_display_name("  Ada Lovelace \n").unwrap(),
            "Ada Lovelace"
        );
        assert_eq!(
            normalize_display_name("Jörg Müller").unwrap(),
            "Jörg Müller"
        );
        assert_eq!(normalize_display_name(" \t "), Err(DisplayNameError::Empty));
        assert_eq!(normalize_display_name(""), Err(DisplayNameError::Empty));
        assert!(normalize_display_name(&"ä".repeat(64)).is_ok());
        assert_eq!(
            normalize_display_name(&"ä".repeat(65)),
            Err(DisplayNameError::TooLong { max: 64 })
        );
        assert_eq!(
            normalize_display_name("a\u{7}b"),
            Err(DisplayNameError::ControlChar(7))
        );
        assert_eq!(
            normalize_display_name("a\nb"),
            Err(DisplayNameError::ControlChar(10))
        );
        assert_eq!(
            normalize_display_name("evil\u{202E}gnp.exe"),
            Err(DisplayNameError::ControlChar(0x202E))
        );
    }
}
