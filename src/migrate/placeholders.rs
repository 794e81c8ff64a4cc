//! Flyway placeholders: `${name}` (case-insensitive) from `--placeholder name=value`, plus the
//! built-ins `${flyway:defaultSchema}`, `${flyway:user}`, `${flyway:database}`,
//! `${flyway:table}`, `${flyway:filename}` and `${flyway:timestamp}`.

use std::collections::BTreeMap;

/// Values known once connected; the same for every script of one run.
#[derive(Debug, Clone, Default)]
pub struct Placeholders {
    /// User placeholders, keyed by lower-case name.
    values: BTreeMap<String, String>,
    /// When false, scripts are used as written (Flyway's `placeholderReplacement=false`).
    pub enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlaceholderError {
    #[error(
        "{script}:{line}: unknown placeholder ${{{name}}}; define it with --placeholder {name}=VALUE"
    )]
    Unknown {
        script: String,
        line: usize,
        name: String,
    },
    #[error("--placeholder {0:?}: expected NAME=VALUE")]
    BadDefinition(String),
}

/// Per-run values of the `flyway:` built-ins.
#[derive(Debug, Clone, Default)]
pub struct Builtins {
    pub default_schema: String,
    pub user: String,
    pub database: String,
    pub table: String,
    pub timestamp: String,
}

impl Placeholders {
    pub fn new(definitions: &[String]) -> Result<Placeholders, PlaceholderError> {
        let mut values = BTreeMap::new();
        for def in definitions {
            let Some((name, value)) = def.split_once('=') else {
                return Err(PlaceholderError::BadDefinition(def.clone()));
            };
            if name.is_empty() || !name.bytes().all(is_name_byte) || name.contains(':') {
                return Err(PlaceholderError::BadDefinition(def.clone()));
            }
            values.insert(name.to_ascii_lowercase(), value.to_string());
        }
        Ok(Placeholders {
            values,
            enabled: true,
        })
    }

    /// The script with every placeholder replaced; an unknown name is an error rather than an
    /// empty string, because SQL with a hole in it may still run and do the wrong thing.
    pub fn substitute(
        &self,
        sql: &str,
        script: &str,
        builtins: &Builtins,
    ) -> Result<String, PlaceholderError> {
        if !self.enabled || !sql.contains("${") {
            return Ok(sql.to_string());
        }
        let file_name = script.rsplit('/').next().unwrap_or(script);
        let mut out = String::with_capacity(sql.len());
        let mut rest = sql;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let len = after.bytes().take_while(|b| is_name_byte(*b)).count();
            if len == 0 || after.as_bytes().get(len) != Some(&b'}') {
                // Not placeholder syntax (e.g. `${ x }`): keep the text as written.
                out.push_str("${");
                rest = after;
                continue;
            }
            let name = &after[..len];
            let lower = name.to_ascii_lowercase();
            let value = match lower.as_str() {
                "flyway:defaultschema" => Some(builtins.default_schema.as_str()),
                "flyway:user" => Some(builtins.user.as_str()),
                "flyway:database" => Some(builtins.database.as_str()),
                "flyway:table" => Some(builtins.table.as_str()),
                "flyway:filename" => Some(file_name),
                "flyway:timestamp" => Some(builtins.timestamp.as_str()),
                _ => self.values.get(&lower).map(String::as_str),
            };
            let Some(value) = value else {
                let offset = sql.len() - rest.len() + start;
                return Err(PlaceholderError::Unknown {
                    script: script.to_string(),
                    line: sql[..offset].matches('\n').count() + 1,
                    name: name.to_string(),
                });
            };
            out.push_str(value);
            rest = &after[len + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b':')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builtins() -> Builtins {
        Builtins {
            default_schema: "public".into(),
            user: "alice".into(),
            database: "shop".into(),
            table: "flyway_schema_history".into(),
            timestamp: "2026-11-21 07:00:00".into(),
        }
    }

    #[test]
    fn replaces_user_and_builtin_placeholders_case_insensitively() {
        let p = Placeholders::new(&["Owner=app_owner".into()]).unwrap();
        let out = p
            .substitute(
                "GRANT x TO ${owner}; -- ${OWNER} in ${flyway:database}.${flyway:defaultSchema} by ${flyway:user} ${flyway:filename}",
                "sub/V1__a.sql",
                &builtins(),
            )
            .unwrap();
        assert_eq!(
            out,
            "GRANT x TO app_owner; -- app_owner in shop.public by alice V1__a.sql"
        );
    }

    #[test]
    fn unknown_placeholder_is_an_error_with_its_line() {
        let p = Placeholders::new(&[]).unwrap();
        let err = p
            .substitute("SELECT 1;\nSELECT '${nope}';", "V3__x.sql", &builtins())
            .unwrap_err();
        assert_eq!(
            err,
            PlaceholderError::Unknown {
                script: "V3__x.sql".into(),
                line: 2,
                name: "nope".into()
            }
        );
        assert!(err.to_string().contains("--placeholder nope=VALUE"));
    }

    #[test]
    fn text_that_is_not_placeholder_syntax_is_kept() {
        let p = Placeholders::new(&[]).unwrap();
        let sql = "SELECT '${ x }', '${', '$$', '${}';";
        assert_eq!(p.substitute(sql, "V1__a.sql", &builtins()).unwrap(), sql);
    }

    #[test]
    fn disabled_replacement_leaves_scripts_alone() {
        let mut p = Placeholders::new(&[]).unwrap();
        p.enabled = false;
        assert_eq!(
            p.substitute("${nope}", "V1__a.sql", &builtins()).unwrap(),
            "${nope}"
        );
    }

    #[test]
    fn bad_definitions_are_rejected() {
        assert!(Placeholders::new(&["novalue".into()]).is_err());
        assert!(Placeholders::new(&["=x".into()]).is_err());
        assert!(Placeholders::new(&["flyway:user=x".into()]).is_err());
        assert!(Placeholders::new(&["a=b=c".into()]).is_ok());
    }
}
