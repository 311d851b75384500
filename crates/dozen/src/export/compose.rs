//! `deploy/compose.yaml`: the whole system on one Docker host, on the same
//! kinds of backing service as production (PostgreSQL, NATS, Redis, an SMTP server).

use std::collections::BTreeMap;

use dozen_manifest::{Backing, Manifest, Role};
use serde_json::{json, Map, Value};

use super::plan::{Environment, Plan, Value as Var, PORT};
use super::{image, Artifact, GRACE_SECONDS};

/// The backing services, their images and health checks.
fn backing_services() -> Vec<(Backing, &'static str, Value)> {
    vec![
        (
            Backing::Database,
            "postgres",
            json!({
                "image": "postgres:17-alpine",
                "environment": { "POSTGRES_USER": "dozen", "POSTGRES_PASSWORD": "dozen", "POSTGRES_DB": "dozen" },
                "healthcheck": healthcheck(["pg_isready", "-U", "dozen"]),
                "volumes": ["postgres:/var/lib/postgresql/data"],
            }),
        ),
        (
            Backing::Bus,
            "nats",
            json!({
                "image": "nats:2-alpine",
                "command": ["--jetstream", "--store_dir", "/data", "--http_port", "8222"],
                "healthcheck": healthcheck(["wget", "-q", "--spider", "http://127.0.0.1:8222/healthz?js-enabled-only=true"]),
                "volumes": ["nats:/data"],
            }),
        ),
        (
            Backing::Cache,
            "redis",
            json!({
                "image": "redis:7-alpine",
                // Presence and typing are of the moment: nothing to keep on disk.
                "command": ["redis-server", "--save", "", "--appendonly", "no"],
                "healthcheck": healthcheck(["redis-cli", "ping"]),
            }),
        ),
        (
            Backing::Mail,
            "smtp",
            json!({
                "image": "axllent/mailpit:v1.21",
                "ports": ["8025:8025"],
                "healthcheck": healthcheck(["/mailpit", "readyz"]),
            }),
        ),
    ]
}

fn healthcheck<const N: usize>(command: [&str; N]) -> Value {
    let mut test = vec!["CMD"];
    test.extend(command);
    json!({ "test": test, "interval": "2s", "timeout": "2s", "retries": 30, "start_period": "2s" })
}

pub fn render(plan: &Plan, env: &Environment) -> Result<Vec<Artifact>, String> {
    let mut services = Map::new();
    let mut volumes = Map::new();
    let needed: Vec<Backing> = plan
        .services()
        .iter()
        .flat_map(|s| plan.manifest(s).vars.iter().filter_map(|v| v.attaches))
        .collect();
    for (backing, name, service) in backing_services() {
        if needed.contains(&backing) {
            if let Some(mounts) = service["volumes"].as_array() {
                for mount in mounts.iter().filter_map(Value::as_str) {
                    let volume = mount.split(':').next().unwrap_or_default();
                    volumes.insert(volume.to_owned(), json!({}));
                }
            }
            services.insert(name.to_owned(), service);
        }
    }
    let upstreams = plan.upstreams(|p| format!("{}:{PORT}", p.name));
    let mut previous: Option<String> = None;
    for step in &plan.release {
        let name = format!("release-{}", step.name);
        let mut service = container(
            plan,
            env,
            &step.service,
            &step.args,
            &upstreams,
            &mut volumes,
        )?;
        let mut depends = backing_dependencies(plan.manifest(&step.service));
        if let Some(previous) = &previous {
            depends.insert(
                previous.clone(),
                json!({ "condition": "service_completed_successfully" }),
            );
        }
        service["depends_on"] = Value::Object(depends);
        service["restart"] = json!("no");
        services.insert(name.clone(), service);
        previous = Some(name);
    }
    for process in &plan.processes {
        let mut service = container(
            plan,
            env,
            &process.service,
            &process.args,
            &upstreams,
            &mut volumes,
        )?;
        let mut depends = backing_dependencies(plan.manifest(&process.service));
        if let Some(last) = &previous {
            depends.insert(
                last.clone(),
                json!({ "condition": "service_completed_successfully" }),
            );
        }
        if matches!(&process.role, Role::Web { route } if route == "/") {
            for (routed, _) in plan
                .routes()
                .into_iter()
                .filter(|(p, _)| p.name != process.name)
            {
                depends.insert(
                    routed.name.clone(),
                    json!({ "condition": "service_healthy" }),
                );
            }
            service["ports"] = json!([format!("{PORT}:{PORT}")]);
        }
        service["depends_on"] = Value::Object(depends);
        service["healthcheck"] = json!({
            "test": ["CMD", "/usr/local/bin/probe", "/readyz"],
            "interval": "5s", "timeout": "3s", "retries": 20, "start_period": "5s",
        });
        service["restart"] = json!("unless-stopped");
        service["stop_grace_period"] = json!(format!("{GRACE_SECONDS}s"));
        services.insert(process.name.clone(), service);
    }
    let document = json!({
        "name": "dozen",
        "services": services,
        "volumes": volumes,
    });
    let header = "# Generated by `dozen export compose` from the Procfile, each service's\n\
                  # manifest and deploy/env/compose.env. Do not edit: change those and\n\
                  # run it again. Schedule jobs run with `docker compose run --rm <process> …`.\n";
    Ok(vec![Artifact::yaml(
        "deploy/compose.yaml",
        header,
        vec![document],
    )])
}

fn backing_dependencies(manifest: &Manifest) -> Map<String, Value> {
    let mut depends = Map::new();
    for (backing, name, _) in backing_services() {
        if manifest.vars.iter().any(|v| v.attaches == Some(backing)) {
            depends.insert(name.to_owned(), json!({ "condition": "service_healthy" }));
        }
    }
    depends
}

fn container(
    plan: &Plan,
    env: &Environment,
    service: &str,
    args: &[String],
    upstreams: &str,
    volumes: &mut Map<String, Value>,
) -> Result<Value, String> {
    let manifest = plan.manifest(service);
    let platform = BTreeMap::from([
        ("PORT", PORT.to_string()),
        ("DOZEN_UPSTREAMS", upstreams.to_owned()),
    ]);
    let mut environment = Map::new();
    let mut mounts = Vec::new();
    for (name, value) in env.for_service(manifest, &platform)? {
        let Var::Plain(value) = value else {
            unreachable!("compose writes secrets' values")
        };
        // A file:// object store needs a writable volume: the root file system is read-only.
        let store = manifest.var(&name).and_then(|v| v.attaches) == Some(Backing::ObjectStore);
        if let Some(path) = value.strip_prefix("file://").filter(|_| store) {
            let volume = format!("{service}-{}", name.to_ascii_lowercase().replace('_', "-"));
            mounts.push(json!(format!("{volume}:{path}")));
            volumes.insert(volume, json!({}));
        }
        // Compose would read `$` as the start of its own variables.
        environment.insert(name, json!(value.replace('$', "$$")));
    }
    let mut container = json!({
        "image": image(service, "${DOZEN_TAG:-dev}"),
        "build": {
            "context": "..",
            "dockerfile": "deploy/Dockerfile",
            "args": { "SERVICE": service },
        },
        "command": args,
        "environment": environment,
        "read_only": true,
    });
    if !mounts.is_empty() {
        container["volumes"] = Value::Array(mounts);
    }
    Ok(container)
}
