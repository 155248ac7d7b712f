//! Command-line argument types shared by the CLI and the bench (both parse them; neither
//! depends on the other for them).

use crate::native::messages::Acks;
use clap::ValueEnum;

/// `--acks`, shared by `produce` and `bench`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcksArg {
    None,
    Leader,
    Durable,
}

impl From<AcksArg> for Acks {
    fn from(a: AcksArg) -> Acks {
        match a {
            AcksArg::None => Acks::None,
            AcksArg::Leader => Acks::Leader,
            AcksArg::Durable => Acks::Durable,
        }
    }
}

/// Parses a core list such as `0-3,6,8-9` (the kernel's CPU list syntax); at least
/// one core.
pub fn parse_cores(list: &str) -> Result<Vec<usize>, String> {
    let cores = crate::tune::cpulist::parse(list)?;
    if cores.is_empty() {
        return Err(format!("core list '{list}' names no core"));
    }
    Ok(cores)
}

#[cfg(test)]
mod tests {
    use super::parse_cores;

    #[test]
    fn core_lists_parse() {
        assert_eq!(parse_cores("0-3"), Ok(vec![0, 1, 2, 3]));
        assert_eq!(parse_cores("0,2, 5-6"), Ok(vec![0, 2, 5, 6]));
        assert!(parse_cores("3-1").is_err());
        assert!(parse_cores("x").is_err());
        assert!(parse_cores("").is_err());
    }
}
