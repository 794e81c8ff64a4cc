//! Where a tenant's database goes: where it already is (placement never moves by itself),
//! else the pinned server, else the least-loaded server with room. Pure.

/// A server as placement sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub name: String,
    /// Databases it holds now (from its catalog).
    pub databases: u32,
    pub max_databases: Option<u32>,
    /// Whether it already holds this tenant's database.
    pub holds: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    #[error("spec.server: {0:?} names no DatabaseServer")]
    UnknownServer(String),
    #[error("every DatabaseServer is at its maxDatabases; raise maxDatabases or add a server")]
    Full,
    #[error("no DatabaseServer to place the database on")]
    NoServers,
}

pub fn place<'a>(
    pinned: Option<&str>,
    candidates: &'a [Candidate],
) -> Result<&'a str, PlacementError> {
    if let Some(c) = candidates.iter().find(|c| c.holds) {
        return Ok(&c.name);
    }
    if let Some(pin) = pinned {
        return candidates
            .iter()
            .find(|c| c.name == pin)
            .map(|c| c.name.as_str())
            .ok_or_else(|| PlacementError::UnknownServer(pin.to_string()));
    }
    if candidates.is_empty() {
        return Err(PlacementError::NoServers);
    }
    candidates
        .iter()
        .filter(|c| c.max_databases.is_none_or(|m| c.databases < m))
        // Least loaded by share of capacity; ties by name, so placement is deterministic.
        .min_by(|a, b| {
            let load =
                |c: &Candidate| c.databases as f64 / c.max_databases.unwrap_or(u32::MAX) as f64;
            load(a)
                .total_cmp(&load(b))
                .then_with(|| a.name.cmp(&b.name))
        })
        .map(|c| c.name.as_str())
        .ok_or(PlacementError::Full)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(name: &str, databases: u32, max: Option<u32>, holds: bool) -> Candidate {
        Candidate {
            name: name.into(),
            databases,
            max_databases: max,
            holds,
        }
    }

    #[test]
    fn existing_placement_wins_even_over_a_pin_or_a_full_server() {
        let cs = [c("a", 10, Some(10), true), c("b", 0, Some(10), false)];
        assert_eq!(place(Some("b"), &cs), Ok("a"));
    }

    #[test]
    fn least_loaded_with_room_then_name() {
        let cs = [
            c("a", 5, Some(10), false),
            c("b", 40, Some(100), false),
            c("c", 9, Some(9), false),
        ];
        assert_eq!(place(None, &cs), Ok("b"));
        let tie = [c("z", 1, Some(10), false), c("y", 1, Some(10), false)];
        assert_eq!(place(None, &tie), Ok("y"));
    }

    #[test]
    fn pins_full_and_empty() {
        let cs = [c("a", 1, Some(1), false)];
        assert_eq!(place(None, &cs), Err(PlacementError::Full));
        assert_eq!(place(Some("a"), &cs), Ok("a"));
        assert_eq!(
            place(Some("x"), &cs),
            Err(PlacementError::UnknownServer("x".into()))
        );
        assert_eq!(place(None, &[]), Err(PlacementError::NoServers));
    }
}
