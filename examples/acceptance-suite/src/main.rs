//! The sample system's acceptance suite, run by cucumber-rs (a real cucumber runner): the
//! features in the directory given as first argument (or `$FEATURES`, or `features/`; the image
//! has `/suite/features` and the sample system's `/suite/sample-features`) against
//! `$API_GATEWAY_URL`, writing
//! `$REPORTS_DIR/cucumber.json` and `$REPORTS_DIR/junit.xml`, as godog does in production.
//! Exits 1 when a scenario fails.

use cucumber::writer::Stats as _;
use cucumber::{World, WriterExt as _, then, when, writer};

#[derive(Debug, Default, World)]
struct Gateway {
    status: u16,
    body: String,
}

fn base() -> String {
    std::env::var("API_GATEWAY_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into())
}

#[when(expr = "I GET {word}")]
async fn get(w: &mut Gateway, path: String) {
    let client = httpc::client(&httpc::Options::new("acceptance-suite")).expect("an HTTP client");
    let url = format!("{}{}", base().trim_end_matches('/'), path);
    match client.get(&url).send().await {
        Ok(r) => {
            w.status = r.status().as_u16();
            w.body = r.text().await.unwrap_or_default();
        }
        Err(e) => panic!("cannot reach {url}: {e}"),
    }
}

#[then(expr = "the status is {int}")]
fn status(w: &mut Gateway, expected: u16) {
    assert_eq!(
        w.status, expected,
        "status {}, expected {expected}",
        w.status
    );
}

#[then(expr = "the body contains {string}")]
fn contains(w: &mut Gateway, text: String) {
    assert!(w.body.contains(&text), "the body does not contain {text:?}");
}

fn main() {
    let dir = std::env::var("REPORTS_DIR").unwrap_or_else(|_| ".".into());
    // The features: the first argument, else $FEATURES, else `features/`.
    let features = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("FEATURES").ok())
        .unwrap_or_else(|| "features".into());
    let create = |name: &str| {
        std::fs::File::create(format!("{dir}/{name}"))
            .unwrap_or_else(|e| panic!("create {dir}/{name}: {e}"))
    };
    let (json, junit) = (create("cucumber.json"), create("junit.xml"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let failed = runtime.block_on(async {
        let writer = Gateway::cucumber()
            .with_writer(
                writer::Basic::stdout()
                    .summarized()
                    .tee::<Gateway, _>(writer::Json::for_tee(json))
                    .tee::<Gateway, _>(writer::JUnit::for_tee(junit, 0))
                    .normalized(),
            )
            // Our arguments are ours (the features directory), not cucumber's CLI.
            .with_cli(cucumber::cli::Opts::<_, _, _, cucumber::cli::Empty>::default())
            .run(features)
            .await;
        writer.execution_has_failed()
    });
    std::process::exit(i32::from(failed));
}
