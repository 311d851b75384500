//! What gets deployed: the Procfile's processes, its release phase and the
//! schedule's jobs, each matched to a command its service declares.

use std::collections::BTreeMap;

use dozen_manifest::{Manifest, Need, Role};

use crate::envfile::{self, Vars};
use crate::procfile::Procfile;
use crate::schedule::Job;

/// The port every container listens on: each has its own network namespace.
pub const PORT: u16 = 8080;

/// A long-running process type (Deployment, ECS service, compose service).
#[derive(Debug, Clone)]
pub struct Process {
    /// The Procfile's name for it (`chat-worker`).
    pub name: String,
    pub service: String,
    /// Arguments after the binary (`["work"]`).
    pub args: Vec<String>,
    pub role: Role,
}

/// A one-off command: a release step or a scheduled job.
#[derive(Debug, Clone)]
pub struct OneOff {
    pub name: String,
    pub service: String,
    pub args: Vec<String>,
    /// Five-field cron, UTC; `None` for a release step.
    pub cron: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub manifests: BTreeMap<String, Manifest>,
    pub processes: Vec<Process>,
    pub release: Vec<OneOff>,
    pub jobs: Vec<OneOff>,
}

impl Plan {
    /// Matches every command of the Procfile and the schedule to its
    /// service's manifest; `dozen clock` is left out (the schedule's jobs
    /// become the platform's own scheduled tasks).
    pub fn new(
        procfile: &Procfile,
        schedule: &[Job],
        manifests: BTreeMap<String, Manifest>,
    ) -> Result<Self, String> {
        let mut plan = Plan {
            manifests,
            processes: Vec::new(),
            release: Vec::new(),
            jobs: Vec::new(),
        };
        for process in &procfile.types {
            if process.argv.first().map(String::as_str) == Some("dozen") {
                if process.argv.get(1).map(String::as_str) == Some("clock") {
                    continue;
                }
                return Err(format!(
                    "{}: only `dozen clock` is deployable",
                    process.name
                ));
            }
            let (service, args, role) = plan.command(
                &process.name,
                &process.argv,
                "a web or worker command",
                |r| matches!(r, Role::Web { .. } | Role::Worker),
            )?;
            plan.processes.push(Process {
                name: process.name.clone(),
                service,
                args,
                role,
            });
        }
        for step in &procfile.release {
            let (service, args, _) =
                plan.command("release", &step.argv, "a release command", |r| {
                    *r == Role::Release
                })?;
            plan.release.push(OneOff {
                name: format!("{service}-{}", args[0]),
                service,
                args,
                cron: None,
            });
        }
        for job in schedule {
            let (service, args, _) =
                plan.command(&job.name, &job.argv, "an admin command", |r| {
                    *r == Role::Admin
                })?;
            plan.jobs.push(OneOff {
                name: job.name.clone(),
                service,
                args,
                cron: Some(job.cron.text.clone()),
            });
        }
        Ok(plan)
    }

    /// The service, arguments and role of `argv`, which must be a declared
    /// command whose role `fits` (it is `what`).
    fn command(
        &self,
        name: &str,
        argv: &[String],
        what: &str,
        fits: impl Fn(&Role) -> bool,
    ) -> Result<(String, Vec<String>, Role), String> {
        let [program, command, ..] = argv else {
            return Err(format!("{name}: expected `<service> <command> …`"));
        };
        let manifest = self.manifests.get(program).ok_or_else(|| {
            format!("{name}: no manifest for {program:?} (does `{program} describe` work?)")
        })?;
        let declared = manifest
            .find_command(command)
            .ok_or_else(|| format!("{name}: {program} declares no command {command:?}"))?;
        if !fits(&declared.role) {
            return Err(format!("{name}: `{}` is not {what}", argv.join(" ")));
        }
        Ok((program.clone(), argv[1..].to_vec(), declared.role.clone()))
    }

    pub fn manifest(&self, service: &str) -> &Manifest {
        &self.manifests[service]
    }

    /// The services whose processes run (each once, in Procfile order).
    pub fn services(&self) -> Vec<&str> {
        let mut services: Vec<&str> = Vec::new();
        let all = self.processes.iter().map(|p| &p.service);
        for service in all
            .chain(self.release.iter().map(|r| &r.service))
            .chain(self.jobs.iter().map(|j| &j.service))
        {
            if !services.contains(&service.as_str()) {
                services.push(service);
            }
        }
        services
    }

    /// Web processes with their path prefix, the most specific first.
    pub fn routes(&self) -> Vec<(&Process, &str)> {
        let mut routes: Vec<(&Process, &str)> = self
            .processes
            .iter()
            .filter_map(|p| match &p.role {
                Role::Web { route } => Some((p, route.as_str())),
                _ => None,
            })
            .collect();
        routes.sort_by_key(|(_, route)| std::cmp::Reverse(route.len()));
        routes
    }

    /// `DOZEN_UPSTREAMS` for a gateway: every routed service at `address(process)`.
    pub fn upstreams(&self, address: impl Fn(&Process) -> String) -> String {
        self.routes()
            .into_iter()
            .filter(|(_, route)| *route != "/")
            .map(|(p, _)| format!("{}={}", p.service, address(p)))
            .collect::<Vec<_>>()
            .join(";")
    }
}

/// A variable's value in one environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Plain(String),
    /// Kept in the platform's secret store under the variable's name.
    Secret,
}

/// What an environment file (`deploy/env/<target>.env`) says, checked
/// against each service's manifest.
#[derive(Debug, Clone)]
pub struct Environment {
    /// For messages: the file's path.
    pub source: String,
    pub vars: Vars,
    /// Whether secrets are referenced (Kubernetes, AWS) or written (compose).
    pub secrets_by_reference: bool,
}

impl Environment {
    /// The variables `service` gets, in the manifest's order: the file's
    /// values for what the service declares, references for its secrets,
    /// `platform` for what the runner sets. A required variable the file
    /// does not set, or a secret it sets when secrets are references, is an error.
    pub fn for_service(
        &self,
        manifest: &Manifest,
        platform: &BTreeMap<&str, String>,
    ) -> Result<Vec<(String, Value)>, String> {
        let file = envfile::for_service(&self.vars, &Vars::new(), &manifest.service);
        let mut out = Vec::new();
        for var in &manifest.vars {
            let given = file.get(&var.name).filter(|v| !v.trim().is_empty());
            let value = match (var.need, given) {
                (Need::Platform, _) => platform.get(var.name.as_str()).cloned().map(Value::Plain),
                (Need::Secret, Some(_)) if self.secrets_by_reference => {
                    return Err(format!(
                        "{}: {}'s {} is a secret: keep it in the secret store, not in this file",
                        self.source, manifest.service, var.name
                    ))
                }
                (Need::Secret, None) if self.secrets_by_reference => Some(Value::Secret),
                (Need::Required | Need::Secret, None) => {
                    return Err(format!(
                        "{}: {}'s {} is required ({}): set it",
                        self.source, manifest.service, var.name, var.about
                    ))
                }
                (_, given) => given.cloned().map(Value::Plain),
            };
            if let Some(value) = value {
                out.push((var.name.clone(), value));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dozen_manifest::Var;

    fn manifest() -> Manifest {
        Manifest::new("chat", "").vars([
            Var::secret("DATABASE_URL", "sqlite://x.db", "the database"),
            Var::required("JWKS_URL", "http://a/jwks", "the keys"),
            Var::optional("LOG_LEVEL", ""),
            Var::platform("PORT", "8080", ""),
        ])
    }

    fn environment(text: &str, secrets_by_reference: bool) -> Environment {
        Environment {
            source: "deploy/env/test.env".into(),
            vars: envfile::parse(text).unwrap(),
            secrets_by_reference,
        }
    }

    #[test]
    fn a_service_gets_what_it_declares_with_secrets_referenced() {
        let env = environment(
            "JWKS_URL=http://accounts/jwks\nOTHER=x\nCHAT_LOG_LEVEL=debug\n",
            true,
        );
        let platform = BTreeMap::from([("PORT", "8080".to_owned())]);
        let vars = env.for_service(&manifest(), &platform).unwrap();
        assert_eq!(
            vars,
            [
                ("DATABASE_URL".to_owned(), Value::Secret),
                (
                    "JWKS_URL".to_owned(),
                    Value::Plain("http://accounts/jwks".into())
                ),
                ("LOG_LEVEL".to_owned(), Value::Plain("debug".into())),
                ("PORT".to_owned(), Value::Plain("8080".into())),
            ]
        );
    }

    #[test]
    fn each_procfile_line_and_job_must_run_a_command_of_the_right_role() {
        let chat = Manifest::new("chat", "")
            .command(
                "serve",
                Role::Web {
                    route: "/api/chat".into(),
                },
            )
            .command("migrate", Role::Release)
            .command("archive", Role::Admin);
        let plan = |procfile: &str, schedule: &str| {
            Plan::new(
                &Procfile::parse(procfile).unwrap(),
                &crate::schedule::parse(schedule).unwrap(),
                BTreeMap::from([("chat".to_owned(), chat.clone())]),
            )
        };
        let ok = plan(
            "release: chat migrate\nweb: chat serve\nclock: dozen clock\n",
            "archive: 0 3 * * 0 | chat archive --older-than 90d\n",
        )
        .unwrap();
        assert_eq!(
            ok.processes.len(),
            1,
            "the clock is the platform's scheduler"
        );
        assert_eq!(ok.release[0].name, "chat-migrate");
        assert_eq!(ok.jobs[0].cron.as_deref(), Some("0 3 * * 0"));
        let error = plan("web: chat migrate\n", "").unwrap_err();
        assert_eq!(error, "web: `chat migrate` is not a web or worker command");
        let error = plan("web: chat serve\n", "nightly: 0 3 * * * | chat serve\n").unwrap_err();
        assert_eq!(error, "nightly: `chat serve` is not an admin command");
        let error = plan("web: chat talk\n", "").unwrap_err();
        assert_eq!(error, "web: chat declares no command \"talk\"");
    }

    #[test]
    fn a_missing_required_variable_is_named_with_its_file() {
        let error = environment("", true)
            .for_service(&manifest(), &BTreeMap::new())
            .unwrap_err();
        assert!(
            error.contains("deploy/env/test.env: chat's JWKS_URL is required"),
            "{error}"
        );
    }

    #[test]
    fn a_secret_written_into_a_production_environment_file_is_refused() {
        let error = environment("JWKS_URL=x\nDATABASE_URL=postgres://u:p@db/chat\n", true)
            .for_service(&manifest(), &BTreeMap::new())
            .unwrap_err();
        assert!(error.contains("DATABASE_URL is a secret"), "{error}");
        // Locally (compose) the file holds the value itself.
        let local = environment("JWKS_URL=x\nDATABASE_URL=postgres://db/chat\n", false);
        assert!(local.for_service(&manifest(), &BTreeMap::new()).is_ok());
        let error = environment("JWKS_URL=x\n", false)
            .for_service(&manifest(), &BTreeMap::new())
            .unwrap_err();
        assert!(error.contains("DATABASE_URL is required"), "{error}");
    }
}
