//! The kernel's CPU list format (`0-3,8,10-11`), used by sysfs, /proc/irq and the
//! kernel command line. `peregrine serve --cores` takes the same syntax.

/// Highest CPU number accepted: bounds the expansion of a malformed range.
pub const CPU_ID_MAX: usize = 8191;

/// Parses a CPU list into sorted, distinct CPU numbers. An empty list is valid (sysfs
/// writes an empty `isolated` when nothing is isolated; `(null)` means the same).
pub fn parse(list: &str) -> Result<Vec<usize>, String> {
    let list = list.trim();
    let bad = || format!("bad CPU list '{list}': use e.g. 0-3 or 0,2,4");
    let mut cpus = Vec::new();
    if list == "(null)" {
        return Ok(cpus);
    }
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let a: usize = a.parse().map_err(|_| bad())?;
        let b: usize = b.parse().map_err(|_| bad())?;
        if a > b || b > CPU_ID_MAX {
            return Err(bad());
        }
        cpus.extend(a..=b);
    }
    cpus.sort_unstable();
    cpus.dedup();
    Ok(cpus)
}

/// Formats sorted CPUs back into the compact form, `none` when empty.
pub fn format(cpus: &[usize]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let start = cpus[i];
        let mut end = start;
        while i + 1 < cpus.len() && cpus[i + 1] == end + 1 {
            i += 1;
            end = cpus[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    if parts.is_empty() {
        "none".to_string()
    } else {
        parts.join(",")
    }
}

/// `a` minus `b`, both sorted.
pub fn minus(a: &[usize], b: &[usize]) -> Vec<usize> {
    a.iter().copied().filter(|c| !b.contains(c)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_round_trip() {
        assert_eq!(parse("0-3,8,10-11"), Ok(vec![0, 1, 2, 3, 8, 10, 11]));
        assert_eq!(format(&[0, 1, 2, 3, 8, 10, 11]), "0-3,8,10-11");
        assert_eq!(parse(""), Ok(vec![]));
        assert_eq!(parse("(null)"), Ok(vec![]));
        assert_eq!(format(&[]), "none");
        assert_eq!(parse("3,1,1"), Ok(vec![1, 3]));
    }

    #[test]
    fn malformed_lists_are_refused() {
        assert!(parse("3-1").is_err());
        assert!(parse("x").is_err());
        assert!(parse("0-99999999").is_err());
    }
}
