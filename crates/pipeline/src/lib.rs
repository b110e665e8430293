//! The pipeline as code: `ci/pipeline.yml` rendered from the table of repositories, and a
//! checker that reports, with file and line, what `fly validate-pipeline` would reject, and this
//! project's own rules apart.

pub mod check;
pub mod publish;
pub mod render;
pub mod yaml;
