//! Build metadata: the `BUILD_*` environment Concourse gives `in` and `out` (not `check`).
//!
//! Names from the Concourse docs ("Implementing a resource type", metadata): `BUILD_ID`,
//! `BUILD_NAME`, `BUILD_JOB_NAME`, `BUILD_PIPELINE_NAME`, `BUILD_TEAM_NAME`, `ATC_EXTERNAL_URL`;
//! v7 added `BUILD_PIPELINE_INSTANCE_VARS` and the opt-in `BUILD_CREATED_BY`; v8 added
//! `BUILD_URL` and `BUILD_URL_SHORT`. The build URL is taken from `BUILD_URL` when Concourse
//! gives it and rebuilt from the parts on older versions.

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use serde_json::Value;

/// Everything Concourse tells a step about the build it runs in. All optional: `check` gets
/// none of it, one-off builds (`fly execute`) have no job or pipeline, and people running a
/// binary by hand have nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildMetadata {
    pub id: Option<String>,
    pub name: Option<String>,
    pub job_name: Option<String>,
    pub pipeline_name: Option<String>,
    pub pipeline_instance_vars: Option<String>,
    pub team_name: Option<String>,
    pub created_by: Option<String>,
    pub atc_external_url: Option<String>,
    pub url: Option<String>,
    pub url_short: Option<String>,
}

/// Characters escaped in one URL path segment or query value.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'&')
    .add(b'=')
    .add(b'+');

impl BuildMetadata {
    /// Reads the variables through `lookup` (the process environment in production, a map in
    /// tests). Empty values count as absent.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let get = |k: &str| lookup(k).filter(|v| !v.is_empty());
        Self {
            id: get("BUILD_ID"),
            name: get("BUILD_NAME"),
            job_name: get("BUILD_JOB_NAME"),
            pipeline_name: get("BUILD_PIPELINE_NAME"),
            pipeline_instance_vars: get("BUILD_PIPELINE_INSTANCE_VARS"),
            team_name: get("BUILD_TEAM_NAME"),
            created_by: get("BUILD_CREATED_BY"),
            atc_external_url: get("ATC_EXTERNAL_URL"),
            url: get("BUILD_URL"),
            url_short: get("BUILD_URL_SHORT"),
        }
    }

    /// A one-off build (`fly execute`): no job and no pipeline.
    pub fn is_one_off(&self) -> bool {
        self.job_name.is_none() && self.pipeline_name.is_none()
    }

    /// Link to this build in the web UI: `BUILD_URL` on Concourse 8+, else rebuilt from the
    /// parts (job builds, instanced pipelines' `vars.k=<json>` query, one-off builds). `None`
    /// when there is no `ATC_EXTERNAL_URL` to build on.
    pub fn build_url(&self) -> Option<String> {
        if let Some(url) = &self.url {
            return Some(url.clone());
        }
        let base = self.atc_external_url.as_deref()?.trim_end_matches('/');
        let enc = |s: &str| utf8_percent_encode(s, SEGMENT).to_string();
        if self.is_one_off() {
            return Some(format!("{base}/builds/{}", enc(self.id.as_deref()?)));
        }
        let mut url = format!(
            "{base}/teams/{}/pipelines/{}/jobs/{}/builds/{}",
            enc(self.team_name.as_deref()?),
            enc(self.pipeline_name.as_deref()?),
            enc(self.job_name.as_deref()?),
            enc(self.name.as_deref()?),
        );
        if let Some(vars) = self
            .pipeline_instance_vars
            .as_deref()
            .and_then(|v| serde_json::from_str::<Value>(v).ok())
        {
            let mut flat = Vec::new();
            flatten("vars", &vars, &mut flat);
            for (i, (k, v)) in flat.iter().enumerate() {
                url.push(if i == 0 { '?' } else { '&' });
                url.push_str(&format!("{k}={}", enc(v)));
            }
        }
        Some(url)
    }

    /// A short human label: `pipeline/job #name`, or `build ID` for one-off builds.
    pub fn label(&self) -> String {
        match (&self.pipeline_name, &self.job_name, &self.name, &self.id) {
            (Some(p), Some(j), Some(n), _) => format!("{p}/{j} #{n}"),
            (_, _, _, Some(id)) => format!("build {id}"),
            _ => "a build outside Concourse".to_owned(),
        }
    }
}

/// Instance vars `{"a": {"b": 1}}` become `vars.a.b=1` (values as JSON), as the web UI expects.
fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                flatten(&format!("{prefix}.{k}"), v, out);
            }
        }
        other => out.push((prefix.to_owned(), other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn meta(vars: &[(&str, &str)]) -> BuildMetadata {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        BuildMetadata::from_lookup(|k| map.get(k).cloned())
    }

    const JOB_BUILD: &[(&str, &str)] = &[
        ("BUILD_ID", "1234"),
        ("BUILD_NAME", "7"),
        ("BUILD_JOB_NAME", "deploy to prod"),
        ("BUILD_PIPELINE_NAME", "micro"),
        ("BUILD_TEAM_NAME", "main"),
        ("ATC_EXTERNAL_URL", "https://ci.example.com/"),
    ];

    #[test]
    fn build_url_on_concourse_8_is_taken_as_given() {
        let mut vars = JOB_BUILD.to_vec();
        vars.push(("BUILD_URL", "https://ci.example.com/builds/1234"));
        assert_eq!(
            meta(&vars).build_url().as_deref(),
            Some("https://ci.example.com/builds/1234")
        );
    }

    #[test]
    fn build_url_on_older_concourse_is_rebuilt_from_the_parts() {
        assert_eq!(
            meta(JOB_BUILD).build_url().as_deref(),
            Some(
                "https://ci.example.com/teams/main/pipelines/micro/jobs/deploy%20to%20prod/builds/7"
            )
        );
        assert_eq!(meta(JOB_BUILD).label(), "micro/deploy to prod #7");
    }

    #[test]
    fn instanced_pipelines_carry_their_vars_in_the_query() {
        let mut vars = JOB_BUILD.to_vec();
        vars.push((
            "BUILD_PIPELINE_INSTANCE_VARS",
            r#"{"branch":"feature/x","n":{"a":1}}"#,
        ));
        assert_eq!(
            meta(&vars).build_url().as_deref(),
            Some(
                "https://ci.example.com/teams/main/pipelines/micro/jobs/deploy%20to%20prod/builds/7?vars.branch=%22feature%2Fx%22&vars.n.a=1"
            )
        );
    }

    #[test]
    fn one_off_builds_link_by_id_and_no_atc_means_no_link() {
        let m = meta(&[
            ("BUILD_ID", "99"),
            ("ATC_EXTERNAL_URL", "http://ci"),
            ("BUILD_TEAM_NAME", "main"),
        ]);
        assert!(m.is_one_off());
        assert_eq!(m.build_url().as_deref(), Some("http://ci/builds/99"));
        assert_eq!(m.label(), "build 99");
        assert_eq!(meta(&[]).build_url(), None);
        assert_eq!(meta(&[("BUILD_ID", "")]).id, None);
    }
}
