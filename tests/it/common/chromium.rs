//! Headless Chromium (Debian's `chromium`) driven over the DevTools
//! protocol: a test opens a page and reads what its scripts wrote, polling
//! in real time. `--dump-dom` with a virtual time budget is simpler, but
//! it dumps when the budget of virtual time is spent, whatever the page
//! still waits for: one run in about fifteen dumped a page that had not
//! heard from the broker.

use std::process::Stdio;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::{within, WAIT};

/// A browser with one page open, killed when dropped.
pub struct Page {
    browser: Child,
    devtools: WebSocketStream<TcpStream>,
    session: String,
    next_id: u64,
    profile: std::path::PathBuf,
}

impl Page {
    /// Starts Chromium on `url`, with a profile of its own named by `name`.
    pub async fn open(url: &str, name: &str) -> Page {
        let profile = std::env::temp_dir().join(format!("tern-it-chromium-{name}"));
        // Its own temporary files (a singleton socket's directory each
        // run) go in the profile too, and are removed with it.
        std::fs::create_dir_all(&profile).expect("create the browser's profile");
        let mut browser = Command::new("chromium")
            .env("TMPDIR", &profile)
            .args(["--headless", "--no-sandbox", "--disable-gpu"])
            .args(["--remote-debugging-port=0", "--no-first-run"])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            // Its own group, so that its helpers (zygote, renderer, GPU)
            // are killed with it and write no more into the profile.
            .process_group(0)
            .spawn()
            .expect("chromium starts");
        let stderr = browser.stderr.take().expect("piped stderr");
        let endpoint = within("chromium's DevTools address", async {
            let mut lines = BufReader::new(stderr).lines();
            while let Some(line) = lines.next_line().await.expect("chromium's stderr") {
                if let Some(at) = line.strip_prefix("DevTools listening on ") {
                    return at.to_owned();
                }
            }
            panic!("chromium ended without a DevTools address");
        })
        .await;
        let host = endpoint
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .expect("host:port")
            .to_owned();
        let stream = TcpStream::connect(&host).await.expect("DevTools accepts");
        let (devtools, _) = tokio_tungstenite::client_async(endpoint.as_str(), stream)
            .await
            .expect("DevTools WebSocket");
        let mut page = Page {
            browser,
            devtools,
            session: String::new(),
            next_id: 0,
            profile,
        };
        let targets = page.call("Target.getTargets", json!({}), None).await;
        let target = targets["targetInfos"]
            .as_array()
            .and_then(|all| all.iter().find(|t| t["type"] == "page"))
            .and_then(|t| t["targetId"].as_str())
            .expect("a page target")
            .to_owned();
        let params = json!({ "targetId": target, "flatten": true });
        let attached = page.call("Target.attachToTarget", params, None).await;
        page.session = attached["sessionId"]
            .as_str()
            .expect("a session")
            .to_owned();
        page
    }

    /// Evaluates `expression` in the page until it gives a string for
    /// which `done` holds, for at most `WAIT`; returns that string.
    pub async fn wait_for(&mut self, expression: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let params = json!({ "expression": expression, "returnByValue": true });
            let session = Some(self.session.clone());
            let value = self.call("Runtime.evaluate", params, session).await;
            let text = value["result"]["value"].as_str().unwrap_or("").to_owned();
            if done(&text) {
                return text;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the page still says {text:?} after {WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// One DevTools call and its result, events in between dropped.
    async fn call(&mut self, method: &str, params: Value, session: Option<String>) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut request = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            request["sessionId"] = json!(session);
        }
        let text = request.to_string();
        within("a DevTools call", async {
            self.devtools
                .send(Message::text(text))
                .await
                .expect("DevTools takes the call");
            loop {
                let message = self.devtools.next().await.expect("DevTools answers");
                let Message::Text(reply) = message.expect("a DevTools message") else {
                    continue;
                };
                let reply: Value = serde_json::from_str(&reply).expect("DevTools speaks JSON");
                if reply["id"] == id {
                    assert!(reply["error"].is_null(), "{method}: {reply}");
                    return reply["result"].clone();
                }
            }
        })
        .await
    }
}

impl Drop for Page {
    /// The profile is removed once the browser and its helpers are gone:
    /// removed while they may still be dying, their last writes can leave
    /// a profile behind (21 were in /tmp after a few days' runs). This
    /// blocks the test's thread for as long, about 3 s at most: tests only.
    fn drop(&mut self) {
        if let Some(pid) = self.browser.id().and_then(|pid| i32::try_from(pid).ok()) {
            // SAFETY: kill only sends a signal, to the group we started.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
        }
        let _ = self.browser.start_kill();
        for _ in 0..200 {
            if !matches!(self.browser.try_wait(), Ok(None)) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        for _ in 0..20 {
            let _ = std::fs::remove_dir_all(&self.profile);
            if !self.profile.exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}
