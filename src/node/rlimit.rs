//! Raises the soft limit on open files (RLIMIT_NOFILE) to the hard limit at start: a seeder
//! holds a socket per peer, per status client and per transfer, and the common default soft
//! limit of 1,024 is far below what the kernel allows.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns `(before, after)`, or `None`
/// when there was nothing to raise or the kernel refused.
pub fn raise_nofile() -> Option<(u64, u64)> {
    let Rlimit { current, maximum } = getrlimit(Resource::Nofile);
    // `None` is "unlimited".
    let before = current?;
    let target = maximum.unwrap_or(u64::MAX);
    if target <= before {
        return None;
    }
    match setrlimit(
        Resource::Nofile,
        Rlimit {
            current: maximum,
            maximum,
        },
    ) {
        Ok(()) => Some((before, target)),
        Err(e) => {
            tracing::debug!("cannot raise RLIMIT_NOFILE from {before} to {target}: {e}");
            None
        }
    }
}

/// The current soft and hard RLIMIT_NOFILE (`u64::MAX` for unlimited).
pub fn nofile() -> (u64, u64) {
    let Rlimit { current, maximum } = getrlimit(Resource::Nofile);
    (current.unwrap_or(u64::MAX), maximum.unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_ends_at_the_hard_limit() {
        raise_nofile();
        let (soft, hard) = nofile();
        assert_eq!(soft, hard);
    }
}
