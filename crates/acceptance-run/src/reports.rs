//! Reading what a cucumber runner wrote: cucumber JSON (godog `--format cucumber`, Ruby
//! cucumber `--format json`) and JUnit XML. The JSON has every step's status and message and
//! is preferred; JUnit is read when it is all there is. Runners disagree on undefined steps
//! (Ruby cucumber: `skipped` in JUnit; godog: a failure), so both conventions are accepted:
//! what the JSON calls undefined or pending counts as a failure unless `strict: false`.

use anyhow::Context as _;
use quick_xml::events::Event;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub passed: u64,
    pub failed: u64,
    pub skipped: u64,
    pub undefined: u64,
    pub pending: u64,
}

impl Counts {
    fn add(&mut self, status: &str) {
        match status {
            "passed" => self.passed += 1,
            "failed" => self.failed += 1,
            "undefined" => self.undefined += 1,
            "pending" => self.pending += 1,
            _ => self.skipped += 1,
        }
    }

    pub fn total(&self) -> u64 {
        self.passed + self.failed + self.skipped + self.undefined + self.pending
    }
}

/// A scenario that did not pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub feature: String,
    pub scenario: String,
    /// The failing (or undefined / pending) step.
    pub step: String,
    pub status: String,
    pub message: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub scenarios: Counts,
    pub steps: Counts,
    pub duration_ms: u64,
    pub failures: Vec<Failure>,
    /// Where the numbers come from: `cucumber.json` or `junit.xml`.
    pub source: String,
}

impl Summary {
    /// Whether the suite passed: at least one scenario ran and passed, none failed; when
    /// `strict` (the default) a scenario that did not run all its steps (undefined, pending or
    /// skipped steps, a `--dry-run`) fails the run too. A scenario passes only when it has at
    /// least one step and every step passed.
    pub fn passed(&self, strict: bool) -> bool {
        self.scenarios.failed == 0
            && self.scenarios.passed > 0
            && (!strict
                || (self.scenarios.undefined == 0
                    && self.scenarios.pending == 0
                    && self.scenarios.skipped == 0))
    }
}

/// Parses cucumber JSON.
pub fn from_cucumber_json(text: &str) -> anyhow::Result<Summary> {
    let features: serde_json::Value =
        serde_json::from_str(text).context("cucumber.json is not JSON")?;
    let features = features
        .as_array()
        .context("cucumber.json is not a list of features")?;
    let mut s = Summary {
        source: "cucumber.json".into(),
        ..Summary::default()
    };
    let mut duration_ns = 0u64;
    for feature in features {
        let feature_name = feature["name"].as_str().unwrap_or("").to_owned();
        for scenario in feature["elements"].as_array().into_iter().flatten() {
            if scenario["type"].as_str() == Some("background") {
                continue;
            }
            let mut worst: Option<(&str, String, String)> = None;
            for step in scenario["steps"].as_array().into_iter().flatten() {
                let status = step["result"]["status"].as_str().unwrap_or("skipped");
                s.steps.add(status);
                duration_ns += step["result"]["duration"].as_u64().unwrap_or(0);
                // A skipped step means the scenario did not run whole; only all-passed passes.
                let rank = |st: &str| match st {
                    "failed" => 4,
                    "undefined" => 3,
                    "pending" => 2,
                    "passed" => 0,
                    _ => 1,
                };
                if rank(status) > worst.as_ref().map_or(0, |w| rank(w.0)) {
                    let text = format!(
                        "{}{}",
                        step["keyword"].as_str().unwrap_or(""),
                        step["name"].as_str().unwrap_or("")
                    )
                    .trim()
                    .to_owned();
                    let message =
                        first_message(step["result"]["error_message"].as_str().unwrap_or(""));
                    worst = Some((status, text, message));
                }
            }
            let steps = scenario["steps"].as_array().map_or(0, Vec::len);
            if steps == 0 {
                worst = Some((
                    "skipped",
                    String::new(),
                    "the scenario has no steps".to_owned(),
                ));
            }
            let status = worst.as_ref().map_or("passed", |w| w.0);
            s.scenarios.add(status);
            if let Some((status, step, message)) = worst {
                s.failures.push(Failure {
                    feature: feature_name.clone(),
                    scenario: scenario["name"].as_str().unwrap_or("").to_owned(),
                    step,
                    status: status.to_owned(),
                    message: if !message.is_empty() {
                        message
                    } else if status == "skipped" {
                        "its steps did not run (skipped)".to_owned()
                    } else {
                        format!("step is {status}")
                    },
                });
            }
        }
    }
    s.duration_ms = duration_ns / 1_000_000;
    Ok(s)
}

/// The useful line of a runner's error message: cucumber-rs writes `Matched: <location>` then
/// `Step panicked. Captured output: <message>`; Ruby cucumber and godog put the message first.
fn first_message(message: &str) -> String {
    for line in message.lines() {
        if let Some(i) = line.find("Captured output: ") {
            return line[i + "Captured output: ".len()..].trim().to_owned();
        }
    }
    message
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("Matched:") && !l.starts_with("Step failed"))
        .unwrap_or("")
        .to_owned()
}

/// Parses JUnit XML (one `testsuite`, or `testsuites` of them). Steps are not in JUnit.
pub fn from_junit(text: &str) -> anyhow::Result<Summary> {
    let mut reader = quick_xml::Reader::from_str(text);
    let mut s = Summary {
        source: "junit.xml".into(),
        ..Summary::default()
    };
    let mut suite = String::new();
    let mut case: Option<(String, String)> = None;
    let mut outcome: Option<(String, String)> = None;
    let mut in_failure = false;
    let mut failure_text = String::new();
    let mut seconds = 0f64;
    loop {
        match reader
            .read_event()
            .context("junit.xml is not well-formed XML")?
        {
            Event::Eof => break,
            Event::Start(e) | Event::Empty(e) if e.name().as_ref() == b"testsuite" => {
                let attrs: BTreeMap<String, String> = e
                    .attributes()
                    .flatten()
                    .map(|a| {
                        (
                            String::from_utf8_lossy(a.key.as_ref()).into_owned(),
                            a.unescape_value()
                                .map(|v| v.into_owned())
                                .unwrap_or_default(),
                        )
                    })
                    .collect();
                suite = attrs.get("name").cloned().unwrap_or_default();
                seconds += attrs
                    .get("time")
                    .and_then(|t| t.parse::<f64>().ok())
                    .unwrap_or(0.0);
            }
            Event::Start(e) if e.name().as_ref() == b"testcase" => {
                let name = e
                    .attributes()
                    .flatten()
                    .find(|a| a.key.as_ref() == b"name")
                    .and_then(|a| a.unescape_value().ok().map(|v| v.into_owned()))
                    .unwrap_or_default();
                case = Some((suite.clone(), name));
                outcome = None;
            }
            Event::Empty(e) if e.name().as_ref() == b"testcase" => {
                let name = e
                    .attributes()
                    .flatten()
                    .find(|a| a.key.as_ref() == b"name")
                    .and_then(|a| a.unescape_value().ok().map(|v| v.into_owned()))
                    .unwrap_or_default();
                s.scenarios.add("passed");
                let _ = name;
            }
            Event::Start(e) | Event::Empty(e)
                if matches!(e.name().as_ref(), b"failure" | b"error" | b"skipped") =>
            {
                let kind = match e.name().as_ref() {
                    b"skipped" => "skipped",
                    _ => "failed",
                };
                let message = e
                    .attributes()
                    .flatten()
                    .find(|a| a.key.as_ref() == b"message")
                    .and_then(|a| a.unescape_value().ok().map(|v| v.into_owned()))
                    .unwrap_or_default();
                outcome = Some((kind.to_owned(), message));
                in_failure = kind == "failed";
                failure_text.clear();
            }
            Event::CData(t) if in_failure => {
                failure_text.push_str(&String::from_utf8_lossy(&t.into_inner()))
            }
            Event::Text(t) if in_failure => {
                failure_text.push_str(&t.decode().map(|c| c.into_owned()).unwrap_or_default())
            }
            Event::End(e) if matches!(e.name().as_ref(), b"failure" | b"error") => {
                in_failure = false
            }
            Event::End(e) if e.name().as_ref() == b"testcase" => {
                if let Some((feature, scenario)) = case.take() {
                    let (status, message) =
                        outcome.take().unwrap_or(("passed".into(), String::new()));
                    s.scenarios.add(&status);
                    if status == "skipped" {
                        s.failures.push(Failure {
                            feature: feature.clone(),
                            scenario: scenario.clone(),
                            step: String::new(),
                            status: status.clone(),
                            message: if message.is_empty() {
                                "skipped".to_owned()
                            } else {
                                message.clone()
                            },
                        });
                    }
                    if status == "failed" {
                        // Ruby cucumber puts the error after "Message:"; godog in the message attribute.
                        let detail = failure_text
                            .split("Message:")
                            .nth(1)
                            .map(str::trim)
                            .and_then(|t| t.lines().find(|l| !l.trim().is_empty()))
                            .unwrap_or("")
                            .trim()
                            .to_owned();
                        let step = failure_text
                            .lines()
                            .map(str::trim)
                            .find(|l| {
                                ["Given ", "When ", "Then ", "And ", "But "]
                                    .iter()
                                    .any(|k| l.starts_with(k))
                            })
                            .unwrap_or("")
                            .to_owned();
                        s.failures.push(Failure {
                            feature,
                            scenario,
                            step,
                            status,
                            message: if detail.is_empty() { message } else { detail },
                        });
                    }
                }
            }
            _ => {}
        }
    }
    s.duration_ms = (seconds * 1000.0) as u64;
    Ok(s)
}

/// `summary.md`: what a person reads first.
pub fn markdown(s: &Summary, strict: bool, title: &str) -> String {
    let verdict = if s.passed(strict) { "PASSED" } else { "FAILED" };
    let mut md = format!("# {title}: {verdict}\n\n");
    md.push_str(&format!(
        "| | passed | failed | skipped | undefined | pending |\n|---|---|---|---|---|---|\n| scenarios | {} | {} | {} | {} | {} |\n",
        s.scenarios.passed, s.scenarios.failed, s.scenarios.skipped, s.scenarios.undefined, s.scenarios.pending
    ));
    if s.steps.total() > 0 {
        md.push_str(&format!(
            "| steps | {} | {} | {} | {} | {} |\n",
            s.steps.passed, s.steps.failed, s.steps.skipped, s.steps.undefined, s.steps.pending
        ));
    }
    md.push_str(&format!(
        "\nDuration: {} ms (from {}).\n",
        s.duration_ms, s.source
    ));
    if !s.failures.is_empty() {
        md.push_str("\n## Not passing\n\n");
        for f in &s.failures {
            md.push_str(&format!(
                "- **{}** / {}: `{}` {}: {}\n",
                f.feature, f.scenario, f.step, f.status, f.message
            ));
        }
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: &str = include_str!("../fixtures/ruby-cucumber-2.4/cucumber.json");
    const JUNIT: &str = include_str!("../fixtures/ruby-cucumber-2.4/junit.xml");

    #[test]
    fn ruby_cucumber_json_is_counted_per_scenario_and_step() {
        let s = from_cucumber_json(JSON).unwrap();
        assert_eq!(
            s.scenarios,
            Counts {
                passed: 1,
                failed: 1,
                skipped: 0,
                undefined: 1,
                pending: 0
            }
        );
        assert_eq!(s.steps.failed, 1);
        assert_eq!(s.steps.undefined, 1);
        assert_eq!(s.failures.len(), 2);
        assert_eq!(s.failures[0].scenario, "failing check");
        assert_eq!(s.failures[0].step, "Then the tag \"nope\" is listed");
        assert_eq!(s.failures[0].message, "tag nope not listed (RuntimeError)");
        assert_eq!(s.failures[1].status, "undefined");
        assert!(!s.passed(true));
        assert!(
            !s.passed(false),
            "a failed scenario fails even when not strict"
        );
    }

    #[test]
    fn junit_from_ruby_cucumber_reads_undefined_as_skipped() {
        let s = from_junit(JUNIT).unwrap();
        assert_eq!(
            s.scenarios,
            Counts {
                passed: 1,
                failed: 1,
                skipped: 1,
                undefined: 0,
                pending: 0
            }
        );
        assert_eq!(s.failures[0].scenario, "failing check");
        assert_eq!(s.failures[0].message, "tag nope not listed (RuntimeError)");
        assert_eq!(s.failures[0].step, "Then the tag \"nope\" is listed");
        assert_eq!(s.duration_ms, 9);
    }

    #[test]
    fn godog_style_junit_failures_carry_their_message_attribute() {
        let xml = r#"<?xml version="1.0"?><testsuites name="godog" tests="2" failures="1" time="0.5"><testsuite name="Gateway" tests="2" failures="1" time="0.5"><testcase name="login" status="passed" time="0.1"></testcase><testcase name="logout" status="failed" time="0.4"><failure message="Step I log out: expected 200, got 500"></failure></testcase></testsuite></testsuites>"#;
        let s = from_junit(xml).unwrap();
        assert_eq!(s.scenarios.passed, 1);
        assert_eq!(s.scenarios.failed, 1);
        assert_eq!(
            s.failures[0].message,
            "Step I log out: expected 200, got 500"
        );
        assert_eq!(s.failures[0].feature, "Gateway");
    }

    fn scenario(name: &str, statuses: &[&str]) -> String {
        let steps: Vec<String> = statuses
            .iter()
            .map(|s| {
                format!(r#"{{"keyword": "Given ", "name": "x", "result": {{"status": "{s}"}}}}"#)
            })
            .collect();
        format!(
            r#"{{"name": "{name}", "type": "scenario", "steps": [{}]}}"#,
            steps.join(",")
        )
    }

    fn run(scenarios: &[String]) -> Summary {
        from_cucumber_json(&format!(
            r#"[{{"name": "F", "elements": [{}]}}]"#,
            scenarios.join(",")
        ))
        .unwrap()
    }

    #[test]
    fn strictness_decides_undefined_and_pending() {
        let s = run(&[scenario("ok", &["passed"]), scenario("S", &["pending"])]);
        assert!(!s.passed(true));
        assert!(s.passed(false));
        assert!(markdown(&s, true, "Acceptance").starts_with("# Acceptance: FAILED"));
    }

    /// Before: a scenario whose steps were all skipped counted as passed, so a `--dry-run`
    /// (or a suite whose every step was skipped) reported `result: passed`.
    #[test]
    fn a_dry_run_or_all_skipped_steps_never_pass() {
        let dry = run(&[
            scenario("a", &["skipped", "skipped"]),
            scenario("b", &["skipped"]),
        ]);
        assert_eq!(dry.scenarios.skipped, 2);
        assert_eq!(dry.scenarios.passed, 0);
        assert!(!dry.passed(true));
        assert!(!dry.passed(false), "nothing ran, even when not strict");
        assert_eq!(dry.failures.len(), 2, "each scenario is named");
        assert_eq!(dry.failures[0].message, "its steps did not run (skipped)");

        let partly = run(&[
            scenario("a", &["passed", "skipped"]),
            scenario("b", &["passed"]),
        ]);
        assert_eq!(partly.scenarios.passed, 1);
        assert_eq!(partly.scenarios.skipped, 1);
        assert!(!partly.passed(true));
        assert!(partly.passed(false));
    }

    #[test]
    fn a_scenario_without_steps_and_a_run_without_scenarios_do_not_pass() {
        let empty = run(&[scenario("nothing", &[])]);
        assert_eq!(empty.scenarios.skipped, 1);
        assert_eq!(empty.failures[0].message, "the scenario has no steps");
        assert!(!empty.passed(false));
        let none = from_cucumber_json("[]").unwrap();
        assert_eq!(none.scenarios.total(), 0);
        assert!(!none.passed(false));
    }
}
