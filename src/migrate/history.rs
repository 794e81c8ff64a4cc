//! Flyway's `flyway_schema_history` table: its exact DDL, and reading and writing its rows.

use serde::Serialize;
use tokio_postgres::types::Type;
use tokio_postgres::{GenericClient, Row, ToStatement};

use crate::pg::{quote_ident, quote_literal};

/// One row of the history table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppliedRow {
    pub installed_rank: i32,
    pub version: Option<String>,
    pub description: String,
    /// Flyway's `type`: `SQL`, `BASELINE`, `SCHEMA`, `DELETE`, `JDBC`, ...
    #[serde(rename = "type")]
    pub kind: String,
    pub script: String,
    pub checksum: Option<i32>,
    pub installed_by: String,
    /// RFC 3339 with the offset. Flyway's column has no zone: it holds the session's local
    /// time of the insert, read back here in the session's time zone.
    pub installed_on: String,
    #[serde(rename = "executionTimeMs")]
    pub execution_time: i32,
    pub success: bool,
}

pub const BASELINE_MARKER: &str = "<< Flyway Baseline >>";
pub const SCHEMA_MARKER: &str = "<< Flyway Schema Creation >>";

/// Where the history lives: `"<schema>"."<table>"`.
#[derive(Debug, Clone)]
pub struct HistoryTable {
    pub schema: String,
    pub table: String,
}

/// A row to insert; rank and installed_on are set by the writer.
#[derive(Debug, Clone)]
pub struct NewRow<'a> {
    /// None: the next rank (max + 1). Flyway puts its schema-creation row at 0.
    pub rank: Option<i32>,
    pub version: Option<&'a str>,
    pub description: &'a str,
    pub kind: &'a str,
    pub script: &'a str,
    pub checksum: Option<i32>,
    pub installed_by: &'a str,
    pub execution_time: i32,
    pub success: bool,
}

impl HistoryTable {
    /// Where Flyway keeps a schema's history by default, and where the controller reads it.
    pub fn schema_history() -> HistoryTable {
        HistoryTable {
            schema: "public".to_string(),
            table: "flyway_schema_history".to_string(),
        }
    }

    /// Flyway's display name of the table, which is also the input of its advisory lock key.
    pub fn qualified(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.table))
    }

    /// The advisory lock key Flyway uses for this table, so Flyway and servicedb runners
    /// serialize against each other: 0x466C79776179 + Java `String.hashCode()` of the name.
    pub fn lock_key(&self) -> i64 {
        let hash = self
            .qualified()
            .encode_utf16()
            .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)));
        0x466C_7977_6179_i64 + i64::from(hash)
    }

    /// The DDL Flyway runs on PostgreSQL, so tables created here are indistinguishable from its own.
    pub fn create_sql(&self) -> String {
        let t = self.qualified();
        format!(
            "CREATE TABLE {t} (\n    \"installed_rank\" INT NOT NULL,\n    \"version\" VARCHAR(50),\n    \
             \"description\" VARCHAR(200) NOT NULL,\n    \"type\" VARCHAR(20) NOT NULL,\n    \
             \"script\" VARCHAR(1000) NOT NULL,\n    \"checksum\" INTEGER,\n    \
             \"installed_by\" VARCHAR(100) NOT NULL,\n    \"installed_on\" TIMESTAMP NOT NULL DEFAULT now(),\n    \
             \"execution_time\" INTEGER NOT NULL,\n    \"success\" BOOLEAN NOT NULL\n);\n\
             ALTER TABLE {t} ADD CONSTRAINT {pk} PRIMARY KEY (\"installed_rank\");\n\
             CREATE INDEX {idx} ON {t} (\"success\");",
            pk = quote_ident(&format!("{}_pk", self.table)),
            idx = quote_ident(&format!("{}_s_idx", self.table)),
        )
    }

    pub async fn exists(&self, db: &impl GenericClient) -> Result<bool, tokio_postgres::Error> {
        db.query_typed_one(
            &format!("SELECT {EXISTS_SQL}"),
            &[(&self.schema, Type::TEXT), (&self.table, Type::TEXT)],
        )
        .await?
        .try_get(0)
    }

    /// Whether the history table exists, as an SQL expression over `$1` = [`Self::qualified`]:
    /// a name lookup and one pg_class row by oid, far cheaper for a fresh session than
    /// planning a catalog join as [`Self::exists`] does. Only a table counts, as in Flyway: a
    /// view of that name is no history (before writing, the caller checks again under the
    /// lock with [`Self::exists`]).
    pub const NAMED_SQL: &'static str = "coalesce((SELECT c.relkind IN ('r', 'p') \
        FROM pg_catalog.pg_class c WHERE c.oid = to_regclass($1)), false)";

    fn all_rows_sql(&self) -> String {
        format!("SELECT {ROW_COLUMNS} FROM {}", self.qualified())
    }

    fn rows_after_sql(&self) -> String {
        format!(
            "SELECT {ROW_COLUMNS} FROM {} WHERE installed_rank > $1 ORDER BY installed_rank",
            self.qualified()
        )
    }

    fn insert_sql(&self) -> String {
        let t = self.qualified();
        format!(
            "INSERT INTO {t} (installed_rank, version, description, type, script, checksum, \
             installed_by, execution_time, success) \
             SELECT coalesce($9, coalesce(max(installed_rank), 0) + 1), $1, $2, $3, $4, $5, $6, $7, $8 FROM {t} \
             RETURNING {ROW_COLUMNS}"
        )
    }

    /// The insert of `row` as SQL text, with `execution_time` an SQL expression: for scripts
    /// sent in one message with their history row, where no bind parameters exist.
    pub fn insert_text(&self, row: &NewRow<'_>, execution_time: &str) -> String {
        let t = self.qualified();
        let text = |s: &str| quote_literal(s);
        format!(
            "INSERT INTO {t} (installed_rank, version, description, type, script, checksum, \
             installed_by, execution_time, success) \
             SELECT coalesce(max(installed_rank), 0) + 1, {version}, {description}, {kind}, {script}, \
             {checksum}, {by}, {execution_time}, {success} FROM {t}",
            version = row.version.map_or("NULL".to_string(), text),
            description = text(&stored_description(row.description)),
            kind = text(row.kind),
            script = text(&stored_script(row.script)),
            checksum = row.checksum.map_or("NULL".to_string(), |c| c.to_string()),
            by = text(truncate(row.installed_by, 100)),
            success = row.success,
        )
    }

    /// Rows with a rank above `after`, in rank order: reading only what is new keeps each
    /// re-read cheap however long the history is. One round trip (no separate prepare).
    pub async fn rows_after(
        &self,
        db: &impl GenericClient,
        after: i32,
    ) -> Result<Vec<AppliedRow>, tokio_postgres::Error> {
        db.query_typed(&self.rows_after_sql(), &[(&after, Type::INT4)])
            .await?
            .iter()
            .map(read_row)
            .collect()
    }

    /// Every row, in rank order. Without a filter or `ORDER BY` (sorted here instead), a fresh
    /// session plans it in half the time of [`Self::rows_after`]: this is most of what a
    /// `migrate apply` with nothing to do costs the server.
    pub async fn all_rows(
        &self,
        db: &impl GenericClient,
    ) -> Result<Vec<AppliedRow>, tokio_postgres::Error> {
        let mut rows = db
            .query_typed(&self.all_rows_sql(), &[])
            .await?
            .iter()
            .map(read_row)
            .collect::<Result<Vec<_>, _>>()?;
        rows.sort_by_key(|r| r.installed_rank);
        Ok(rows)
    }

    /// Who the session is (user, database) and every row, in one statement; fails as
    /// [`Self::all_rows`] does when the table does not exist. For callers that have just
    /// seen the table: the identity rides on a row that is there even when the history is
    /// empty.
    pub async fn identity_and_rows(
        &self,
        db: &impl GenericClient,
    ) -> Result<((String, String), Vec<AppliedRow>), tokio_postgres::Error> {
        let sql = format!(
            "SELECT h.*, current_user::text, current_database()::text \
             FROM (SELECT 1) one LEFT JOIN (SELECT {ROW_COLUMNS} FROM {}) h ON true",
            self.qualified()
        );
        let found = db.query_typed(&sql, &[]).await?;
        let identity = match found.first() {
            Some(r) => (r.try_get(10)?, r.try_get(11)?),
            None => Default::default(),
        };
        let mut rows = Vec::with_capacity(found.len());
        for r in &found {
            // The one row of an empty history has no rank.
            if r.try_get::<_, Option<i32>>(0)?.is_some() {
                rows.push(read_row(r)?);
            }
        }
        rows.sort_by_key(|r| r.installed_rank);
        Ok((identity, rows))
    }

    /// Inserts a row at rank `max + 1` (computed in the statement, under the caller's lock).
    pub async fn insert(
        &self,
        db: &impl GenericClient,
        row: &NewRow<'_>,
    ) -> Result<AppliedRow, tokio_postgres::Error> {
        insert_row(db, self.insert_sql().as_str(), row).await
    }
}

/// Whether the table `$1`.`$2` exists, as an SQL expression.
pub const EXISTS_SQL: &str = "EXISTS (SELECT 1 FROM pg_catalog.pg_class c \
     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
     WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p'))";

const ROW_COLUMNS: &str = "installed_rank, version, description, type, script, checksum, installed_by, \
     to_char(installed_on AT TIME ZONE current_setting('TimeZone'), 'YYYY-MM-DD\"T\"HH24:MI:SSTZH:TZM'), \
     execution_time, success";

async fn insert_row<T: ?Sized + ToStatement + Sync + Send>(
    db: &impl GenericClient,
    statement: &T,
    row: &NewRow<'_>,
) -> Result<AppliedRow, tokio_postgres::Error> {
    let inserted = db
        .query_one(
            statement,
            &[
                &row.version,
                &stored_description(row.description),
                &row.kind,
                &stored_script(row.script),
                &row.checksum,
                &truncate(row.installed_by, 100),
                &row.execution_time,
                &row.success,
                &row.rank,
            ],
        )
        .await?;
    read_row(&inserted)
}

fn read_row(r: &Row) -> Result<AppliedRow, tokio_postgres::Error> {
    Ok(AppliedRow {
        installed_rank: r.try_get(0)?,
        version: r.try_get(1)?,
        description: r.try_get(2)?,
        kind: r.try_get(3)?,
        script: r.try_get(4)?,
        checksum: r.try_get(5)?,
        installed_by: r.try_get(6)?,
        installed_on: r.try_get(7)?,
        execution_time: r.try_get(8)?,
        success: r.try_get(9)?,
    })
}

/// The description as the history stores it, shortened as Flyway's
/// `AbbreviationUtils.abbreviateDescription` does: over 200 (Java, so UTF-16) characters, the
/// first 197 and `...`. Validation compares files by this form, so a history Flyway wrote for a
/// long description matches, and rows written here are the ones Flyway would write.
pub fn stored_description(description: &str) -> std::borrow::Cow<'_, str> {
    if utf16_len(description) <= 200 {
        return description.into();
    }
    format!("{}...", utf16_prefix(description, 197)).into()
}

/// The script name as the history stores it, as Flyway's `abbreviateScript`: over 1000
/// characters, `...` in place of the first three, then characters 3 to 1000 (Flyway keeps the
/// start, not the end).
pub fn stored_script(script: &str) -> String {
    if utf16_len(script) <= 1000 {
        return script.to_string();
    }
    let head = utf16_prefix(script, 3).len();
    let upto = utf16_prefix(script, 1000).len();
    format!("...{}", &script[head..upto])
}

fn utf16_len(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

/// The longest prefix of `s` of at most `units` UTF-16 code units (Java's `substring(0, n)`,
/// except that a character is never cut in half).
fn utf16_prefix(s: &str, units: usize) -> &str {
    let mut used = 0;
    for (i, c) in s.char_indices() {
        used += c.len_utf16();
        if used > units {
            return &s[..i];
        }
    }
    s
}

/// Cuts text to the column's width in characters, as VARCHAR(n) counts them.
fn truncate(s: &str, chars: usize) -> &str {
    match s.char_indices().nth(chars) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(schema: &str, table: &str) -> HistoryTable {
        HistoryTable {
            schema: schema.into(),
            table: table.into(),
        }
    }

    /// Locks interoperability with Flyway's PostgreSQL advisory lock.
    #[test]
    fn lock_key_is_flyways() {
        assert_eq!(
            table("public", "flyway_schema_history").lock_key(),
            77433833903597
        );
        assert_ne!(
            table("orders", "flyway_schema_history").lock_key(),
            table("public", "flyway_schema_history").lock_key()
        );
    }

    #[test]
    fn ddl_names_constraint_and_index_after_the_table() {
        let sql = table("app", "history").create_sql();
        assert!(sql.starts_with("CREATE TABLE \"app\".\"history\" ("));
        assert!(sql.contains("ADD CONSTRAINT \"history_pk\" PRIMARY KEY (\"installed_rank\")"));
        assert!(
            sql.contains("CREATE INDEX \"history_s_idx\" ON \"app\".\"history\" (\"success\")")
        );
    }

    /// Flyway's AbbreviationUtils, counted in Java (UTF-16) characters.
    #[test]
    fn abbreviates_as_flyway() {
        let short = "d".repeat(200);
        assert_eq!(stored_description(&short), short);
        let long = format!("{}xyz", "d".repeat(198));
        let stored = stored_description(&long);
        assert_eq!(stored, format!("{}...", "d".repeat(197)));
        assert_eq!(stored.chars().count(), 200);
        // An emoji is two UTF-16 units: 100 of them are already 200.
        let wide = "😀".repeat(101);
        assert_eq!(stored_description(&wide), format!("{}...", "😀".repeat(98)));

        assert_eq!(stored_script("V1__a.sql"), "V1__a.sql");
        let script = format!("abc{}/V1__x.sql", "p".repeat(1000));
        let stored = stored_script(&script);
        assert_eq!(stored, format!("...{}", "p".repeat(997)));
        assert_eq!(stored.chars().count(), 1000);
    }

    #[test]
    fn truncates_by_characters() {
        assert_eq!(truncate("héllo", 2), "hé");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
