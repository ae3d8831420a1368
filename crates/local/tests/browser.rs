//! The dashboard in a real headless Chromium, driven over W3C WebDriver by
//! chromedriver: a local runtime with sample apps under load runs a canary that
//! pauses at 25%; the browser loads the dashboard, the weights it shows are checked
//! against the JSON API, a click on Roll back rolls the deployment back (checked
//! through the API and the proxy), and a screenshot of the page is saved under
//! `target/`.
//!
//! scripts/test installs Debian's `chromium` and `chromium-driver` when they are
//! missing and exports `RIPCORD_CHROMEDRIVER` and `RIPCORD_CHROMIUM`; without a
//! chromedriver this test fails saying so, it never skips.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ripcord_local::probe::{probe, send};
use ripcord_local::sample_app::SampleApp;
use ripcord_local::testing::{
    Load, SANITY, TOKEN, TempDir, control_url, deliver, deployment_id, get_json, healthy_apps,
    proxy_url, start_runtime, wait_for,
};
use serde_json::{Value, json};

/// WebDriver's key for an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

fn chromedriver_path() -> PathBuf {
    if let Some(path) = std::env::var_os("RIPCORD_CHROMEDRIVER") {
        return path.into();
    }
    find_on_path("chromedriver").unwrap_or_else(|| {
        panic!(
            "no chromedriver: run scripts/test, which installs Debian's chromium and \
             chromium-driver, or set RIPCORD_CHROMEDRIVER to a chromedriver binary"
        )
    })
}

fn chromium_path() -> PathBuf {
    std::env::var_os("RIPCORD_CHROMIUM")
        .map(PathBuf::from)
        .or_else(|| find_on_path("chromium"))
        .unwrap_or_else(|| {
            panic!(
                "no chromium: run scripts/test, which installs Debian's chromium, or set \
                 RIPCORD_CHROMIUM to a Chromium binary"
            )
        })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// chromedriver with one Chromium session. Dropping it ends the session (which closes
/// Chromium) and stops chromedriver, also when the test fails.
struct Browser {
    driver: Child,
    port: u16,
    session: String,
    profile: TempDir,
}

impl Browser {
    async fn start() -> Browser {
        let chromedriver = chromedriver_path();
        let chromium = chromium_path();
        let port = free_port();
        let mut driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {}: {e}", chromedriver.display()));
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + SANITY;
        while probe(&base, "GET", "/status", Duration::from_secs(2))
            .await
            .is_err()
        {
            if Instant::now() > deadline {
                let _ = driver.kill();
                let _ = driver.wait();
                panic!("chromedriver did not answer on {base}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = TempDir::new("browser-profile");
        let mut browser = Browser {
            driver,
            port,
            session: String::new(),
            profile,
        };
        let args = [
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--window-size=1200,1000".into(),
            format!("--user-data-dir={}", browser.profile.path().display()),
        ];
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium.display().to_string(), "args": args},
        }}});
        let session = browser.call("POST", "/session", Some(capabilities)).await;
        browser.session = session["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id: {session:#}"))
            .to_string();
        browser
    }

    /// One WebDriver command; panics on a WebDriver error.
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        match self.try_call(method, path, body).await {
            Ok(value) => value,
            Err(error) => panic!("WebDriver {method} {path}: {error:#}"),
        }
    }

    /// One WebDriver command: its `value`, or the error object WebDriver answered.
    async fn try_call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Value> {
        let body = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let answer = send(
            &format!("http://127.0.0.1:{}", self.port),
            method,
            path,
            &[("content-type", "application/json")],
            body,
            SANITY,
        )
        .await
        .unwrap_or_else(|e| panic!("chromedriver did not answer {method} {path}: {e}"));
        let mut reply: Value =
            serde_json::from_str(&answer.body).unwrap_or_else(|e| panic!("{e}: {}", answer.body));
        let value = reply["value"].take();
        if answer.status.is_success() {
            Ok(value)
        } else {
            Err(value)
        }
    }

    fn session_path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    async fn open(&self, url: &str) {
        self.call(
            "POST",
            &self.session_path("/url"),
            Some(json!({"url": url})),
        )
        .await;
    }

    /// Runs `script` in the page and returns what it returns. The page reloads itself
    /// every two seconds, so a script that met a reload is run again.
    async fn run(&self, script: &str) -> Value {
        let deadline = Instant::now() + SANITY;
        loop {
            let ran = self
                .try_call(
                    "POST",
                    &self.session_path("/execute/sync"),
                    Some(json!({"script": script, "args": []})),
                )
                .await;
            match ran {
                Ok(value) => return value,
                Err(error) if Instant::now() < deadline => {
                    eprintln!("running the script again after: {}", error["error"]);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(error) => panic!("the script failed: {error:#}"),
            }
        }
    }

    /// Finds the element for `css` and clicks it. The page reloads itself every two
    /// seconds, so a reference that went stale between the two is looked up again.
    async fn click(&self, css: &str) {
        let deadline = Instant::now() + SANITY;
        loop {
            let found = self
                .try_call(
                    "POST",
                    &self.session_path("/element"),
                    Some(json!({"using": "css selector", "value": css})),
                )
                .await;
            let clicked = match found {
                Ok(element) => {
                    let id = element[ELEMENT]
                        .as_str()
                        .unwrap_or_else(|| panic!("no element reference: {element:#}"))
                        .to_string();
                    self.try_call(
                        "POST",
                        &self.session_path(&format!("/element/{id}/click")),
                        Some(json!({})),
                    )
                    .await
                }
                Err(error) => Err(error),
            };
            match clicked {
                Ok(_) => return,
                Err(error) if Instant::now() < deadline => {
                    eprintln!("clicking {css} again after: {}", error["error"]);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(error) => panic!("could not click {css}: {error:#}"),
            }
        }
    }

    async fn screenshot(&self) -> Vec<u8> {
        let encoded = self
            .call("GET", &self.session_path("/screenshot"), None)
            .await;
        base64_decode(encoded.as_str().expect("a screenshot is a base64 string"))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Drop cannot await: end the session with a plain blocking request, which makes
        // chromedriver close Chromium, then stop chromedriver.
        if !self.session.is_empty()
            && let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port))
        {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let request = format!(
                "DELETE /session/{} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
                self.session, self.port
            );
            if stream.write_all(request.as_bytes()).is_ok() {
                let _ = stream.read_to_end(&mut Vec::new());
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        other => panic!("not base64: {:?}", other as char),
    };
    let digits: Vec<u8> = text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .map(value)
        .collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, d)| n | u32::from(*d) << (18 - 6 * i));
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

/// The width and height of a PNG, from its IHDR chunk; panics if it is not a PNG.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert!(
        png.len() > 33 && png.starts_with(b"\x89PNG\r\n\x1a\n") && &png[12..16] == b"IHDR",
        "not a PNG ({} bytes)",
        png.len()
    );
    let be = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    (be(16), be(20))
}

/// Saves a screenshot of the page as `target/{name}` and returns it, after checking
/// that it is a PNG of a sensible size.
async fn save_screenshot(browser: &Browser, name: &str) -> Vec<u8> {
    let png = browser.screenshot().await;
    let (width, height) = png_size(&png);
    assert!(width >= 800 && height >= 600, "{width}x{height}");
    assert!(png.len() > 10_000, "a blank page? {} bytes", png.len());
    let path = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the tests' temporary directory is in target/")
        .join(name);
    std::fs::write(&path, &png).unwrap();
    println!("screenshot: {} ({width}x{height})", path.display());
    png
}

fn config(blue: &SampleApp, green: &SampleApp) -> String {
    format!(
        r#"
[services.web]
strategy = "canary"
steps = [{{ set_weight = 25 }}, {{ pause = "until_resumed" }}, {{ set_weight = 100 }}]
bake = "1m"

[services.web.local]
listen = "127.0.0.1:0"
upstreams = ["{blue}", "{green}"]
health_check = {{ path = "/healthz", interval = "50ms", healthy_threshold = 2 }}

[[services.web.local.alarms]]
name = "web-5xx"
metric = "error_rate"
max = 5.0
window = "2s"
min_requests = 10

[services.web.alarms]
names = ["web-5xx"]

[[services.web.smoke]]
name = "health"
path = "/healthz"
body_contains = "ok"
"#,
        blue = blue.url(),
        green = green.url()
    )
}

/// What the page shows of the served weights: the bar's data and its visible labels.
const READ_WEIGHTS: &str = "const bar = document.getElementById('served');\
    return bar === null ? null : {blue: Number(bar.dataset.blue), green: Number(bar.dataset.green),\
    text: bar.innerText, live: document.getElementById('live') !== null,\
    state: (document.getElementById('state') || {}).innerText};";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_shows_the_served_weights_and_rolls_back_with_the_button() {
    let browser = Browser::start().await;
    let (blue, green) = healthy_apps().await;
    let store = TempDir::new("browser-store");
    let runtime = start_runtime(&config(&blue, &green), &store).await;
    let base = control_url(&runtime);
    // Sends requests through the proxy, as the demo's load does.
    let _load = Load::start(proxy_url(&runtime), Duration::from_millis(5));

    let accepted = deliver(&base, "v2", "browser-1").await;
    assert_eq!(accepted.status, 202, "{}", accepted.body);
    let id = deployment_id(&accepted);
    let deployment = format!("/api/deployments/{id}");
    wait_for(&base, &deployment, "paused", |d| d["state"] == "paused").await;

    // The page, opened as `ripcord up` prints it, shows what the API says is served.
    browser.open(&format!("{base}/?token={TOKEN}")).await;
    let status = get_json(&base, "/api/status").await;
    let served = &status["services"][0]["served_weights"];
    assert_eq!(
        (served["blue"].as_u64(), served["green"].as_u64()),
        (Some(75), Some(25))
    );
    let shown = browser.run(READ_WEIGHTS).await;
    assert_eq!(
        (&shown["blue"], &shown["green"], &shown["live"]),
        (&served["blue"], &served["green"], &json!(true)),
        "{shown:#}"
    );
    let text = shown["text"].as_str().unwrap();
    assert!(
        text.contains("blue 75%") && text.contains("green 25%"),
        "{text:?}"
    );
    assert_eq!(shown["state"], "paused until resumed", "{shown:#}");
    let title = browser
        .call("GET", &browser.session_path("/title"), None)
        .await;
    assert_eq!(title, "Ripcord local");

    let in_flight = save_screenshot(&browser, "dashboard.png").await;

    browser.click("#rollback").await;
    let done = wait_for(&base, &deployment, "finished", |d| {
        d["finished_at"] != Value::Null
    })
    .await;
    assert_eq!(done["state"], "rolled_back", "{done:#}");
    let trigger = &done["rollback"]["trigger"];
    assert_eq!(
        (&trigger["type"], &trigger["user"]),
        (&json!("cli"), &json!("dashboard")),
        "{trigger:#}"
    );
    let status = get_json(&base, "/api/status").await;
    let served = &status["services"][0]["served_weights"];
    assert_eq!(
        (served["blue"].as_u64(), served["green"].as_u64()),
        (Some(100), Some(0))
    );
    // The proxy sends every request to the stable release.
    let proxy = proxy_url(&runtime);
    for _ in 0..20 {
        let answer = probe(&proxy, "GET", "/", SANITY).await.unwrap();
        assert!(answer.body.contains("v1"), "{}", answer.body);
    }

    // After the form's redirect the page shows the rollback too.
    let deadline = Instant::now() + SANITY;
    let shown = loop {
        let shown = browser.run(READ_WEIGHTS).await;
        if shown["green"] == 0 && shown["live"] == false {
            break shown;
        }
        assert!(
            Instant::now() < deadline,
            "the page never showed the rollback: {shown:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(shown["blue"], 100);

    let rolled_back = save_screenshot(&browser, "dashboard-rolled-back.png").await;
    assert_ne!(
        in_flight, rolled_back,
        "the page looks the same after the rollback"
    );
    drop(browser);
    runtime.shutdown().await;
}
