//! Password files in mosquitto's format, so that users can bring theirs:
//! one `user:hash` a line, as `mosquitto_passwd` 2.x writes them, where the
//! hash is `$7$<iterations>$<salt>$<PBKDF2-HMAC-SHA512>` or the older
//! `$6$<salt>$<SHA-512 of password then salt>`, in standard base64.

use std::collections::BTreeMap;
use std::path::Path;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use sha2::{Digest, Sha512};
use subtle::ConstantTimeEq;

/// What a new entry is hashed with. mosquitto_passwd 2.0 writes 101; more
/// costs every CONNECT with a password that much more CPU,
/// fewer makes a stolen file cheaper to attack (1.3 ms a check here,
/// timed with Python's hashlib).
pub const NEW_ITERATIONS: u32 = 1_000;

const SALT_BYTES: usize = 12;
const HASH_BYTES: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Hash {
    Sha512 {
        salt: Vec<u8>,
        hash: Vec<u8>,
    },
    Pbkdf2 {
        iterations: u32,
        salt: Vec<u8>,
        hash: Vec<u8>,
    },
}

impl Hash {
    fn parse(text: &str) -> Result<Hash, String> {
        let fields: Vec<&str> = text.split('$').collect();
        let decode = |what: &str, field: &str| {
            BASE64
                .decode(field)
                .map_err(|e| format!("the {what} is not base64: {e}"))
        };
        match fields[..] {
            ["", "6", salt, hash] => Ok(Hash::Sha512 {
                salt: decode("salt", salt)?,
                hash: decode("hash", hash)?,
            }),
            ["", "7", iterations, salt, hash] => Ok(Hash::Pbkdf2 {
                iterations: iterations
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| format!("bad iteration count {iterations:?}"))?,
                salt: decode("salt", salt)?,
                hash: decode("hash", hash)?,
            }),
            _ => Err("not a $6$ or $7$ hash as mosquitto_passwd writes them".into()),
        }
    }

    fn new(password: &[u8], salt: Vec<u8>) -> Hash {
        let mut hash = vec![0; HASH_BYTES];
        pbkdf2::pbkdf2_hmac::<Sha512>(password, &salt, NEW_ITERATIONS, &mut hash);
        Hash::Pbkdf2 {
            iterations: NEW_ITERATIONS,
            salt,
            hash,
        }
    }

    fn matches(&self, password: &[u8]) -> bool {
        match self {
            Hash::Sha512 { salt, hash } => {
                let digest = Sha512::new()
                    .chain_update(password)
                    .chain_update(salt)
                    .finalize();
                digest.as_slice().ct_eq(hash).into()
            }
            Hash::Pbkdf2 {
                iterations,
                salt,
                hash,
            } => {
                let mut out = vec![0; hash.len()];
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, *iterations, &mut out);
                out.ct_eq(hash).into()
            }
        }
    }

    fn to_line(&self) -> String {
        match self {
            Hash::Sha512 { salt, hash } => {
                format!("$6${}${}", BASE64.encode(salt), BASE64.encode(hash))
            }
            Hash::Pbkdf2 {
                iterations,
                salt,
                hash,
            } => format!(
                "$7${iterations}${}${}",
                BASE64.encode(salt),
                BASE64.encode(hash)
            ),
        }
    }
}

/// Users and their password hashes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PasswordFile {
    users: BTreeMap<String, Hash>,
    /// What an unknown user's password is checked against (`decoy`);
    /// none while there are no users.
    decoy: Option<Hash>,
}

impl PasswordFile {
    /// Reads `path`; an error names the file and the line.
    pub fn load(path: &Path) -> Result<PasswordFile, String> {
        super::load("password file", path, PasswordFile::parse)
    }

    /// Blank lines and `#` comments are skipped, as mosquitto does; an
    /// error names the line.
    pub fn parse(text: &str) -> Result<PasswordFile, (usize, String)> {
        let mut users = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let (user, hash) = line
                .split_once(':')
                .ok_or_else(|| (i + 1, "no ':' between user and hash".to_owned()))?;
            let hash = Hash::parse(hash).map_err(|e| (i + 1, e))?;
            users.insert(user.to_owned(), hash);
        }
        let decoy = decoy(&users);
        Ok(PasswordFile { users, decoy })
    }

    /// Whether `password` is `user`'s. An unknown user costs a hash too, so
    /// that the time taken does not tell which users exist.
    pub fn verify(&self, user: &str, password: &[u8]) -> bool {
        match self.users.get(user) {
            Some(hash) => hash.matches(password),
            None => {
                if let Some(decoy) = &self.decoy {
                    let _ = decoy.matches(password);
                }
                false
            }
        }
    }

    /// Adds `user` or changes their password, with a fresh salt.
    pub fn set(&mut self, user: &str, password: &[u8]) {
        let mut salt = vec![0; SALT_BYTES];
        rand::Rng::fill(&mut rand::rng(), &mut salt[..]);
        self.users
            .insert(user.to_owned(), Hash::new(password, salt));
        self.decoy = decoy(&self.users);
    }

    /// The file's text, one user a line, sorted.
    pub fn to_text(&self) -> String {
        self.users
            .iter()
            .map(|(user, hash)| format!("{user}:{}\n", hash.to_line()))
            .collect()
    }
}

/// A hash that costs what most of `users`' cost to check, so that an
/// unknown user takes as long as a wrong password: files that
/// mosquitto_passwd wrote have 101 iterations, `tern passwd`'s 1,000, and
/// a decoy of either kind for the other's users would tell them apart
/// (the most common kind wins; of as many, the costlier).
fn decoy(users: &BTreeMap<String, Hash>) -> Option<Hash> {
    let mut kinds: BTreeMap<Option<u32>, usize> = BTreeMap::new();
    for hash in users.values() {
        let iterations = match hash {
            Hash::Sha512 { .. } => None,
            Hash::Pbkdf2 { iterations, .. } => Some(*iterations),
        };
        *kinds.entry(iterations).or_default() += 1;
    }
    let (kind, _) = kinds.into_iter().max_by_key(|(kind, n)| (*n, *kind))?;
    let (salt, hash) = (vec![0; SALT_BYTES], vec![0; HASH_BYTES]);
    Some(match kind {
        None => Hash::Sha512 { salt, hash },
        Some(iterations) => Hash::Pbkdf2 {
            iterations,
            salt,
            hash,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written by mosquitto_passwd 2.0.11: `mosquitto_passwd -c -b f alice secret`.
    const MOSQUITTO: &str = "alice:$7$101$Bh2DrAPkFwY+BjcK$NyycJwiIzKtW/aCWLGfhCEiM/9lmfU301p2yW0r6gjcgdE2q1J8Hrti/vDE/RTgKPe50LDVg/yuggCnTMjYheA==\n";

    #[test]
    fn a_line_mosquitto_passwd_wrote_verifies() {
        let file = PasswordFile::parse(MOSQUITTO).unwrap();
        assert!(file.verify("alice", b"secret"));
        assert!(!file.verify("alice", b"Secret"));
        assert_eq!(file.to_text(), MOSQUITTO, "written back as it was");
    }

    #[test]
    fn a_new_entry_verifies_and_reads_back() {
        let mut file = PasswordFile::default();
        file.set("bob", b"hunter2");
        let again = PasswordFile::parse(&file.to_text()).unwrap();
        assert_eq!(again, file);
        assert!(again.verify("bob", b"hunter2"));
        assert!(!again.verify("bob", b"hunter3"));
        assert!(!again.verify("eve", b"hunter2"));
    }

    #[test]
    fn an_unknown_user_costs_what_a_known_one_does() {
        let iterations = |file: &PasswordFile| match &file.decoy {
            Some(Hash::Pbkdf2 { iterations, .. }) => Some(*iterations),
            _ => None,
        };
        let mosquitto = PasswordFile::parse(MOSQUITTO).unwrap();
        assert_eq!(iterations(&mosquitto), Some(101));
        let mut ours = PasswordFile::default();
        assert_eq!(ours.decoy, None);
        ours.set("bob", b"b");
        assert_eq!(iterations(&ours), Some(NEW_ITERATIONS));
        // Two of mosquitto's beside one of ours: mosquitto's cost.
        let mut mixed = PasswordFile::parse(&format!(
            "{MOSQUITTO}{}",
            MOSQUITTO.replacen("alice", "carol", 1)
        ))
        .unwrap();
        mixed.set("bob", b"b");
        assert_eq!(iterations(&mixed), Some(101));
        assert!(!mixed.verify("eve", b"secret"));
    }

    #[test]
    fn a_bad_line_is_named() {
        let err = PasswordFile::parse("# users\n\nalice:$7$x$AA==$AA==\n").unwrap_err();
        assert_eq!(err, (3, "bad iteration count \"x\"".to_owned()));
        assert!(PasswordFile::parse("alice\n").is_err());
    }

    #[test]
    fn a_sha512_line_verifies() {
        let salt = b"0123456789ab".to_vec();
        let hash = Sha512::new()
            .chain_update(b"pw")
            .chain_update(&salt)
            .finalize()
            .to_vec();
        let line = format!("u:{}\n", Hash::Sha512 { salt, hash }.to_line());
        let file = PasswordFile::parse(&line).unwrap();
        assert!(file.verify("u", b"pw"));
        assert!(!file.verify("u", b"pW"));
    }
}
