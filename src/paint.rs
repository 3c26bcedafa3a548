//! ANSI colours, in one place: the text plan renderer and the terminal
//! output both paint through [`Paint`], which is a no-op when colour is off.

/// Red: errors, removals.
pub const RED: &str = "\x1b[31m";
/// Green: hints, invitations.
pub const GREEN: &str = "\x1b[32m";
/// Yellow: warnings, updates.
pub const YELLOW: &str = "\x1b[33m";
/// Magenta: manual changes.
pub const MAGENTA: &str = "\x1b[35m";
/// Cyan: resends.
pub const CYAN: &str = "\x1b[36m";
/// Bold: headings.
pub const BOLD: &str = "\x1b[1m";
/// Dim: reasons and asides.
pub const DIM: &str = "\x1b[2m";
const RESET: &str = "\x1b[0m";

/// Paints text when colour is on.
#[derive(Clone, Copy, Debug)]
pub struct Paint {
    enabled: bool,
}

impl Paint {
    /// A painter; `enabled` is the caller's decision (terminal, `NO_COLOR`, `--color`).
    #[must_use]
    pub fn new(enabled: bool) -> Self {
        Paint { enabled }
    }

    /// Whether colour is on.
    #[must_use]
    pub fn enabled(self) -> bool {
        self.enabled
    }

    /// `text` in `code`, or as it is when colour is off.
    #[must_use]
    pub fn paint(self, code: &str, text: &str) -> String {
        if self.enabled {
            format!("{code}{text}{RESET}")
        } else {
            text.to_owned()
        }
    }
}
