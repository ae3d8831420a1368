//! `ripcord demo --fast`, run as a user runs it: the whole story on local mode, with
//! real sample apps, real load through the proxy and a real webhook, must end as told.

use std::process::Command;

#[test]
fn the_fast_demo_promotes_a_canary_then_an_alarm_rolls_the_bad_release_back() {
    let out = Command::new(env!("CARGO_BIN_EXE_ripcord"))
        .args(["demo", "--fast"])
        .output()
        .expect("the binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{stderr}",
        out.status
    );

    // The first deployment succeeded, the second was rolled back by the alarm.
    assert!(stdout.contains("web v2 "), "{stdout}");
    let first = stdout
        .lines()
        .find(|l| l.starts_with("web v2 "))
        .expect("the first history's header");
    assert!(first.ends_with("(succeeded)"), "{first}");
    let second = stdout
        .lines()
        .find(|l| l.starts_with("web v3 "))
        .expect("the second history's header");
    assert!(second.ends_with("(rolled_back)"), "{second}");
    assert!(
        stdout.contains("rolled back: alarm web-5xx is firing (blue error_rate"),
        "{stdout}"
    );

    // Live progress: a weights bar at each step of the canary (plain lines, since
    // stdout is not a terminal here).
    assert!(
        stdout.contains("blue  80% | green  20%  v2 progressing"),
        "{stdout}"
    );
    assert!(
        stdout.contains("blue   0% | green 100%  v2 succeeded"),
        "{stdout}"
    );

    // Both histories printed and verified, then the DORA figures.
    assert_eq!(stdout.matches("hash chain intact").count(), 2, "{stdout}");
    assert!(stdout.contains("rollback_started"), "{stdout}");
    assert!(
        stdout.contains("2 finished: 1 succeeded, 1 rolled back"),
        "{stdout}"
    );
    assert!(
        stdout.contains("change failure rate   50% (1 of 2)"),
        "{stdout}"
    );

    // And what to try next.
    assert!(
        stdout.contains("ripcord up -c examples/local.toml"),
        "{stdout}"
    );
}
