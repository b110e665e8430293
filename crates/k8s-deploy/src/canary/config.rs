//! `params.canary` read and checked: the steps, the checks, the interval and the budget.

use crate::source::CanaryParams;
use protocol::FieldError;
use protocol::duration::parse as parse_duration;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Weight(u32),
    Pause(Duration),
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Weight(w) => write!(f, "{w}%"),
            Step::Pause(d) => write!(f, "pause {}", protocol::duration::format(*d)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub deployment: Option<String>,
    pub path: String,
    pub port: Option<u16>,
    pub status: u16,
    pub contains: Option<String>,
}

/// `params.canary`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Canary {
    pub steps: Vec<Step>,
    pub checks: Vec<Check>,
    pub interval: Duration,
    pub budget: u32,
    /// Only these Deployments get a canary (empty: every one that already runs).
    pub deployments: Vec<String>,
}

impl Canary {
    pub fn read(p: &CanaryParams) -> Result<Self, FieldError> {
        if p.steps.is_empty() {
            return Err(FieldError::new(
                "params.canary.steps",
                "must list at least one step, e.g. [{weight: 25}, {pause: 2m}, {weight: 50}]",
            ));
        }
        let mut steps = Vec::new();
        for (i, s) in p.steps.iter().enumerate() {
            let field = format!("params.canary.steps[{i}]");
            if steps.last() == Some(&Step::Weight(100)) {
                return Err(FieldError::new(
                    field,
                    "comes after weight: 100, where the release is complete; remove it",
                ));
            }
            steps.push(match (s.weight, &s.pause) {
                (Some(w), None) if (1..=100).contains(&w) => Step::Weight(w),
                (Some(_), None) => {
                    return Err(FieldError::new(
                        format!("{field}.weight"),
                        "must be a percentage from 1 to 100",
                    ));
                }
                (None, Some(d)) => Step::Pause(parse_duration(d).ok_or_else(|| {
                    FieldError::new(
                        format!("{field}.pause"),
                        "must be a duration like \"30s\", \"2m\"",
                    )
                })?),
                _ => {
                    return Err(FieldError::new(
                        field,
                        "set exactly one of weight (a percentage) or pause (a duration)",
                    ));
                }
            });
        }
        if !steps.iter().any(|s| matches!(s, Step::Weight(_))) {
            return Err(FieldError::new(
                "params.canary.steps",
                "needs a weight step, e.g. {weight: 25}: pauses alone start no canary",
            ));
        }
        let mut checks = Vec::new();
        for (i, c) in p.checks.iter().enumerate() {
            let field = format!("params.canary.checks[{i}]");
            let path_ok = c.path.starts_with('/')
                && !c
                    .path
                    .chars()
                    .any(|ch| ch.is_whitespace() || ch.is_control() || ch == '#');
            if !path_ok {
                return Err(FieldError::new(
                    format!("{field}.path"),
                    "must start with / and hold no spaces, control characters or #, e.g. /health",
                ));
            }
            let status = c.expect_status.unwrap_or(200);
            if !(100..=599).contains(&status) {
                return Err(FieldError::new(
                    format!("{field}.expect_status"),
                    "must be an HTTP status from 100 to 599",
                ));
            }
            if c.port == Some(0) {
                return Err(FieldError::new(
                    format!("{field}.port"),
                    "must be a port from 1 to 65535",
                ));
            }
            checks.push(Check {
                deployment: c.deployment.clone(),
                path: c.path.clone(),
                port: c.port,
                status,
                contains: c.contains.clone().filter(|t| !t.is_empty()),
            });
        }
        let interval = match &p.interval {
            None => Duration::from_secs(5),
            Some(t) => parse_duration(t)
                .filter(|d| *d >= Duration::from_millis(100))
                .ok_or_else(|| {
                    FieldError::new(
                        "params.canary.interval",
                        "must be a duration of at least 100ms, like \"5s\"",
                    )
                })?,
        };
        Ok(Self {
            steps,
            checks,
            interval,
            budget: p.failure_budget,
            deployments: p.deployments.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{CanaryStepParam, CheckParam};
    use serde_json::json;

    fn params(steps: serde_json::Value) -> CanaryParams {
        serde_json::from_value(json!({"steps": steps})).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn canary_params_are_read_with_one_line_per_mistake() {
        let ok = Canary::read(&params(
            json!([{"weight": 25}, {"pause": "1m"}, {"weight": 100}]),
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            ok.steps,
            vec![
                Step::Weight(25),
                Step::Pause(Duration::from_secs(60)),
                Step::Weight(100)
            ]
        );
        assert_eq!((ok.interval, ok.budget), (Duration::from_secs(5), 0));
        let err = |p: CanaryParams| {
            Canary::read(&p)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert_eq!(
            err(params(json!([]))),
            "params.canary.steps: must list at least one step, e.g. [{weight: 25}, {pause: 2m}, {weight: 50}]"
        );
        assert!(err(params(json!([{"weight": 0}]))).starts_with("params.canary.steps[0].weight: "));
        assert!(
            err(params(json!([{"weight": 101}]))).starts_with("params.canary.steps[0].weight: ")
        );
        assert!(
            err(params(json!([{"weight": 5, "pause": "1m"}])))
                .starts_with("params.canary.steps[0]: set exactly one")
        );
        assert!(err(params(json!([{}]))).starts_with("params.canary.steps[0]: set exactly one"));
        assert!(
            err(params(json!([{"pause": "1 hour"}]))).starts_with("params.canary.steps[0].pause: ")
        );
        assert!(err(params(json!([{"pause": "1m"}]))).contains("needs a weight step"));
        assert!(
            err(params(json!([{"weight": 100}, {"pause": "1m"}])))
                .starts_with("params.canary.steps[1]: comes after weight: 100")
        );
        let with = |check: serde_json::Value| CanaryParams {
            steps: vec![CanaryStepParam {
                weight: Some(10),
                pause: None,
            }],
            checks: vec![
                serde_json::from_value::<CheckParam>(check).unwrap_or_else(|e| panic!("{e}")),
            ],
            interval: None,
            failure_budget: 0,
            deployments: Vec::new(),
        };
        assert!(err(with(json!({"path": "health"}))).starts_with("params.canary.checks[0].path: "));
        assert!(err(with(json!({"path": "/a b"}))).starts_with("params.canary.checks[0].path: "));
        assert!(
            err(with(json!({"path": "/", "expect_status": 42})))
                .starts_with("params.canary.checks[0].expect_status: ")
        );
        assert!(
            err(with(json!({"path": "/", "port": 0})))
                .starts_with("params.canary.checks[0].port: ")
        );
        let mut fast = with(json!({"path": "/"}));
        fast.interval = Some("10ms".into());
        assert!(err(fast).starts_with("params.canary.interval: "));
    }
}
