//! The connection Secret's keys: every key an app may expect (`envFrom` works unchanged), plus
//! the resource's template keys.

use std::collections::BTreeMap;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::api::template::{self, Placeholder};
use crate::password::Password;
use crate::pg::SslMode;

/// Where and as whom an app connects.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    pub host: String,
    pub port: u16,
    pub database: String,
    pub username: String,
    pub password: Password,
    pub ssl_mode: SslMode,
}

/// A template key that does not render.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("secret.template.{key} {source}")]
pub struct TemplateError {
    pub key: String,
    pub source: template::TemplateError,
}

/// RFC 3986 unreserved characters stay; everything else in a user or password is encoded.
const USERINFO: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn encode(s: &str) -> String {
    utf8_percent_encode(s, USERINFO).to_string()
}

/// `.pgpass` escapes `:` and `\` in each field.
fn pgpass_field(s: &str) -> String {
    s.replace('\\', "\\\\").replace(':', "\\:")
}

/// Host as it goes into a URI: IPv6 addresses need brackets.
fn uri_host(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// All keys of the Secret.
pub fn render(
    info: &ConnectionInfo,
    template: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, TemplateError> {
    let ConnectionInfo {
        host,
        port,
        database,
        username,
        password,
        ssl_mode,
    } = info;
    let pw = password.expose();
    let sslmode = ssl_mode.as_str();
    let uri = format!(
        "postgresql://{}:{}@{}:{port}/{}?sslmode={sslmode}",
        encode(username),
        encode(pw),
        uri_host(host),
        encode(database)
    );
    let jdbc = format!(
        "jdbc:postgresql://{}:{port}/{}?user={}&password={}&sslmode={sslmode}",
        uri_host(host),
        encode(database),
        encode(username),
        encode(pw)
    );
    let pgpass = [host.as_str(), &port.to_string(), database, username, pw]
        .map(pgpass_field)
        .join(":");
    let mut keys: BTreeMap<String, String> = [
        ("host", host.clone()),
        ("port", port.to_string()),
        ("dbname", database.clone()),
        ("username", username.clone()),
        ("user", username.clone()),
        ("password", pw.to_string()),
        ("uri", uri.clone()),
        ("jdbc-uri", jdbc),
        ("pgpass", format!("{pgpass}\n")),
        ("DATABASE_URL", uri),
        ("PGHOST", host.clone()),
        ("PGPORT", port.to_string()),
        ("PGDATABASE", database.clone()),
        ("PGUSER", username.clone()),
        ("PGPASSWORD", pw.to_string()),
        ("PGSSLMODE", sslmode.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    for (key, text) in template {
        keys.insert(key.clone(), fill(key, text, info)?);
    }
    Ok(keys)
}

/// Fills one template value; an unknown placeholder is an error, never an empty string.
pub fn fill(key: &str, text: &str, info: &ConnectionInfo) -> Result<String, TemplateError> {
    template::render(text, |p| match p {
        Placeholder::Host => info.host.clone(),
        Placeholder::Port => info.port.to_string(),
        Placeholder::Database => info.database.clone(),
        Placeholder::Username => info.username.clone(),
        Placeholder::Password => info.password.expose().to_string(),
        Placeholder::SslMode => info.ssl_mode.as_str().to_string(),
    })
    .map_err(|source| TemplateError {
        key: key.to_string(),
        source,
    })
}

/// `KEY=value` lines, as `servicedb dev` writes `.env` files; values are single-quoted when
/// they hold anything a shell or dotenv parser would treat specially.
pub fn to_env_file(keys: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    for (k, v) in keys {
        let plain = v
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._/:@%+,".contains(c));
        if plain {
            out.push_str(&format!("{k}={v}\n"));
        } else {
            out.push_str(&format!("{k}='{}'\n", v.replace('\'', "'\\''")));
        }
    }
    out
}

/// Reads what `to_env_file` wrote: `KEY=value` lines, values possibly single-quoted (shell
/// style, `'\''` for a quote, newlines allowed inside).
pub fn parse_env_file(text: &str) -> BTreeMap<String, String> {
    let mut keys = BTreeMap::new();
    let mut rest = text;
    while !rest.is_empty() {
        let line_end = rest.find('\n').unwrap_or(rest.len());
        let Some(eq) = rest[..line_end].find('=') else {
            rest = rest.get(line_end + 1..).unwrap_or("");
            continue;
        };
        let key = rest[..eq].trim().to_string();
        let after = &rest[eq + 1..];
        let (value, consumed) = match after.strip_prefix('\'') {
            Some(quoted) => read_quoted(quoted),
            None => {
                let end = after.find('\n').unwrap_or(after.len());
                (after[..end].to_string(), end)
            }
        };
        keys.insert(key, value);
        let next = eq + 1 + consumed;
        rest = &rest[next..];
        rest = rest.strip_prefix('\n').unwrap_or(rest);
    }
    keys
}

/// A single-quoted value after its opening quote: (value, bytes consumed after the `=`).
fn read_quoted(s: &str) -> (String, usize) {
    let mut value = String::new();
    let mut i = 0;
    while let Some(pos) = s[i..].find('\'') {
        value.push_str(&s[i..i + pos]);
        i += pos;
        if s[i..].starts_with("'\\''") {
            value.push('\'');
            i += 4;
        } else {
            // The closing quote, plus the opening one counted by the caller's `=` offset.
            return (value, i + 2);
        }
    }
    value.push_str(&s[i..]);
    (value, s.len() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(password: &str) -> ConnectionInfo {
        ConnectionInfo {
            host: "pg.example".into(),
            port: 6432,
            database: "shop_orders".into(),
            username: "shop_orders_app".into(),
            password: Password::from_existing(password),
            ssl_mode: SslMode::Require,
        }
    }

    #[test]
    fn every_key_is_present_and_consistent() {
        let keys = render(&info("p@ss:w/rd"), &BTreeMap::new()).unwrap();
        // Exactly the keys validation protects from template keys: every key of DESIGN.md.
        let mut names: Vec<&str> = keys.keys().map(String::as_str).collect();
        let mut builtin = crate::api::validation::BUILTIN_SECRET_KEYS.to_vec();
        names.sort_unstable();
        builtin.sort_unstable();
        assert_eq!(names, builtin);
        assert_eq!(
            keys["uri"],
            "postgresql://shop_orders_app:p%40ss%3Aw%2Frd@pg.example:6432/shop_orders?sslmode=require"
        );
        assert_eq!(keys["DATABASE_URL"], keys["uri"]);
        assert_eq!(
            keys["jdbc-uri"],
            "jdbc:postgresql://pg.example:6432/shop_orders?user=shop_orders_app&password=p%40ss%3Aw%2Frd&sslmode=require"
        );
        assert_eq!(
            keys["pgpass"],
            "pg.example:6432:shop_orders:shop_orders_app:p@ss\\:w/rd\n"
        );
        assert_eq!(keys["PGPASSWORD"], "p@ss:w/rd");
        // The URI parses back to the same credentials.
        let parsed = crate::pg::ConnectOptions::from_url(&keys["uri"]).unwrap();
        assert_eq!(parsed.config.get_password(), Some(&b"p@ss:w/rd"[..]));
    }

    #[test]
    fn template_placeholders_are_filled_and_unknown_ones_refused() {
        let mut t = BTreeMap::new();
        t.insert(
            "SPRING_DATASOURCE_URL".to_string(),
            "jdbc:postgresql://{{ host }}:{{port}}/{{  database }}".to_string(),
        );
        let keys = render(&info("x"), &t).unwrap();
        assert_eq!(
            keys["SPRING_DATASOURCE_URL"],
            "jdbc:postgresql://pg.example:6432/shop_orders"
        );
        t.insert("BAD".to_string(), "{{ hostname }}".to_string());
        let err = render(&info("x"), &t).unwrap_err();
        assert_eq!(err.key, "BAD");
        assert!(
            err.to_string()
                .starts_with("secret.template.BAD uses unknown placeholder {{ hostname }}"),
            "{err}"
        );
    }

    #[test]
    fn env_file_round_trips_awkward_values() {
        let mut keys = BTreeMap::new();
        for (k, v) in [
            ("A", "password: 'x'\nhost: h"),
            ("B", "it's"),
            ("C", "'"),
            ("D", "line\n"),
            ("E", "a=b&c?d"),
            ("F", ""),
        ] {
            keys.insert(k.to_string(), v.to_string());
        }
        assert_eq!(parse_env_file(&to_env_file(&keys)), keys);
    }

    #[test]
    fn env_file_round_trips() {
        let keys = render(&info("we'ird $pw"), &BTreeMap::new()).unwrap();
        let text = to_env_file(&keys);
        assert_eq!(parse_env_file(&text), keys);
    }

    #[test]
    fn ipv6_hosts_are_bracketed_in_uris() {
        let mut i = info("x");
        i.host = "::1".into();
        let keys = render(&i, &BTreeMap::new()).unwrap();
        assert!(keys["uri"].contains("@[::1]:6432/"));
        assert_eq!(keys["host"], "::1");
    }
}
