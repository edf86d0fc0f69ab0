//! Who may connect: the password file and whether anonymous clients may.
//! Checked by the connection task before the broker is asked, since a
//! password hash takes CPU that must not be spent under the routing lock.
//! What a connected client may read and write (the ACL) is judged by the
//! broker, which holds each session's rules (`acl`).

mod acl;
mod password_file;
mod throttle;

pub use acl::{Access, AclFile, ClientAcl};
pub use password_file::{PasswordFile, NEW_ITERATIONS};

use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock};

use crate::codec::{Connect, ConnectCode};
use throttle::Throttle;

pub struct Auth {
    /// Swapped whole when the file is read again (SIGHUP); a check holds
    /// its own reference for the time of its hash.
    passwords: RwLock<Option<Arc<PasswordFile>>>,
    throttle: Throttle,
}

impl Auth {
    pub fn new(passwords: Option<PasswordFile>) -> Auth {
        Auth {
            passwords: RwLock::new(passwords.map(Arc::new)),
            throttle: Throttle::default(),
        }
    }

    /// Checks CONNECTs against `passwords` from now on.
    pub fn replace_passwords(&self, passwords: PasswordFile) {
        *self
            .passwords
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(passwords));
    }

    /// The refusal for `connect` from `ip`, if any (one code, which the
    /// encoder writes as 3.1.1's 4 and 5 or 5.0's 0x86 and 0x87). A wrong
    /// password and an unknown user get the same answer in about the same
    /// time; an address that failed too often gets it without a check.
    /// Whether anonymous clients may connect is the listener's to say.
    pub fn check(
        &self,
        connect: &Connect,
        ip: IpAddr,
        allow_anonymous: bool,
    ) -> Result<(), ConnectCode> {
        let passwords = self
            .passwords
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let refusal = match (&connect.username, &passwords) {
            (Some(user), Some(passwords)) => {
                if self.throttle.is_blocked(ip) {
                    self.throttle.failed(ip, false);
                    return Err(ConnectCode::BadUsernameOrPassword);
                }
                let password = connect.password.as_deref().unwrap_or_default();
                if passwords.verify(user, password) {
                    return Ok(());
                }
                self.throttle.failed(ip, true);
                return Err(ConnectCode::BadUsernameOrPassword);
            }
            // Without a file to check against, a name alone is anonymous.
            _ if allow_anonymous => return Ok(()),
            _ => ConnectCode::NotAuthorized,
        };
        self.throttle.failed(ip, false);
        Err(refusal)
    }

    /// mosquitto's `use_identity_as_username`: the verified client
    /// certificate's CN replaces the CONNECT's user name and password,
    /// which are not checked; without one, the client is refused as for a
    /// bad user name or password.
    pub fn take_identity(
        &self,
        connect: &mut Connect,
        identity: Option<String>,
        ip: IpAddr,
    ) -> Result<(), ConnectCode> {
        let Some(user) = identity else {
            self.throttle.failed(ip, false);
            return Err(ConnectCode::BadUsernameOrPassword);
        };
        connect.username = Some(user);
        connect.password = None;
        Ok(())
    }

    /// CONNECTs refused for their credentials since the start.
    pub fn refused(&self) -> u64 {
        self.throttle.refused()
    }
}

/// Reads the `what` at `path` with `parse`, which names the line it stops
/// at; an error is one line that names the file too.
fn load<T>(
    what: &str,
    path: &Path,
    parse: impl FnOnce(&str) -> Result<T, (usize, String)>,
) -> Result<T, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {what} {}: {e}", path.display()))?;
    parse(&text).map_err(|(line, e)| format!("{what} {} line {line}: {e}", path.display()))
}
