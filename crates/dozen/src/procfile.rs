//! The `Procfile`: `<type>: <command>`, one per line; `#` comments and blank
//! lines allowed. The `release` type is the release phase, run before the
//! rest; it may be several commands joined by `&&`, run in order, each with
//! its own service's environment.

use std::fmt;

/// A process type and the command that runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessType {
    pub name: String,
    /// The command, split as a POSIX shell would (no shell runs it).
    pub argv: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Procfile {
    /// In file order, without `release`.
    pub types: Vec<ProcessType>,
    /// The release phase's commands, in order.
    pub release: Vec<ProcessType>,
}

/// What is wrong with a Procfile, and on which line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcfileError {
    pub line: usize,
    pub problem: String,
}

impl fmt::Display for ProcfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Procfile line {}: {}", self.line, self.problem)
    }
}

impl std::error::Error for ProcfileError {}

pub const RELEASE: &str = "release";

impl Procfile {
    pub fn parse(text: &str) -> Result<Self, ProcfileError> {
        let mut procfile = Procfile::default();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let error = |problem: String| ProcfileError { line, problem };
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let (name, command) = trimmed
                .split_once(':')
                .ok_or_else(|| error("expected `<type>: <command>`".into()))?;
            let name = name.trim();
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(error(format!(
                    "the process type {name:?} must be letters, digits, `-` and `_`"
                )));
            }
            let taken = procfile.types.iter().any(|t| t.name == name)
                || (name == RELEASE && !procfile.release.is_empty());
            if taken {
                return Err(error(format!(
                    "the process type {name:?} is declared twice"
                )));
            }
            let commands: Vec<&str> = if name == RELEASE {
                command.split("&&").collect()
            } else {
                vec![command]
            };
            for command in commands {
                let argv = shlex::split(command.trim())
                    .ok_or_else(|| error("the command has an unclosed quote".into()))?;
                if argv.is_empty() {
                    return Err(error(format!("the process type {name:?} has no command")));
                }
                let process = ProcessType {
                    name: name.to_owned(),
                    argv,
                };
                if name == RELEASE {
                    procfile.release.push(process);
                } else {
                    procfile.types.push(process);
                }
            }
        }
        if procfile.types.is_empty() {
            return Err(ProcfileError {
                line: text.lines().count().max(1),
                problem: "no process types".into(),
            });
        }
        Ok(procfile)
    }

    pub fn get(&self, name: &str) -> Option<&ProcessType> {
        self.types.iter().find(|t| t.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_keep_their_order_and_release_is_set_apart() {
        let procfile = Procfile::parse(
            "# the system\nrelease: accounts migrate && chat migrate\n\nweb: accounts serve\nworker: sh -c 'echo \"a b\"'\n",
        )
        .unwrap();
        let release: Vec<_> = procfile.release.iter().map(|r| r.argv.join(" ")).collect();
        assert_eq!(release, ["accounts migrate", "chat migrate"]);
        let names: Vec<_> = procfile.types.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["web", "worker"]);
        assert_eq!(procfile.types[1].argv, ["sh", "-c", "echo \"a b\""]);
    }

    #[test]
    fn errors_name_the_line() {
        for (text, line, problem) in [
            ("web: a\nnonsense\n", 2, "expected"),
            ("web: a\nweb: b\n", 2, "declared twice"),
            ("web:\n", 1, "no command"),
            ("w eb: a\n", 1, "letters"),
            ("web: sh -c 'oops\n", 1, "unclosed quote"),
            ("# only a comment\n", 1, "no process types"),
        ] {
            let error = Procfile::parse(text).unwrap_err();
            assert_eq!(error.line, line, "{text:?}");
            assert!(error.problem.contains(problem), "{text:?}: {error}");
        }
    }
}
