//! `dozen export compose|k8s|aws`: deployment descriptions generated from
//! the Procfile, the schedule, each service's manifest (`<service>
//! describe`) and one hand-written file per environment (`deploy/env/`).
//! The output depends on nothing else, so it is checked in and CI
//! regenerates it to prove it current.

pub mod aws;
pub mod compose;
pub mod k8s;
pub mod plan;
pub mod yaml;

use std::collections::BTreeMap;
use std::path::Path;

use dozen_manifest::Manifest;

use crate::envfile;
use crate::procfile::Procfile;
use plan::{Environment, Plan};

/// How long a process drains after SIGTERM (the runtime's `SHUTDOWN_TIMEOUT` default).
pub const DRAIN_SECONDS: u32 = 25;
/// How long a stopping process may take in all: the drain and a margin.
pub const GRACE_SECONDS: u32 = DRAIN_SECONDS + 5;
/// How long a load balancer keeps sending to a stopping instance; shorter
/// than the drain, so every request it sends is answered.
pub const DEREGISTRATION_SECONDS: u32 = 20;

/// A generated file, by its path from the repository root: its YAML
/// documents, and the text they are written as.
#[derive(Debug, Clone, PartialEq)]
pub struct Artifact {
    pub path: String,
    pub documents: Vec<serde_json::Value>,
    pub text: String,
}

impl Artifact {
    /// `documents` as a YAML stream after a `#` comment `header`.
    pub fn yaml(path: impl Into<String>, header: &str, documents: Vec<serde_json::Value>) -> Self {
        let text = format!("{header}{}", yaml::stream(&documents));
        Self {
            path: path.into(),
            documents,
            text,
        }
    }
}

/// Where a deployment runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Target {
    /// `deploy/compose.yaml`
    Compose,
    /// `deploy/k8s/base/`
    K8s,
    /// `deploy/aws/dozen.yaml` (CloudFormation, ECS on Fargate)
    #[value(alias = "ecs")]
    Aws,
}

impl Target {
    pub const ALL: [Target; 3] = [Target::Compose, Target::K8s, Target::Aws];

    fn name(self) -> &'static str {
        match self {
            Target::Compose => "compose",
            Target::K8s => "k8s",
            Target::Aws => "aws",
        }
    }
}

/// The image a service's processes run.
pub fn image(service: &str, tag: &str) -> String {
    format!("dozen-{service}:{tag}")
}

/// The plan for the Procfile and schedule under `root`; `describe` gives a
/// program's manifest.
pub fn plan(
    root: &Path,
    describe: impl Fn(&str) -> Result<Manifest, String>,
) -> Result<Plan, String> {
    let procfile =
        Procfile::parse(&read(root, "Procfile")?).map_err(|e| format!("Procfile: {e}"))?;
    let schedule =
        crate::schedule::parse(&read(root, "schedule")?).map_err(|e| format!("schedule: {e}"))?;
    let mut manifests = BTreeMap::new();
    let programs = procfile
        .types
        .iter()
        .chain(&procfile.release)
        .map(|t| &t.argv)
        .chain(schedule.iter().map(|j| &j.argv))
        .filter_map(|argv| argv.first())
        .filter(|program| *program != "dozen");
    for program in programs {
        if !manifests.contains_key(program) {
            manifests.insert(program.clone(), describe(program)?);
        }
    }
    Plan::new(&procfile, &schedule, manifests)
}

/// The environment file of `target`.
pub fn environment(root: &Path, target: Target) -> Result<Environment, String> {
    let source = format!("deploy/env/{}.env", target.name());
    let vars = envfile::parse(&read(root, &source)?).map_err(|e| format!("{source}: {e}"))?;
    Ok(Environment {
        source,
        vars,
        secrets_by_reference: target != Target::Compose,
    })
}

/// Every file of `target`.
pub fn render(root: &Path, plan: &Plan, target: Target) -> Result<Vec<Artifact>, String> {
    let env = environment(root, target)?;
    match target {
        Target::Compose => compose::render(plan, &env),
        Target::K8s => k8s::render(plan, &env),
        Target::Aws => aws::render(plan, &env),
    }
}

/// Writes the artifacts under `root`, or with `check` only compares them;
/// either way returns the paths whose checked-in text differed.
pub fn write(root: &Path, artifacts: &[Artifact], check: bool) -> Result<Vec<String>, String> {
    let mut differing = Vec::new();
    for artifact in artifacts {
        let path = root.join(&artifact.path);
        let current = std::fs::read_to_string(&path).ok();
        if current.as_deref() == Some(artifact.text.as_str()) {
            continue;
        }
        differing.push(artifact.path.clone());
        if !check {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| format!("creating {}: {e}", parent.display()))?;
            }
            std::fs::write(&path, &artifact.text)
                .map_err(|e| format!("writing {}: {e}", path.display()))?;
        }
    }
    Ok(differing)
}

fn read(root: &Path, name: &str) -> Result<String, String> {
    std::fs::read_to_string(root.join(name)).map_err(|e| format!("reading {name}: {e}"))
}
