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

/// Whether a shell (`set -a; . FILE`), docker compose `env_file` and python-dotenv all take
/// this as a variable name.
pub fn is_env_name(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The name a key that is not a variable name gets in `.env` files: `jdbc-uri` becomes
/// `JDBC_URI`.
pub fn env_alias(key: &str) -> String {
    let alias: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    if alias.starts_with(|c: char| c.is_ascii_digit()) {
        format!("_{alias}")
    } else {
        alias
    }
}

/// A value written so that bash, docker compose and python-dotenv all read it back exactly:
/// bare when it holds only safe characters, else single-quoted, else double-quoted; `None`
/// when no form is read alike by all three (a newline, a backslash, or both kinds of quote
/// with `$`/`` ` ``).
fn env_value(v: &str) -> Option<String> {
    if v.contains('\n') || v.contains('\r') || v.contains('\\') {
        return None;
    }
    if !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._/:@%+,".contains(c))
    {
        return Some(v.to_string());
    }
    if !v.contains('\'') {
        return Some(format!("'{v}'"));
    }
    if !v.contains(['"', '$', '`']) {
        return Some(format!("\"{v}\""));
    }
    None
}

/// A Secret as a `.env` file that `set -a; . FILE; set +a` (also under `set -e`), docker
/// compose `env_file` and python-dotenv all load without error and read alike. Keys that are
/// not variable names appear under their `env_alias` (unless a key of that name exists); a
/// value no form carries alike for all three (multi-line `pgpass`) is left out. Both are
/// listed in a comment; the exact Secret is beside it as JSON (`json_name`).
pub fn to_env_file(keys: &BTreeMap<String, String>, json_name: &str) -> String {
    let mut out =
        format!("# Written by servicedb dev. Every key exactly as in the cluster: {json_name}\n");
    let mut lines = Vec::new();
    let mut notes = Vec::new();
    for (k, v) in keys {
        let name = if is_env_name(k) {
            k.clone()
        } else {
            let alias = env_alias(k);
            if keys.contains_key(&alias) || alias.is_empty() {
                notes.push(format!("# {k}: not a variable name, and {alias} is taken"));
                continue;
            }
            notes.push(format!("# {k}: as {alias}"));
            alias
        };
        match env_value(v) {
            Some(value) => lines.push(format!("{name}={value}")),
            None => notes.push(format!(
                "# {k}: left out (a newline, backslash or mix of quotes that not every .env reader takes alike)"
            )),
        }
    }
    for n in notes {
        out.push_str(&n);
        out.push('\n');
    }
    for l in lines {
        out.push_str(&l);
        out.push('\n');
    }
    out
}

/// Reads `KEY=value` lines as `to_env_file` writes them (and as older versions did): `#`
/// comments, values bare, single-quoted (shell style, `'\''` for a quote, newlines allowed
/// inside) or double-quoted.
pub fn parse_env_file(text: &str) -> BTreeMap<String, String> {
    let mut keys = BTreeMap::new();
    let mut rest = text;
    while !rest.is_empty() {
        let line_end = rest.find('\n').unwrap_or(rest.len());
        let Some(eq) = rest[..line_end]
            .find('=')
            .filter(|_| !rest.starts_with('#'))
        else {
            rest = rest.get(line_end + 1..).unwrap_or("");
            continue;
        };
        let key = rest[..eq].trim().to_string();
        let after = &rest[eq + 1..];
        let double = after
            .strip_prefix('"')
            .and_then(|q| q.find('"').map(|end| (q[..end].to_string(), end + 2)));
        let (value, consumed) = match after.strip_prefix('\'') {
            Some(quoted) => read_quoted(quoted),
            None if double.is_some() => double.unwrap_or_default(),
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
    fn env_file_round_trips_what_every_reader_takes_alike() {
        let mut keys = BTreeMap::new();
        for (k, v) in [
            ("B", "it's"),
            ("C", "'"),
            ("E", "a=b&c?d"),
            ("F", ""),
            ("G", "a b $HOME"),
        ] {
            keys.insert(k.to_string(), v.to_string());
        }
        assert_eq!(parse_env_file(&to_env_file(&keys, "x.json")), keys);
    }

    #[test]
    fn env_file_aliases_non_names_and_leaves_out_what_readers_disagree_on() {
        let keys = render(&info("pw"), &BTreeMap::new()).unwrap();
        let text = to_env_file(&keys, "orders-db.json");
        let back = parse_env_file(&text);
        assert_eq!(back["JDBC_URI"], keys["jdbc-uri"]);
        assert!(!back.contains_key("jdbc-uri"));
        assert!(!back.contains_key("pgpass"), "multi-line: {text}");
        assert!(text.contains("# jdbc-uri: as JDBC_URI\n"), "{text}");
        assert!(text.contains("# pgpass: left out"), "{text}");
        assert!(text.starts_with(
            "# Written by servicedb dev. Every key exactly as in the cluster: orders-db.json\n"
        ));
        // Everything else is there as it is.
        for (k, v) in &keys {
            if k != "jdbc-uri" && k != "pgpass" {
                assert_eq!(&back[k], v, "{k}");
            }
        }
        // A template key already named like the alias wins; the original is listed.
        let mut t = keys.clone();
        t.insert("JDBC_URI".into(), "mine".into());
        let back = parse_env_file(&to_env_file(&t, "x.json"));
        assert_eq!(back["JDBC_URI"], "mine");
        for bad in ["a\nb", "back\\slash", "both'\"$"] {
            let one = BTreeMap::from([("K".to_string(), bad.to_string())]);
            assert!(
                !parse_env_file(&to_env_file(&one, "x.json")).contains_key("K"),
                "{bad}"
            );
        }
    }

    #[test]
    fn env_names_and_aliases() {
        assert!(is_env_name("PGHOST") && is_env_name("_x1") && is_env_name("user"));
        assert!(!is_env_name("jdbc-uri") && !is_env_name("1A") && !is_env_name(""));
        assert_eq!(env_alias("jdbc-uri"), "JDBC_URI");
        assert_eq!(env_alias("1.x"), "_1_X");
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
