//! Injected I/O errors for tests of the storage failure paths (debug builds only).
//!
//! Full disks are tested on real small filesystems; an EIO cannot be had that way
//! without device-mapper, which test machines lack. So, in debug builds only, the
//! variable `PEREGRINE_FAULT_INJECT` may name a trigger file: while it exists, each of
//! its lines `write SUBSTRING` or `fdatasync SUBSTRING` makes that operation fail with
//! EIO on every direct-I/O file whose path contains SUBSTRING. Release builds compile
//! none of this (`check` is empty there), so the variable does nothing in them.
//!
//! The trigger is read on each matching operation with a blocking call: acceptable in
//! a test build, never compiled into a broker that serves.

use std::io;
use std::path::Path;

/// An operation a fault can be injected into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Write,
    Fdatasync,
}

#[cfg(debug_assertions)]
impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Write => "write",
            Op::Fdatasync => "fdatasync",
        }
    }
}

/// The variable naming the trigger file.
#[cfg(debug_assertions)]
const TRIGGER_VAR: &str = "PEREGRINE_FAULT_INJECT";

/// Fails with EIO when the trigger file asks for `op` on `path`.
#[cfg(debug_assertions)]
pub(crate) fn check(path: &Path, op: Op) -> io::Result<()> {
    static TRIGGER: std::sync::OnceLock<Option<std::path::PathBuf>> = std::sync::OnceLock::new();
    let Some(trigger) = TRIGGER.get_or_init(|| std::env::var_os(TRIGGER_VAR).map(Into::into))
    else {
        return Ok(());
    };
    let Ok(rules) = std::fs::read_to_string(trigger) else {
        return Ok(());
    };
    let path = path.to_string_lossy();
    let hit = rules.lines().any(|line| {
        let mut words = line.split_whitespace();
        words.next() == Some(op.name()) && words.next().is_some_and(|sub| path.contains(sub))
    });
    if hit {
        return Err(io::Error::from_raw_os_error(EIO));
    }
    Ok(())
}

/// Release builds inject nothing.
#[cfg(not(debug_assertions))]
#[inline(always)]
pub(crate) fn check(_path: &Path, _op: Op) -> io::Result<()> {
    Ok(())
}

/// Linux's EIO.
#[cfg(debug_assertions)]
const EIO: i32 = 5;
