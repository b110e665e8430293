//! The rendered pipeline's `source` and put `params` parse with each resource's own types
//! (the same strict parsing Concourse's requests get), so a key the resource does not know or
//! a wrong shape fails here, not at the first build.

#![allow(clippy::unwrap_used)]

use pipeline::yaml::{self, Node};
use serde::de::DeserializeOwned;
use serde_json::Value as Json;
use std::path::PathBuf;

fn parse<T: DeserializeOwned>(value: &Json) -> Result<T, String> {
    serde_json::from_value(value.clone()).map_err(|e| e.to_string())
}

fn check(kind: &str, what: &str, source: &Json, params: Option<&Json>) -> Result<(), String> {
    let empty = Json::Object(Default::default());
    let params = params.unwrap_or(&empty);
    let r = match kind {
        "gcr-image" => parse::<gcr_image::source::Source>(source)
            .and(parse::<gcr_image::put::PutParams>(params).map(|_| ())),
        "k8s-deploy" => parse::<k8s_deploy::source::Source>(source)
            .and(parse::<k8s_deploy::source::PutParams>(params).map(|_| ())),
        "github-promote-pr" => parse::<github_promote_pr::source::Source>(source)
            .and(parse::<github_promote_pr::source::PutParams>(params).map(|_| ())),
        "acceptance-run" => parse::<acceptance_run::Source>(source)
            .and(parse::<acceptance_run::PutParams>(params).map(|_| ())),
        _ => Ok(()),
    };
    r.map_err(|e| format!("{what}: {e}"))
}

#[test]
fn every_source_and_put_of_our_types_parses_with_the_resource_itself() {
    let text = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../ci/pipeline.yml"),
    )
    .unwrap();
    let doc = yaml::parse(&text).unwrap();
    let resources: Vec<(String, String, Json)> = doc
        .get("resources")
        .unwrap()
        .items()
        .iter()
        .map(|r| {
            (
                r.get("name").unwrap().as_str().unwrap().to_owned(),
                r.get("type").unwrap().as_str().unwrap().to_owned(),
                r.get("source").map(Node::to_json).unwrap_or_default(),
            )
        })
        .collect();
    let mut problems = Vec::new();
    let mut checked = 0;
    for job in doc.get("jobs").unwrap().items() {
        let mut all = Vec::new();
        job.walk(&mut all);
        for step in all {
            let Some(name) = step.get("put").and_then(Node::as_str) else {
                continue;
            };
            let (_, kind, source) = resources.iter().find(|(n, _, _)| n == name).unwrap();
            let what = format!("ci/pipeline.yml:{}: put {name}", step.line);
            if let Err(e) = check(
                kind,
                &what,
                source,
                step.get("params").map(Node::to_json).as_ref(),
            ) {
                problems.push(e);
            }
            checked += 1;
        }
    }
    assert!(checked > 20, "only {checked} puts found");
    assert!(problems.is_empty(), "{problems:#?}");
}
