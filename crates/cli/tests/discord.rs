//! `ripcord discord register` against a local stand-in for Discord's REST API that
//! records the request it receives.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Output};
use std::thread::JoinHandle;

/// One request the stand-in received: the request line, the headers, the body.
struct Received {
    line: String,
    headers: Vec<String>,
    body: serde_json::Value,
}

/// Serves one request, answering 200 with the body it was sent (as Discord does with
/// the registered commands).
fn discord_once() -> (String, JoinHandle<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let mut headers = Vec::new();
        let mut length = 0;
        loop {
            let mut header = String::new();
            reader.read_line(&mut header).unwrap();
            let header = header.trim_end().to_string();
            if header.is_empty() {
                break;
            }
            if let Some(value) = header.to_lowercase().strip_prefix("content-length:") {
                length = value.trim().parse().unwrap();
            }
            headers.push(header);
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let mut stream = stream;
        write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .unwrap();
        stream.write_all(&body).unwrap();
        Received {
            line: line.trim_end().to_string(),
            headers,
            body: serde_json::from_slice(&body).unwrap(),
        }
    });
    (base, handle)
}

fn register(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ripcord"));
    command.args(["discord", "register"]).args(args);
    for name in [
        "RIPCORD_DISCORD_APPLICATION_ID",
        "RIPCORD_DISCORD_APPLICATION_ID_PARAM",
        "RIPCORD_DISCORD_BOT_TOKEN",
        "RIPCORD_DISCORD_BOT_TOKEN_PARAM",
    ] {
        command.env_remove(name);
    }
    command.envs(env.iter().copied()).output().unwrap()
}

#[test]
fn register_puts_every_command_in_the_guild() {
    let (base, server) = discord_once();
    let out = register(
        &["--guild", "1300000000000000003", "--api-url", &base],
        &[
            ("RIPCORD_DISCORD_APPLICATION_ID", "1300000000000000002"),
            ("RIPCORD_DISCORD_BOT_TOKEN", "bot-token-for-the-test"),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.trim(),
        "Registered 9 slash commands in guild 1300000000000000003."
    );
    assert!(!stdout.contains("bot-token-for-the-test"));

    let received = server.join().unwrap();
    assert_eq!(
        received.line,
        "PUT /api/v10/applications/1300000000000000002/guilds/1300000000000000003/commands HTTP/1.1"
    );
    assert!(
        received
            .headers
            .iter()
            .any(|h| h == "authorization: Bot bot-token-for-the-test"),
        "{:?}",
        received.headers
    );
    let commands = received.body.as_array().unwrap();
    let names: Vec<&str> = commands
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "rollback", "promote", "pause", "resume", "abort", "flag", "status", "history", "dora"
        ]
    );
    // Steering needs "Manage Server" unless an admin opens it to other roles; reading does not.
    for command in commands {
        let steering = ["rollback", "promote", "pause", "resume", "abort", "flag"]
            .contains(&command["name"].as_str().unwrap());
        let expected = if steering {
            serde_json::json!("32")
        } else {
            serde_json::Value::Null
        };
        assert_eq!(command["default_member_permissions"], expected, "{command}");
    }
    let rollback = &commands[0]["options"];
    assert_eq!(rollback[0]["name"], "service");
    assert_eq!(rollback[0]["required"], true);
    assert_eq!(rollback[1]["name"], "reason");
}

#[test]
fn register_says_what_is_missing() {
    let out = register(&[], &[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "RIPCORD_DISCORD_APPLICATION_ID is not set: set RIPCORD_DISCORD_APPLICATION_ID_PARAM"
        ),
        "{stderr}"
    );

    let out = register(
        &["--guild", "my-server"],
        &[
            ("RIPCORD_DISCORD_APPLICATION_ID", "1"),
            ("RIPCORD_DISCORD_BOT_TOKEN", "t"),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--guild \"my-server\" is not a Discord id"),
        "{stderr}"
    );
}
