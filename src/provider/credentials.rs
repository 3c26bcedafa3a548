//! Secrets held in memory: API keys, tokens and direct-add passwords.
//!
//! A [`Secret`] wraps a [`secrecy::SecretString`]: the value is zeroized
//! when dropped, can only be read on purpose through [`Secret::expose`], and
//! its `Debug` and `Display` print `[redacted]`, so a secret that ends up in
//! a log line or an error by accident shows nothing. It is not `Clone`: a
//! copy of a credential is made on purpose or not at all.

use std::fmt;

use secrecy::zeroize::Zeroize;
use secrecy::{ExposeSecret, SecretString};

/// A credential whose value never prints.
pub struct Secret(SecretString);

impl Secret {
    /// Wraps a value, and zeroizes the `String` it came in (all of its
    /// capacity, which `SecretString::from(String)` would leave behind when
    /// it shrinks the buffer).
    #[must_use]
    pub fn new(mut value: String) -> Self {
        let secret = SecretString::from(value.as_str());
        value.zeroize();
        Self(secret)
    }

    /// The value, for the one place that sends it.
    #[must_use]
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
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
            Ok(mut text) => {
                let value = text.trim_end_matches(['\r', '\n']).to_owned();
                text.zeroize();
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

    // #9: secrets are held by `secrecy`, so they are zeroized on drop, and
    // `Secret` cannot be cloned by accident (the hand-written one derived Clone).
    #[test]
    fn secret_is_zeroized_on_drop_and_not_clone() {
        use std::marker::PhantomData;
        // Autoref specialisation: `is_clone` resolves to the first trait
        // whose impl applies, so it answers whether `T: Clone`.
        struct Probe<T>(PhantomData<T>);
        trait IsClone {
            fn is_clone(&self) -> bool {
                true
            }
        }
        impl<T: Clone> IsClone for Probe<T> {}
        trait NotClone {
            fn is_clone(&self) -> bool {
                false
            }
        }
        impl<T> NotClone for &Probe<T> {}
        fn zeroized_on_drop<T: secrecy::zeroize::ZeroizeOnDrop>(_: &T) {}

        let string_probe = &Probe::<String>(PhantomData);
        let secret_probe = &Probe::<Secret>(PhantomData);
        assert!(string_probe.is_clone(), "the probe sees Clone");
        assert!(!secret_probe.is_clone(), "Secret must not be Clone");
        let secret = Secret::new("hunter2".into());
        zeroized_on_drop(&secret.0);
        assert!(!format!("{:?}", secret.0).contains("hunter2"));
    }
}
