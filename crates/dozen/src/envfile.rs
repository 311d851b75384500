//! The env file (`dev.env`): `NAME=value` lines, `#` comments. Values are
//! taken as written (no quotes, no expansion); the real environment wins.

use std::collections::BTreeMap;

pub type Vars = BTreeMap<String, String>;

/// The file's variables; an error names the line.
pub fn parse(text: &str) -> Result<Vars, String> {
    let mut vars = Vars::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, value) = line
            .split_once('=')
            .ok_or_else(|| format!("line {}: expected NAME=value", index + 1))?;
        let name = name.trim();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!(
                "line {}: {name:?} is not a variable name",
                index + 1
            ));
        }
        vars.insert(name.to_owned(), value.to_owned());
    }
    Ok(vars)
}

/// The environment one process of `service` gets. From weakest to
/// strongest: the file's `NAME`, the file's `<SERVICE>_NAME`, the real
/// `NAME`, the real `<SERVICE>_NAME` — so a real `DATABASE_URL` beats the
/// file's per-service defaults. Then `{service}` in any value becomes the
/// service's name (`postgres://…/dozen_{service}`: a database per service).
pub fn for_service(file: &Vars, real: &Vars, service: &str) -> Vars {
    let prefix = format!("{}_", service.to_ascii_uppercase().replace('-', "_"));
    let own = |vars: &Vars| -> Vec<(String, String)> {
        vars.iter()
            .filter_map(|(k, v)| {
                let name = k.strip_prefix(&prefix)?;
                (!name.is_empty()).then(|| (name.to_owned(), v.clone()))
            })
            .collect()
    };
    let mut vars = file.clone();
    vars.extend(own(file));
    vars.extend(real.iter().map(|(k, v)| (k.clone(), v.clone())));
    vars.extend(own(real));
    for value in vars.values_mut() {
        if value.contains("{service}") {
            *value = value.replace("{service}", service);
        }
    }
    vars
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_variables_win_and_service_prefixed_ones_are_the_services_own() {
        let file = parse("# dev\nDATABASE_URL=sqlite://data/a.db\nCHAT_DATABASE_URL=sqlite://data/chat.db\nLOG_LEVEL=info\nKEY=a=b\n").unwrap();
        let real = Vars::from([("LOG_LEVEL".to_owned(), "debug".to_owned())]);
        let chat = for_service(&file, &real, "chat");
        assert_eq!(chat["DATABASE_URL"], "sqlite://data/chat.db");
        assert_eq!(chat["LOG_LEVEL"], "debug");
        assert_eq!(chat["KEY"], "a=b");
        let accounts = for_service(&file, &real, "accounts");
        assert_eq!(accounts["DATABASE_URL"], "sqlite://data/a.db");
    }

    #[test]
    fn a_real_variable_beats_the_files_service_default_and_names_each_services_own() {
        let file =
            parse("DATABASE_URL=sqlite://a.db\nCHAT_DATABASE_URL=sqlite://chat.db\n").unwrap();
        let real = Vars::from([(
            "DATABASE_URL".to_owned(),
            "postgres://h/dozen_{service}".to_owned(),
        )]);
        assert_eq!(
            for_service(&file, &real, "chat")["DATABASE_URL"],
            "postgres://h/dozen_chat"
        );
        let real_own = Vars::from([("CHAT_DATABASE_URL".to_owned(), "postgres://h/c".to_owned())]);
        assert_eq!(
            for_service(&file, &real_own, "chat")["DATABASE_URL"],
            "postgres://h/c"
        );
    }

    #[test]
    fn a_line_without_equals_is_named() {
        assert_eq!(
            parse("A=1\noops\n").unwrap_err(),
            "line 2: expected NAME=value"
        );
    }
}
