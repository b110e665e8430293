//! The checker against Concourse's own verdicts: each file in `corpus/` starts with
//! `# concourse: rejects|accepts`, `# source:` (the Concourse file and rule it comes from) and,
//! for a rejected one, `# expect:` (text the finding must contain, so a pipeline rejected for
//! another reason does not count). The checker must agree on every file with Concourse's
//! verdict alone (project rules left out, as `pipeline check --concourse-only` does).

use pipeline::check::{Context, PROJECT, check};
use std::path::Path;

#[test]
fn the_checker_agrees_with_concourse_on_every_pipeline_of_the_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    files.sort();
    let (mut rejects, mut accepts, mut disagreements) = (0, 0, Vec::new());
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let header = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("# {key}: ")))
                .map(str::to_owned)
        };
        let verdict =
            header("concourse").unwrap_or_else(|| panic!("{}: no verdict", file.display()));
        assert!(
            header("source").is_some(),
            "{}: cite the rule",
            file.display()
        );
        let findings: Vec<String> = check(&text, &Context::default())
            .into_iter()
            .filter(|f| !f.message.starts_with(PROJECT))
            .map(|f| format!("{}: {}", f.line, f.message))
            .collect();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        match verdict.as_str() {
            "rejects" => {
                rejects += 1;
                let expect = header("expect").unwrap_or_else(|| panic!("{name}: no expect"));
                if !findings.iter().any(|f| f.contains(&expect)) {
                    disagreements.push(format!(
                        "{name}: Concourse rejects ({expect}), checker said {findings:?}"
                    ));
                }
            }
            "accepts" => {
                accepts += 1;
                if !findings.is_empty() {
                    disagreements.push(format!(
                        "{name}: Concourse accepts, checker said {findings:?}"
                    ));
                }
            }
            other => panic!("{name}: verdict {other}"),
        }
    }
    assert!(
        rejects >= 30 && accepts >= 30,
        "{rejects} rejected, {accepts} accepted"
    );
    assert!(
        disagreements.is_empty(),
        "{} of {} disagree:\n{}",
        disagreements.len(),
        files.len(),
        disagreements.join("\n")
    );
}
