//! Flyway's checksum: CRC32 over the script's UTF-8 bytes with every line break removed (Flyway
//! feeds the CRC line by line from a BufferedReader) and one leading BOM dropped, stored as a
//! signed 32-bit integer.

/// The checksum of decoded script text.
pub fn checksum(text: &str) -> i32 {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut crc = crc32fast::Hasher::new();
    for chunk in text.split(['\r', '\n']) {
        crc.update(chunk.as_bytes());
    }
    crc.finalize() as i32
}

#[cfg(test)]
mod tests {
    use super::checksum;

    /// Locks byte-for-byte agreement with checksums Flyway writes into flyway_schema_history.
    #[test]
    fn matches_flyway_vectors() {
        assert_eq!(checksum(""), 0);
        assert_eq!(checksum("SELECT 1;\n"), 78787420);
        assert_eq!(checksum("SELECT 1;\r\n"), 78787420);
        assert_eq!(
            checksum(
                "CREATE TABLE users (\n    id BIGSERIAL PRIMARY KEY,\n    email TEXT NOT NULL UNIQUE\n);\n"
            ),
            -893234179
        );
        assert_eq!(
            checksum(
                "CREATE TABLE users (\n    id BIGSERIAL PRIMARY KEY,\n    email TEXT NOT NULL UNIQUE\n); \n"
            ),
            715817911
        );
        assert_eq!(checksum("SELECT 1;\nSELECT 2;\n"), -1665099012);
    }

    #[test]
    fn leading_bom_and_line_endings_are_ignored() {
        assert_eq!(checksum("\u{feff}SELECT 1;\n"), checksum("SELECT 1;"));
        assert_eq!(checksum("a\rb"), checksum("a\nb"));
    }
}
