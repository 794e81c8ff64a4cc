//! The `secret.template` language: literal text with `{{ name }}` placeholders (spaces inside
//! the braces optional). One parser serves validation and Secret rendering, so what validates
//! always renders and an unknown placeholder is an error, never an empty string.

use std::fmt;

/// A value a template may insert.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Placeholder {
    Host,
    Port,
    Database,
    Username,
    Password,
    SslMode,
}

impl Placeholder {
    pub const ALL: [Placeholder; 6] = [
        Placeholder::Host,
        Placeholder::Port,
        Placeholder::Database,
        Placeholder::Username,
        Placeholder::Password,
        Placeholder::SslMode,
    ];

    /// The name written between the braces.
    pub fn name(self) -> &'static str {
        match self {
            Placeholder::Host => "host",
            Placeholder::Port => "port",
            Placeholder::Database => "database",
            Placeholder::Username => "username",
            Placeholder::Password => "password",
            Placeholder::SslMode => "sslmode",
        }
    }

    pub fn from_name(name: &str) -> Option<Placeholder> {
        Placeholder::ALL.into_iter().find(|p| p.name() == name)
    }
}

impl fmt::Display for Placeholder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{{{ {} }}}}", self.name())
    }
}

/// A piece of a parsed template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part<'a> {
    Literal(&'a str),
    Placeholder(Placeholder),
}

/// Why a template does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error(
        "uses unknown placeholder {placeholder}; the placeholders are {{{{ host }}}}, {{{{ port }}}}, {{{{ database }}}}, {{{{ username }}}}, {{{{ password }}}} and {{{{ sslmode }}}}"
    )]
    UnknownPlaceholder {
        /// The placeholder as written, braces included.
        placeholder: String,
    },
    #[error("has a {{{{ without a closing }}}}")]
    Unclosed,
}

/// Splits a template into literal text and placeholders.
pub fn parse(template: &str) -> Result<Vec<Part<'_>>, TemplateError> {
    let mut parts = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            parts.push(Part::Literal(&rest[..open]));
        }
        let after_open = &rest[open + 2..];
        let close = after_open.find("}}").ok_or(TemplateError::Unclosed)?;
        let inner = &after_open[..close];
        let placeholder = Placeholder::from_name(inner.trim()).ok_or_else(|| {
            TemplateError::UnknownPlaceholder {
                placeholder: format!("{{{{{inner}}}}}"),
            }
        })?;
        parts.push(Part::Placeholder(placeholder));
        rest = &after_open[close + 2..];
    }
    if !rest.is_empty() {
        parts.push(Part::Literal(rest));
    }
    Ok(parts)
}

/// Renders a template, asking `value` for each placeholder.
pub fn render(
    template: &str,
    mut value: impl FnMut(Placeholder) -> String,
) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(template.len());
    for part in parse(template)? {
        match part {
            Part::Literal(text) => out.push_str(text),
            Part::Placeholder(p) => out.push_str(&value(p)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(p: Placeholder) -> String {
        match p {
            Placeholder::Host => "db.svc".into(),
            Placeholder::Port => "5432".into(),
            Placeholder::Database => "shop_orders".into(),
            Placeholder::Username => "shop_orders_app".into(),
            Placeholder::Password => "s3cr3t".into(),
            Placeholder::SslMode => "require".into(),
        }
    }

    #[test]
    fn renders_every_placeholder_with_or_without_spaces() {
        let out = render(
            "jdbc:postgresql://{{ host }}:{{port}}/{{  database  }}?user={{username}}&password={{ password }}&sslmode={{ sslmode }}",
            values,
        )
        .unwrap();
        assert_eq!(
            out,
            "jdbc:postgresql://db.svc:5432/shop_orders?user=shop_orders_app&password=s3cr3t&sslmode=require"
        );
        assert_eq!(render("plain", values).unwrap(), "plain");
        assert_eq!(render("", values).unwrap(), "");
        assert_eq!(render("a } b }} c", values).unwrap(), "a } b }} c");
    }

    #[test]
    fn unknown_and_unclosed_placeholders_are_errors() {
        assert_eq!(
            parse("{{ hostname }}").unwrap_err(),
            TemplateError::UnknownPlaceholder {
                placeholder: "{{ hostname }}".into()
            }
        );
        assert_eq!(
            parse("x{{}}").unwrap_err(),
            TemplateError::UnknownPlaceholder {
                placeholder: "{{}}".into()
            }
        );
        assert_eq!(
            parse("{{ HOST }}")
                .unwrap_err()
                .to_string()
                .split(';')
                .next(),
            Some("uses unknown placeholder {{ HOST }}")
        );
        assert_eq!(parse("{{ host").unwrap_err(), TemplateError::Unclosed);
        assert_eq!(
            TemplateError::Unclosed.to_string(),
            "has a {{ without a closing }}"
        );
    }

    #[test]
    fn display_of_placeholder() {
        assert_eq!(Placeholder::SslMode.to_string(), "{{ sslmode }}");
    }
}
