//! Plain text tables, as Flyway prints `info`.

/// Renders rows under a header with `+---+` borders; every row has the header's width.
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let rule = {
        let mut s = String::from("+");
        for w in &widths {
            s.push_str(&"-".repeat(w + 2));
            s.push('+');
        }
        s
    };
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut s = String::from("|");
        for (cell, w) in cells.zip(&widths) {
            s.push(' ');
            s.push_str(cell);
            s.push_str(&" ".repeat(w - cell.chars().count() + 1));
            s.push('|');
        }
        s
    };
    let mut out = vec![
        rule.clone(),
        line(&mut header.iter().copied()),
        rule.clone(),
    ];
    if rows.is_empty() {
        let inner: usize = widths.iter().map(|w| w + 3).sum::<usize>() - 1;
        let msg = "No migrations found";
        out.push(format!(
            "| {msg}{} |",
            " ".repeat(inner.saturating_sub(msg.len() + 2))
        ));
    }
    for row in rows {
        out.push(line(&mut row.iter().map(String::as_str)));
    }
    out.push(rule);
    out.join("\n")
}

#[cfg(test)]
mod tests {
    #[test]
    fn columns_line_up() {
        let t = super::render(&["A", "Bee"], &[vec!["long cell".into(), "x".into()]]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[1], "| A         | Bee |");
        assert_eq!(lines[3], "| long cell | x   |");
        assert!(
            lines
                .iter()
                .all(|l| l.chars().count() == lines[0].chars().count())
        );
    }
}
