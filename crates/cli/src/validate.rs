//! `ripcord validate FILE`: parse and check a configuration, and show each problem at
//! its line and column with the offending line underneath.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use ripcord_core::config::{Config, ConfigProblem, ServiceSpec, Step, parse_config};
use ripcord_core::time::format_duration;
use serde_json::json;

/// Reads and parses a configuration file; problems become one error that shows each
/// of them at its line.
pub fn load(file: &Path) -> anyhow::Result<Config> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read {}: check the path", file.display()))?;
    let path = file.display().to_string();
    parse_config(&path, &text).map_err(|error| {
        let shown: Vec<String> = error
            .problems()
            .iter()
            .map(|p| render_problem(p, &text))
            .collect();
        anyhow::anyhow!(
            "{path} is not a valid configuration (run `ripcord validate {path}`):\n{}",
            shown.join("\n")
        )
    })
}

/// Runs the command.
pub fn run(file: &Path, as_json: bool) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read {}: check the path", file.display()))?;
    let path = file.display().to_string();
    match parse_config(&path, &text) {
        Ok(config) => {
            if as_json {
                let services: Vec<_> = config
                    .services
                    .values()
                    .map(|s| {
                        json!({
                            "name": s.name.as_str(),
                            "strategy": s.strategy,
                            "plan": plan_summary(s),
                            "bake_secs": s.plan.bake.as_secs(),
                        })
                    })
                    .collect();
                println!(
                    "{}",
                    json!({"valid": true, "file": path, "services": services})
                );
            } else {
                let count = config.services.len();
                println!(
                    "{path}: valid ({count} service{})",
                    if count == 1 { "" } else { "s" }
                );
                for service in config.services.values() {
                    println!(
                        "  {}: {}, bake {}",
                        service.name,
                        plan_summary(service),
                        format_duration(service.plan.bake)
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            if as_json {
                let problems: Vec<_> = error
                    .problems()
                    .iter()
                    .map(|p| json!({"path": p.path, "line": p.line, "column": p.column, "message": p.message}))
                    .collect();
                println!(
                    "{}",
                    json!({"valid": false, "file": path, "problems": problems})
                );
            } else {
                for problem in error.problems() {
                    eprintln!("{}", render_problem(problem, &text));
                }
                let n = error.problems().len();
                eprintln!(
                    "{path}: {n} problem{} found; nothing was applied",
                    if n == 1 { "" } else { "s" }
                );
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

/// A problem with the source line under it and a caret at its column.
pub fn render_problem(problem: &ConfigProblem, text: &str) -> String {
    let mut out = format!("error: {problem}");
    if let Some(line) = text.lines().nth(problem.line.saturating_sub(1)) {
        let number = problem.line.to_string();
        let pad = " ".repeat(number.len());
        let caret = " ".repeat(problem.column.saturating_sub(1));
        out.push_str(&format!("\n{pad} |\n{number} | {line}\n{pad} | {caret}^"));
    }
    out
}

/// The plan in one line, e.g. `10% → pause 1m → 100%`.
pub fn plan_summary(service: &ServiceSpec) -> String {
    let steps: Vec<String> = service
        .plan
        .steps
        .iter()
        .map(|step| match step {
            Step::SetWeight(w) => w.to_string(),
            Step::Pause(d) => format!("pause {}", format_duration(*d)),
            Step::PauseUntilResumed => "pause until resumed".to_string(),
            Step::Approval => "approval".to_string(),
            Step::Analysis(d) => format!("analysis {}", format_duration(*d)),
            Step::Smoke => "smoke".to_string(),
        })
        .collect();
    steps.join(" → ")
}
