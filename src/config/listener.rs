//! A `[[listener]]` table: one address with its own transport and
//! settings, mosquitto's `per_listener_settings` in TOML. Settings a
//! listener leaves out are the broker's.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::{Config, ConfigError};

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    pub address: SocketAddr,
    /// What the bytes on the connection are: MQTT itself, or MQTT inside
    /// WebSocket frames (mosquitto's `protocol`).
    #[serde(default)]
    pub protocol: Protocol,
    /// The HTTP path a WebSocket listener upgrades on; other paths get 404.
    /// Unset: `/mqtt`, where MQTT.js and mosquitto's clients look.
    #[serde(default)]
    pub path: Option<String>,
    /// Whether clients without a user name may connect here. Unset: the
    /// broker's `allow_anonymous`, and failing that only on a loopback
    /// address.
    #[serde(default)]
    pub allow_anonymous: Option<bool>,
    /// Open connections on this listener; the broker's `connections_max`
    /// bounds them all together.
    #[serde(default)]
    pub connections_max: Option<usize>,
    /// The server's certificate chain (PEM); with `key_file`, the
    /// listener speaks TLS (mosquitto's `certfile`).
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// The private key of `cert_file`'s first certificate (PEM).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// CA certificates (PEM) that client certificates are verified
    /// against. Without `require_certificate`, a client may still come
    /// without one; one it does present must verify (mosquitto asks for
    /// none then).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Refuse a TLS handshake without a client certificate that
    /// `ca_file` verifies.
    #[serde(default)]
    pub require_certificate: bool,
    /// The client certificate's subject CN is the user name, taken
    /// instead of the CONNECT's with no password checked; a client without
    /// a certificate is refused (bad user name or password), as in mosquitto.
    #[serde(default)]
    pub use_identity_as_username: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Mqtt,
    /// MQTT in binary WebSocket messages, over HTTP's upgrade.
    Websockets,
}

/// Where a WebSocket listener upgrades when its table names no `path`.
pub const WEBSOCKET_PATH_DEFAULT: &str = "/mqtt";

impl ListenerConfig {
    /// Plain MQTT on `address` with the broker's settings: what `listen`
    /// and `--listen` give.
    pub fn plain(address: SocketAddr) -> ListenerConfig {
        ListenerConfig {
            address,
            protocol: Protocol::Mqtt,
            path: None,
            allow_anonymous: None,
            connections_max: None,
            cert_file: None,
            key_file: None,
            ca_file: None,
            require_certificate: false,
            use_identity_as_username: false,
        }
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.connections_max == Some(0) {
            return Err(ConfigError::Invalid(format!(
                "listener {}: connections_max must be at least 1",
                self.address
            )));
        }
        self.validate_tls()
            .map_err(|e| ConfigError::Invalid(format!("listener {}: {e}", self.address)))?;
        self.validate_path()
    }

    /// TLS settings that could not mean what they say. The files
    /// themselves are read when the listener is built.
    fn validate_tls(&self) -> Result<(), &'static str> {
        match (&self.cert_file, &self.key_file) {
            (Some(_), None) => return Err("cert_file needs key_file"),
            (None, Some(_)) => return Err("key_file needs cert_file"),
            (None, None) if self.ca_file.is_some() => return Err("ca_file needs cert_file"),
            _ => {}
        }
        if self.ca_file.is_none() {
            if self.require_certificate {
                return Err("require_certificate needs ca_file to verify certificates with");
            }
            if self.use_identity_as_username {
                return Err("use_identity_as_username needs ca_file to verify certificates with");
            }
        }
        Ok(())
    }

    fn validate_path(&self) -> Result<(), ConfigError> {
        match (&self.path, self.protocol) {
            (Some(_), Protocol::Mqtt) => Err(ConfigError::Invalid(format!(
                "listener {}: path is for protocol = \"websockets\"",
                self.address
            ))),
            (Some(path), Protocol::Websockets) if !path.starts_with('/') => {
                Err(ConfigError::Invalid(format!(
                    "listener {}: path must begin with '/', not {path:?}",
                    self.address
                )))
            }
            _ => Ok(()),
        }
    }

    /// The path a WebSocket listener upgrades on.
    pub fn websocket_path(&self) -> &str {
        self.path.as_deref().unwrap_or(WEBSOCKET_PATH_DEFAULT)
    }
}

impl Config {
    /// Every listener: `listen`'s addresses as plain MQTT, then the
    /// `[[listener]]` tables; with neither, plain MQTT on loopback.
    pub fn listeners(&self) -> Vec<ListenerConfig> {
        let mut all: Vec<ListenerConfig> = self
            .listen
            .iter()
            .copied()
            .map(ListenerConfig::plain)
            .chain(self.listener.iter().cloned())
            .collect();
        if all.is_empty() {
            all.push(ListenerConfig::plain(super::DEFAULT_LISTEN));
        }
        all
    }

    /// Whether anonymous clients may connect on `listener`: as its own
    /// setting or the broker's says; unset, only if the broker listens on
    /// loopback alone (as mosquitto 2 does). A loopback listener beside a
    /// public one is no proof that its clients are local: a proxy or a
    /// port forward on the host may carry anyone there.
    pub fn anonymous_allowed_on(&self, listener: &ListenerConfig) -> bool {
        listener
            .allow_anonymous
            .unwrap_or_else(|| self.anonymous_allowed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listener_tables_add_to_listen_and_replace_the_default() {
        let config = Config::from_toml(
            "[[listener]]\naddress = \"0.0.0.0:1884\"\nallow_anonymous = true\n\
             connections_max = 10\n",
        )
        .unwrap();
        let listeners = config.listeners();
        assert_eq!(listeners.len(), 1, "{listeners:?}");
        assert_eq!(listeners[0].address, "0.0.0.0:1884".parse().unwrap());
        assert_eq!(listeners[0].connections_max, Some(10));
        assert!(config.anonymous_allowed_on(&listeners[0]));

        let both = Config::from_toml(
            "listen = [\"127.0.0.1:1883\"]\n[[listener]]\naddress = \"0.0.0.0:1884\"\n",
        )
        .unwrap();
        let listeners = both.listeners();
        assert_eq!(listeners.len(), 2);
        // Not on loopback alone: credentials on both, as in mosquitto 2.
        assert!(!both.anonymous_allowed_on(&listeners[0]));
        assert!(!both.anonymous_allowed_on(&listeners[1]));
        let local = Config::from_toml(
            "listen = [\"127.0.0.1:1883\"]\n[[listener]]\naddress = \"[::1]:1884\"\n",
        )
        .unwrap();
        assert!(local
            .listeners()
            .iter()
            .all(|listener| local.anonymous_allowed_on(listener)));
        assert_eq!(
            Config::default().listeners(),
            vec![ListenerConfig::plain(super::super::DEFAULT_LISTEN)]
        );
    }

    #[test]
    fn a_listener_setting_overrides_the_brokers() {
        let config = Config::from_toml(
            "allow_anonymous = true\n[[listener]]\naddress = \"127.0.0.1:1\"\n\
             allow_anonymous = false\n[[listener]]\naddress = \"0.0.0.0:2\"\n",
        )
        .unwrap();
        let listeners = config.listeners();
        assert!(!config.anonymous_allowed_on(&listeners[0]));
        assert!(config.anonymous_allowed_on(&listeners[1]));
    }

    #[test]
    fn bad_listener_tables_are_one_line_errors() {
        let err = Config::from_toml("[[listener]]\naddress = \"0.0.0.0:1\"\nconnections_max = 0\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "listener 0.0.0.0:1: connections_max must be at least 1"
        );
        let err = Config::from_toml("[[listener]]\naddress = \"0.0.0.0:1\"\nprotocol = \"smtp\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(":3: unknown variant `smtp`"), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn tls_settings_that_cannot_work_are_one_line_errors() {
        let base = "[[listener]]\naddress = \"0.0.0.0:1\"\n";
        let cases = [
            ("cert_file = \"c\"", "cert_file needs key_file"),
            ("key_file = \"k\"", "key_file needs cert_file"),
            ("ca_file = \"a\"", "ca_file needs cert_file"),
            (
                "cert_file = \"c\"\nkey_file = \"k\"\nrequire_certificate = true",
                "require_certificate needs ca_file to verify certificates with",
            ),
            (
                "cert_file = \"c\"\nkey_file = \"k\"\nuse_identity_as_username = true",
                "use_identity_as_username needs ca_file to verify certificates with",
            ),
        ];
        for (keys, expected) in cases {
            let err = Config::from_toml(&format!("{base}{keys}\n"))
                .unwrap_err()
                .to_string();
            assert_eq!(err, format!("listener 0.0.0.0:1: {expected}"));
        }
        let tls = Config::from_toml(&format!(
            "{base}cert_file = \"c\"\nkey_file = \"k\"\nca_file = \"a\"\n\
             require_certificate = true\nuse_identity_as_username = true\n"
        ))
        .unwrap();
        let listener = &tls.listeners()[0];
        assert_eq!(listener.ca_file, Some("a".into()));
        assert!(listener.require_certificate && listener.use_identity_as_username);
    }

    #[test]
    fn a_websocket_listener_has_a_path_and_only_it_does() {
        let config = Config::from_toml(
            "[[listener]]\naddress = \"127.0.0.1:1\"\nprotocol = \"websockets\"\n\
             [[listener]]\naddress = \"127.0.0.1:2\"\nprotocol = \"websockets\"\npath = \"/ws\"\n",
        )
        .unwrap();
        let listeners = config.listeners();
        assert_eq!(listeners[0].protocol, Protocol::Websockets);
        assert_eq!(listeners[0].websocket_path(), "/mqtt");
        assert_eq!(listeners[1].websocket_path(), "/ws");

        let err = Config::from_toml("[[listener]]\naddress = \"127.0.0.1:1\"\npath = \"/ws\"\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "listener 127.0.0.1:1: path is for protocol = \"websockets\""
        );
        let err = Config::from_toml(
            "[[listener]]\naddress = \"127.0.0.1:1\"\nprotocol = \"websockets\"\npath = \"ws\"\n",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "listener 127.0.0.1:1: path must begin with '/', not \"ws\""
        );
    }
}
