//! `tern passwd FILE USER`: adds or changes a user in a password file, as
//! `mosquitto_passwd FILE USER` does.

use std::io::{BufRead, Write};
use std::path::Path;

use tern::auth::PasswordFile;

pub fn run(file: &Path, user: &str, stdin: bool) -> Result<(), String> {
    if user.is_empty() || user.contains(':') {
        return Err("a user name must be non-empty and without ':'".into());
    }
    let mut passwords = if file.exists() {
        PasswordFile::load(file)?
    } else {
        PasswordFile::default()
    };
    let password = if stdin {
        from_stdin()?
    } else {
        from_terminal()?
    };
    passwords.set(user, password.as_bytes());
    write(file, &passwords.to_text())
}

fn from_stdin() -> Result<String, String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the password from stdin: {e}"))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn from_terminal() -> Result<String, String> {
    let read = |prompt| {
        rpassword::prompt_password(prompt).map_err(|e| format!("cannot read the password: {e}"))
    };
    let password = read("Password: ")?;
    if read("Reenter password: ")? != password {
        return Err("the passwords do not match".into());
    }
    Ok(password)
}

/// Written beside the file and renamed over it, readable by its owner
/// alone: a crash leaves the old file or the new one, never half of one.
fn write(file: &Path, text: &str) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let fail = |e: std::io::Error| format!("cannot write {}: {e}", file.display());
    let mut tmp = file.as_os_str().to_owned();
    tmp.push(".tmp");
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(fail)?;
    out.write_all(text.as_bytes()).map_err(fail)?;
    out.sync_all().map_err(fail)?;
    std::fs::rename(&tmp, file).map_err(fail)
}
