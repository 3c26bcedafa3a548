//! Secrets held in memory: API keys, tokens and direct-add passwords.
//!
//! A [`Secret`] can only be read on purpose, through [`Secret::expose`]; its
//! `Debug` and `Display` print `[redacted]`, so a secret that ends up in a
//! log line or an error by accident shows nothing.

use std::fmt;

/// A credential whose value never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    #[must_use]
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The value, for the one place that sends it.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Reads a direct-add password from the env var or file the member names.
///
/// The error names the env var or file, never the value. A trailing newline
/// in a password file is not part of the password.
pub fn read_password(attributes: &crate::attributes::Attributes) -> Result<Option<Secret>, String> {
    if let Some(var) = &attributes.password_env {
        return match std::env::var(var) {
            Ok(value) if !value.is_empty() => Ok(Some(Secret::new(value))),
            _ => Err(format!("the env var `{var}` named by `password_env` is not set")),
        };
    }
    if let Some(path) = &attributes.password_file {
        return match std::fs::read_to_string(path) {
            Ok(text) => {
                let value = text.trim_end_matches(['\r', '\n']).to_owned();
                if value.is_empty() {
                    Err(format!("the password file `{path}` is empty"))
                } else {
                    Ok(Some(Secret::new(value)))
                }
            }
            Err(err) => Err(format!("cannot read the password file `{path}`: {err}")),
        };
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn secret_never_formats_its_value() {
        let s = Secret::new("hunter2".into());
        assert!(!format!("{s:?} {s}").contains("hunter2"));
        assert_eq!(s.expose(), "hunter2");
    }
}
