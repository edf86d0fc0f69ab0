//! Who may connect: the password file and whether anonymous clients may.
//! Checked by the connection task before the broker is asked, since a
//! password hash takes CPU that must not be spent under the routing lock.

mod password_file;

pub use password_file::{PasswordFile, NEW_ITERATIONS};

use crate::codec::{Connect, ConnectCode};

pub struct Auth {
    passwords: Option<PasswordFile>,
    allow_anonymous: bool,
}

impl Auth {
    pub fn new(passwords: Option<PasswordFile>, allow_anonymous: bool) -> Auth {
        Auth {
            passwords,
            allow_anonymous,
        }
    }

    /// Anyone, as a broker with no configuration on loopback is.
    pub fn open() -> Auth {
        Auth::new(None, true)
    }

    /// The refusal for `connect`, if any (one code, which the encoder writes
    /// as 3.1.1's 4 and 5 or 5.0's 0x86 and 0x87). A wrong password and an
    /// unknown user get the same answer in about the same time.
    pub fn check(&self, connect: &Connect) -> Result<(), ConnectCode> {
        let Some(user) = &connect.username else {
            return if self.allow_anonymous {
                Ok(())
            } else {
                Err(ConnectCode::NotAuthorized)
            };
        };
        let Some(passwords) = &self.passwords else {
            // No file to check against: a name alone is anonymous.
            return if self.allow_anonymous {
                Ok(())
            } else {
                Err(ConnectCode::NotAuthorized)
            };
        };
        let password = connect.password.as_deref().unwrap_or_default();
        if passwords.verify(user, password) {
            Ok(())
        } else {
            Err(ConnectCode::BadUsernameOrPassword)
        }
    }
}
