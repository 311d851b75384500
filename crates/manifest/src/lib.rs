//! What a service declares it needs to run, in one value.
//!
//! Every service binary prints its [`Manifest`] as JSON (`<service>
//! describe`); `dozen export` reads them to write the compose file, the
//! Kubernetes manifests and the CloudFormation template, so a deployment
//! follows the code instead of a copy of it. Each service's tests check that
//! its manifest agrees with what its settings really read.

use serde::{Deserialize, Serialize};

/// A service's declared needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub service: String,
    pub about: String,
    /// The subcommands a Procfile or a schedule may run.
    pub commands: Vec<Command>,
    /// Every variable the service reads, each once.
    pub vars: Vec<Var>,
    /// Topics the service publishes to (through its outbox).
    pub publishes: Vec<String>,
    /// Subscriptions its worker consumes.
    pub subscriptions: Vec<Subscription>,
}

impl Manifest {
    pub fn new(service: &str, about: &str) -> Self {
        Self {
            service: service.to_owned(),
            about: about.to_owned(),
            commands: Vec::new(),
            vars: Vec::new(),
            publishes: Vec::new(),
            subscriptions: Vec::new(),
        }
    }

    pub fn command(mut self, name: &str, role: Role) -> Self {
        self.commands.push(Command {
            name: name.to_owned(),
            role,
        });
        self
    }

    /// Adds variables; a name already declared keeps its first declaration,
    /// so a service may restate a standard variable to make it required.
    pub fn vars(mut self, vars: impl IntoIterator<Item = Var>) -> Self {
        for var in vars {
            if !self.vars.iter().any(|known| known.name == var.name) {
                self.vars.push(var);
            }
        }
        self
    }

    pub fn publishes(mut self, topic: &str) -> Self {
        self.publishes.push(topic.to_owned());
        self
    }

    pub fn subscribes(mut self, subscriptions: impl IntoIterator<Item = Subscription>) -> Self {
        self.subscriptions.extend(subscriptions);
        self
    }

    pub fn find_command(&self, name: &str) -> Option<&Command> {
        self.commands.iter().find(|c| c.name == name)
    }

    pub fn var(&self, name: &str) -> Option<&Var> {
        self.vars.iter().find(|v| v.name == name)
    }

    /// The variables an environment must set for this service to start.
    pub fn required(&self) -> impl Iterator<Item = &Var> {
        self.vars
            .iter()
            .filter(|v| matches!(v.need, Need::Required | Need::Secret))
    }

    /// The manifest as `describe` prints it.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a manifest is plain data")
    }
}

/// A subcommand and what kind of process it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    pub name: String,
    pub role: Role,
}

/// How a deployment runs a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Role {
    /// Serves HTTP on `$PORT`; requests whose path starts with `route` are its.
    Web { route: String },
    /// Consumes the service's subscriptions; health and metrics on `$PORT`.
    Worker,
    /// Runs once before a new release starts (migrations).
    Release,
    /// A one-off or scheduled admin process.
    Admin,
}

/// A variable the service reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Var {
    pub name: String,
    pub need: Need,
    /// A value that works on one machine (the embedded defaults' kind), for tests and docs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example: Option<String>,
    pub about: String,
    /// The backing service the variable attaches, if it names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attaches: Option<Backing>,
}

/// Kinds of backing service (factor IV), so a deployment can provision them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backing {
    Database,
    Bus,
    Mail,
    ObjectStore,
    /// Fast, temporary shared state (Redis; an embedded file in development).
    Cache,
}

/// Whether and how an environment provides a variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Need {
    /// Must be set; plain configuration.
    Required,
    /// Must be set; a credential, so it comes from a secret store, never a plain file.
    Secret,
    /// Has a default.
    Optional,
    /// Set by the process runner itself (`PORT`, `DOZEN_UPSTREAMS`, `RELEASE_ID`).
    Platform,
}

impl Var {
    fn new(name: &str, need: Need, example: Option<&str>, about: &str) -> Self {
        Self {
            name: name.to_owned(),
            need,
            example: example.map(str::to_owned),
            about: about.to_owned(),
            attaches: None,
        }
    }

    /// Marks the variable as the URL of a backing service.
    pub fn attaches(mut self, backing: Backing) -> Self {
        self.attaches = Some(backing);
        self
    }

    pub fn required(name: &str, example: &str, about: &str) -> Self {
        Self::new(name, Need::Required, Some(example), about)
    }

    pub fn secret(name: &str, example: &str, about: &str) -> Self {
        Self::new(name, Need::Secret, Some(example), about)
    }

    pub fn optional(name: &str, about: &str) -> Self {
        Self::new(name, Need::Optional, None, about)
    }

    pub fn platform(name: &str, example: &str, about: &str) -> Self {
        Self::new(name, Need::Platform, Some(example), about)
    }
}

/// A durable queue of the service's, bound to a topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    pub name: String,
    pub topic: String,
    /// Deliveries before an event is dead-lettered.
    pub max_attempts: u32,
    /// How long a delivery stays invisible to other consumers, in whole seconds.
    pub visibility_timeout_seconds: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_survives_its_json_form() {
        let manifest = Manifest::new("chat", "rooms")
            .command(
                "serve",
                Role::Web {
                    route: "/api/chat".into(),
                },
            )
            .command("migrate", Role::Release)
            .vars([Var::secret("DATABASE_URL", "sqlite://x.db", "the database")])
            .publishes("message.sent")
            .subscribes([Subscription {
                name: "chat.cards".into(),
                topic: "card.created".into(),
                max_attempts: 5,
                visibility_timeout_seconds: 30,
            }]);
        let back: Manifest = serde_json::from_str(&manifest.to_json()).unwrap();
        assert_eq!(back, manifest);
        assert!(manifest.to_json().contains("\"kind\": \"web\""));
    }

    #[test]
    fn a_variable_declared_twice_keeps_its_first_need() {
        let manifest = Manifest::new("s", "")
            .vars([Var::required("BUS_URL", "sqlite://b.db", "")])
            .vars([Var::optional("BUS_URL", "")]);
        assert_eq!(manifest.vars.len(), 1);
        assert_eq!(manifest.required().count(), 1);
    }
}
