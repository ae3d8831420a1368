//! Strategies and CodeDeploy-named presets, and how each compiles to a plan of steps.
//!
//! A service names either a strategy (with its own parameters) or a preset. Both end up
//! here as a [`Plan`]: the engine only ever runs plans, so adding a strategy or a
//! preset never touches the engine.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Plan, Ramp, Step};
use crate::domain::{InvalidValue, Weight};

/// A service's deployment strategy as configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Strategy {
    /// Checks on the preview listener, optional approval, a switch from 0 to 100, a bake.
    BlueGreen,
    /// Explicit steps.
    Canary,
    /// `step` percent more every `interval`.
    Linear {
        /// The increment.
        step: Weight,
        /// The time between increments.
        interval: Duration,
    },
    /// Everything at once, then the bake.
    AllAtOnce,
    /// Ramp the named feature flag's rollout percentage with explicit steps.
    Flag {
        /// The flag's key.
        flag: String,
    },
}

/// What a strategy needs, besides itself, to become a plan.
///
/// These live outside [`Strategy`] because they are not part of what the strategy *is*
/// (which is kept for display) but of how one service uses it.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanInputs {
    /// The explicit steps of a canary or flag strategy. Other strategies ignore them.
    pub steps: Vec<Step>,
    /// Whether a blue/green deployment waits for an approval before the switch.
    /// Other strategies ignore it.
    pub approve_before_switch: bool,
    /// How long to stay at 100% with every gate armed before declaring success.
    pub bake: Duration,
}

/// Compiles a strategy into the plan the engine runs.
///
/// This does not check the inputs: a canary with no steps compiles to an empty plan.
/// `parse_config` checks every rule (rising weights, a final 100, and so on) before it
/// calls this, which is why the engine can trust any plan held in a `ServiceSpec`.
pub fn compile(strategy: &Strategy, inputs: PlanInputs) -> Plan {
    let PlanInputs {
        steps,
        approve_before_switch,
        bake,
    } = inputs;
    let (ramp, steps) = match strategy {
        Strategy::BlueGreen => {
            let mut plan = Vec::with_capacity(2);
            if approve_before_switch {
                plan.push(Step::Approval);
            }
            plan.push(Step::SetWeight(Weight::FULL));
            (Ramp::Traffic, plan)
        }
        Strategy::Canary => (Ramp::Traffic, steps),
        Strategy::Linear { step, interval } => (Ramp::Traffic, linear_steps(*step, *interval)),
        Strategy::AllAtOnce => (Ramp::Traffic, vec![Step::SetWeight(Weight::FULL)]),
        Strategy::Flag { flag } => (Ramp::Flag(flag.clone()), steps),
    };
    Plan { ramp, steps, bake }
}

/// `step`, pause, `2 * step`, pause, ... up to the last multiple below 100, pause, then 100.
///
/// A zero step would never reach 100, so it is treated as a single jump to 100 rather
/// than looping for ever; `parse_config` refuses a zero step before it gets here.
fn linear_steps(step: Weight, interval: Duration) -> Vec<Step> {
    let increment = u32::from(step.get());
    let mut steps = Vec::new();
    if increment > 0 {
        let mut percent = increment;
        while percent < 100 {
            // The loop condition keeps `percent` below 100, so the weight is always valid.
            if let Ok(weight) = Weight::new(percent) {
                steps.push(Step::SetWeight(weight));
                steps.push(Step::Pause(interval));
            }
            percent += increment;
        }
    }
    steps.push(Step::SetWeight(Weight::FULL));
    steps
}

/// One of CodeDeploy's predefined deployment configurations, by its familiar name.
///
/// A configuration file may name a preset bare (`Canary10Percent5Minutes`) or with
/// CodeDeploy's prefixes (`CodeDeployDefault.ECSCanary10Percent5Minutes`,
/// `CodeDeployDefault.LambdaCanary10Percent5Minutes`), so that teams moving from
/// CodeDeploy can keep the names they know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Preset {
    /// 10%, wait 5 minutes, then 100%.
    Canary10Percent5Minutes,
    /// 10%, wait 10 minutes, then 100%.
    Canary10Percent10Minutes,
    /// 10%, wait 15 minutes, then 100%.
    Canary10Percent15Minutes,
    /// 10%, wait 30 minutes, then 100%.
    Canary10Percent30Minutes,
    /// 10% more every minute.
    Linear10PercentEvery1Minute,
    /// 10% more every 2 minutes.
    Linear10PercentEvery2Minutes,
    /// 10% more every 3 minutes.
    Linear10PercentEvery3Minutes,
    /// 10% more every 10 minutes.
    Linear10PercentEvery10Minutes,
    /// 100% at once.
    AllAtOnce,
}

impl Preset {
    /// Every preset, in the order they are listed to users.
    pub const ALL: [Preset; 9] = [
        Preset::Canary10Percent5Minutes,
        Preset::Canary10Percent10Minutes,
        Preset::Canary10Percent15Minutes,
        Preset::Canary10Percent30Minutes,
        Preset::Linear10PercentEvery1Minute,
        Preset::Linear10PercentEvery2Minutes,
        Preset::Linear10PercentEvery3Minutes,
        Preset::Linear10PercentEvery10Minutes,
        Preset::AllAtOnce,
    ];

    /// The preset's bare name, as CodeDeploy spells it after its platform prefix.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Canary10Percent5Minutes => "Canary10Percent5Minutes",
            Preset::Canary10Percent10Minutes => "Canary10Percent10Minutes",
            Preset::Canary10Percent15Minutes => "Canary10Percent15Minutes",
            Preset::Canary10Percent30Minutes => "Canary10Percent30Minutes",
            Preset::Linear10PercentEvery1Minute => "Linear10PercentEvery1Minute",
            Preset::Linear10PercentEvery2Minutes => "Linear10PercentEvery2Minutes",
            Preset::Linear10PercentEvery3Minutes => "Linear10PercentEvery3Minutes",
            Preset::Linear10PercentEvery10Minutes => "Linear10PercentEvery10Minutes",
            Preset::AllAtOnce => "AllAtOnce",
        }
    }

    /// Finds a preset by its bare name or its `CodeDeployDefault.ECS` or
    /// `CodeDeployDefault.Lambda` name. An unknown name is refused with the list of
    /// known ones.
    ///
    /// # Errors
    ///
    /// An [`InvalidValue`] naming every known preset when `name` is none of them.
    pub fn from_name(name: &str) -> Result<Preset, InvalidValue> {
        let bare = ["CodeDeployDefault.ECS", "CodeDeployDefault.Lambda"]
            .iter()
            .find_map(|prefix| name.strip_prefix(prefix))
            .unwrap_or(name);
        // CodeDeploy's ECS configuration spells the one-minute linear preset
        // "Every1Minutes"; accept it so that names copied from ECS work unchanged.
        let bare = if bare == "Linear10PercentEvery1Minutes" {
            "Linear10PercentEvery1Minute"
        } else {
            bare
        };
        Preset::ALL
            .into_iter()
            .find(|preset| preset.name() == bare)
            .ok_or_else(|| {
                let known: Vec<&str> = Preset::ALL.iter().map(|p| p.name()).collect();
                InvalidValue(format!(
                    "unknown preset {name:?}: use one of {} (optionally prefixed with CodeDeployDefault.ECS or CodeDeployDefault.Lambda)",
                    known.join(", ")
                ))
            })
    }

    /// The strategy this preset stands for. Canary presets are canaries with fixed
    /// steps, which `plan` supplies.
    pub fn strategy(self) -> Strategy {
        match self.shape() {
            Shape::Canary { .. } => Strategy::Canary,
            Shape::Linear { interval_minutes } => Strategy::Linear {
                step: ten_percent(),
                interval: minutes(interval_minutes),
            },
            Shape::AllAtOnce => Strategy::AllAtOnce,
        }
    }

    /// The plan this preset compiles to, with the given bake window.
    pub fn plan(self, bake: Duration) -> Plan {
        let steps = match self.shape() {
            Shape::Canary { wait_minutes } => vec![
                Step::SetWeight(ten_percent()),
                Step::Pause(minutes(wait_minutes)),
                Step::SetWeight(Weight::FULL),
            ],
            Shape::Linear { .. } | Shape::AllAtOnce => Vec::new(),
        };
        compile(
            &self.strategy(),
            PlanInputs {
                steps,
                approve_before_switch: false,
                bake,
            },
        )
    }

    /// The numbers behind the name, so that `strategy` and `plan` cannot disagree.
    fn shape(self) -> Shape {
        match self {
            Preset::Canary10Percent5Minutes => Shape::Canary { wait_minutes: 5 },
            Preset::Canary10Percent10Minutes => Shape::Canary { wait_minutes: 10 },
            Preset::Canary10Percent15Minutes => Shape::Canary { wait_minutes: 15 },
            Preset::Canary10Percent30Minutes => Shape::Canary { wait_minutes: 30 },
            Preset::Linear10PercentEvery1Minute => Shape::Linear {
                interval_minutes: 1,
            },
            Preset::Linear10PercentEvery2Minutes => Shape::Linear {
                interval_minutes: 2,
            },
            Preset::Linear10PercentEvery3Minutes => Shape::Linear {
                interval_minutes: 3,
            },
            Preset::Linear10PercentEvery10Minutes => Shape::Linear {
                interval_minutes: 10,
            },
            Preset::AllAtOnce => Shape::AllAtOnce,
        }
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The parameters a preset's name encodes.
enum Shape {
    Canary { wait_minutes: u64 },
    Linear { interval_minutes: u64 },
    AllAtOnce,
}

/// Every preset moves traffic in steps of 10%.
fn ten_percent() -> Weight {
    Weight::new(10).unwrap_or(Weight::FULL)
}

fn minutes(count: u64) -> Duration {
    Duration::from_secs(count * 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(percent: u32) -> Step {
        Step::SetWeight(Weight::new(percent).unwrap())
    }

    fn pause_minutes(count: u64) -> Step {
        Step::Pause(Duration::from_secs(count * 60))
    }

    /// The linear ramp 10, 20, ... 90, each followed by a pause, then 100.
    fn linear_ten(interval_minutes: u64) -> Vec<Step> {
        let mut steps = Vec::new();
        for percent in (10..=90).step_by(10) {
            steps.push(set(percent));
            steps.push(pause_minutes(interval_minutes));
        }
        steps.push(set(100));
        steps
    }

    #[test]
    fn every_preset_compiles_to_its_steps() {
        let table: [(Preset, Vec<Step>); 9] = [
            (
                Preset::Canary10Percent5Minutes,
                vec![set(10), pause_minutes(5), set(100)],
            ),
            (
                Preset::Canary10Percent10Minutes,
                vec![set(10), pause_minutes(10), set(100)],
            ),
            (
                Preset::Canary10Percent15Minutes,
                vec![set(10), pause_minutes(15), set(100)],
            ),
            (
                Preset::Canary10Percent30Minutes,
                vec![set(10), pause_minutes(30), set(100)],
            ),
            (Preset::Linear10PercentEvery1Minute, linear_ten(1)),
            (Preset::Linear10PercentEvery2Minutes, linear_ten(2)),
            (Preset::Linear10PercentEvery3Minutes, linear_ten(3)),
            (Preset::Linear10PercentEvery10Minutes, linear_ten(10)),
            (Preset::AllAtOnce, vec![set(100)]),
        ];
        let bake = Duration::from_secs(300);
        for (preset, steps) in table {
            let plan = preset.plan(bake);
            assert_eq!(plan.steps, steps, "{preset}");
            assert_eq!(plan.ramp, Ramp::Traffic, "{preset}");
            assert_eq!(plan.bake, bake, "{preset}");
        }
    }

    #[test]
    fn linear_ten_has_nine_pauses() {
        let steps = Preset::Linear10PercentEvery1Minute
            .plan(Duration::ZERO)
            .steps;
        assert_eq!(steps.len(), 19);
        let pauses = steps.iter().filter(|s| matches!(s, Step::Pause(_))).count();
        assert_eq!(pauses, 9);
    }

    #[test]
    fn presets_map_to_their_strategies() {
        let table = [
            (Preset::Canary10Percent15Minutes, Strategy::Canary),
            (
                Preset::Linear10PercentEvery3Minutes,
                Strategy::Linear {
                    step: Weight::new(10).unwrap(),
                    interval: Duration::from_secs(180),
                },
            ),
            (Preset::AllAtOnce, Strategy::AllAtOnce),
        ];
        for (preset, strategy) in table {
            assert_eq!(preset.strategy(), strategy, "{preset}");
        }
    }

    #[test]
    fn preset_names_are_found_with_and_without_prefixes() {
        let table = [
            ("Canary10Percent5Minutes", Preset::Canary10Percent5Minutes),
            (
                "CodeDeployDefault.ECSCanary10Percent15Minutes",
                Preset::Canary10Percent15Minutes,
            ),
            (
                "CodeDeployDefault.LambdaLinear10PercentEvery1Minute",
                Preset::Linear10PercentEvery1Minute,
            ),
            (
                "CodeDeployDefault.ECSLinear10PercentEvery1Minutes",
                Preset::Linear10PercentEvery1Minute,
            ),
            (
                "CodeDeployDefault.LambdaLinear10PercentEvery10Minutes",
                Preset::Linear10PercentEvery10Minutes,
            ),
            ("CodeDeployDefault.ECSAllAtOnce", Preset::AllAtOnce),
            ("AllAtOnce", Preset::AllAtOnce),
        ];
        for (name, preset) in table {
            assert_eq!(Preset::from_name(name), Ok(preset), "{name}");
        }
        for preset in Preset::ALL {
            assert_eq!(Preset::from_name(preset.name()), Ok(preset));
        }
    }

    #[test]
    fn unknown_preset_lists_the_known_ones() {
        for name in [
            "Canary10Percent20Minutes",
            "CodeDeployDefault.OneAtATime",
            "canary10percent5minutes",
            "CodeDeployDefault.ECS",
            "",
        ] {
            let error = Preset::from_name(name).unwrap_err();
            for preset in Preset::ALL {
                assert!(error.0.contains(preset.name()), "{name}: {}", error.0);
            }
            assert!(error.0.contains(&format!("{name:?}")), "{}", error.0);
        }
    }

    #[test]
    fn strategies_compile_to_plans() {
        let bake = Duration::from_secs(60);
        let explicit = vec![set(5), Step::Smoke, Step::PauseUntilResumed, set(100)];
        let inputs = |approve_before_switch| PlanInputs {
            steps: explicit.clone(),
            approve_before_switch,
            bake,
        };
        let table = [
            (
                Strategy::BlueGreen,
                inputs(true),
                Ramp::Traffic,
                vec![Step::Approval, set(100)],
            ),
            (
                Strategy::BlueGreen,
                inputs(false),
                Ramp::Traffic,
                vec![set(100)],
            ),
            (
                Strategy::Canary,
                inputs(true),
                Ramp::Traffic,
                explicit.clone(),
            ),
            (
                Strategy::AllAtOnce,
                inputs(true),
                Ramp::Traffic,
                vec![set(100)],
            ),
            (
                Strategy::Flag {
                    flag: "new-checkout".into(),
                },
                inputs(false),
                Ramp::Flag("new-checkout".into()),
                explicit.clone(),
            ),
            (
                Strategy::Linear {
                    step: Weight::new(30).unwrap(),
                    interval: Duration::from_secs(120),
                },
                inputs(false),
                Ramp::Traffic,
                vec![
                    set(30),
                    pause_minutes(2),
                    set(60),
                    pause_minutes(2),
                    set(90),
                    pause_minutes(2),
                    set(100),
                ],
            ),
            (
                Strategy::Linear {
                    step: Weight::FULL,
                    interval: Duration::from_secs(120),
                },
                inputs(false),
                Ramp::Traffic,
                vec![set(100)],
            ),
            (
                Strategy::Linear {
                    step: Weight::new(25).unwrap(),
                    interval: Duration::from_secs(60),
                },
                inputs(false),
                Ramp::Traffic,
                vec![
                    set(25),
                    pause_minutes(1),
                    set(50),
                    pause_minutes(1),
                    set(75),
                    pause_minutes(1),
                    set(100),
                ],
            ),
        ];
        for (strategy, inputs, ramp, steps) in table {
            let plan = compile(&strategy, inputs);
            assert_eq!(plan.ramp, ramp, "{strategy:?}");
            assert_eq!(plan.steps, steps, "{strategy:?}");
            assert_eq!(plan.bake, bake, "{strategy:?}");
        }
    }

    #[test]
    fn a_zero_linear_step_still_ends_at_full() {
        let plan = compile(
            &Strategy::Linear {
                step: Weight::ZERO,
                interval: Duration::from_secs(60),
            },
            PlanInputs {
                steps: Vec::new(),
                approve_before_switch: false,
                bake: Duration::ZERO,
            },
        );
        assert_eq!(plan.steps, vec![set(100)]);
    }
}
