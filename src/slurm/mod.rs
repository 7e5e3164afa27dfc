//! Rendering of the sbatch script behind `ldawt slurm` from the template in
//! `bootstrap/ldawt.sbatch.tmpl` (compiled in): validates every value (Slurm's time and
//! memory syntax, names without shell or newline characters) and shell-quotes what lands in
//! the script, so no value can break out of its line. Pure.

/// The template, from `bootstrap/` in the repository.
pub const TEMPLATE: &str = include_str!("../../bootstrap/ldawt.sbatch.tmpl");

/// How the job's nodes get into the swarm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SwarmAccess {
    /// The swarm key file every node reads (`--swarm-key`), an absolute path.
    KeyFile(String),
    /// A keyless swarm (`--open`).
    Open,
}

/// Everything the job script needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlurmJob {
    /// Swarm address to join (the seeder's multiaddr).
    pub join: String,
    /// The swarm key file, or an open swarm.
    pub access: SwarmAccess,
    /// Seconds without a lease after which each node exits.
    pub idle_secs: u64,
    /// Nodes to allocate (one `ldawt node` each).
    pub nodes: u32,
    /// CPUs per node task.
    pub cpus_per_task: u32,
    /// Memory per node (`16G`, `4000M`, `4000`).
    pub mem: String,
    /// Wall time (`4:00:00`, `1-00:00:00`, `30`).
    pub time: String,
    /// `#SBATCH --partition`, when given.
    pub partition: Option<String>,
    /// `#SBATCH --account` (the allocation charged), when given.
    pub account: Option<String>,
    /// `#SBATCH --job-name`.
    pub job_name: String,
    /// The ldawt binary on the compute nodes.
    pub ldawt: String,
    /// Where each node's working directory is created.
    pub work_root: String,
    /// Slurm's `--output` pattern.
    pub output_pattern: String,
    /// Extra arguments appended to `ldawt node`.
    pub node_args: Vec<String>,
}

/// A value that cannot go into the script.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("--{option} {value:?}: {reason}")]
pub struct SlurmError {
    /// The command-line option (without `--`) the value came from.
    pub option: &'static str,
    /// The value given.
    pub value: String,
    /// What is expected.
    pub reason: String,
}

fn bad(option: &'static str, value: &str, reason: &str) -> SlurmError {
    SlurmError {
        option,
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

/// Single-quotes `s` for bash.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// True for Slurm time limits: `M`, `M:S`, `H:M:S`, `D-H`, `D-H:M`, `D-H:M:S`.
pub fn is_slurm_time(t: &str) -> bool {
    let num = |s: &str| !s.is_empty() && s.len() <= 6 && s.bytes().all(|b| b.is_ascii_digit());
    let (days, rest) = match t.split_once('-') {
        Some((d, r)) => (Some(d), r),
        None => (None, t),
    };
    if days.is_some_and(|d| !num(d)) {
        return false;
    }
    let parts: Vec<&str> = rest.split(':').collect();
    parts.iter().all(|p| num(p)) && (1..=3).contains(&parts.len())
}

/// True for Slurm memory sizes: digits with an optional K/M/G/T suffix.
pub fn is_slurm_mem(m: &str) -> bool {
    let digits = m.trim_end_matches(['K', 'M', 'G', 'T', 'k', 'm', 'g', 't']);
    !digits.is_empty()
        && m.len() - digits.len() <= 1
        && digits.bytes().all(|b| b.is_ascii_digit())
        && digits != "0"
}

fn is_plain_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

fn is_single_line(s: &str) -> bool {
    !s.is_empty() && !s.chars().any(char::is_control)
}

/// Renders the sbatch script for `job`.
pub fn render(job: &SlurmJob) -> Result<String, SlurmError> {
    if job.nodes == 0 {
        return Err(bad("nodes", "0", "at least 1 node"));
    }
    if job.cpus_per_task == 0 {
        return Err(bad("cpus-per-task", "0", "at least 1 CPU"));
    }
    if !is_slurm_mem(&job.mem) {
        return Err(bad(
            "mem",
            &job.mem,
            "a size such as 16G, 4000M or 4000 (MB)",
        ));
    }
    if !is_slurm_time(&job.time) {
        return Err(bad(
            "time",
            &job.time,
            "a Slurm time such as 4:00:00, 1-00:00:00 or 30 (minutes)",
        ));
    }
    for (option, value) in [("partition", &job.partition), ("account", &job.account)] {
        if let Some(v) = value
            && !is_plain_name(v)
        {
            return Err(bad(option, v, "letters, digits, '-', '_' and '.' only"));
        }
    }
    if !is_plain_name(&job.job_name) {
        return Err(bad(
            "job-name",
            &job.job_name,
            "letters, digits, '-', '_' and '.' only",
        ));
    }
    if !is_single_line(&job.join)
        || job.join.contains(char::is_whitespace)
        || !job.join.starts_with('/')
    {
        return Err(bad(
            "join",
            &job.join,
            "the seeder's multiaddr, e.g. /ip4/10.0.0.5/tcp/4001/p2p/12D3KooW...",
        ));
    }
    if let SwarmAccess::KeyFile(k) = &job.access
        && (!is_single_line(k) || !k.starts_with('/'))
    {
        return Err(bad(
            "swarm-key",
            k,
            "an absolute single-line path the compute nodes can read",
        ));
    }
    for (option, value) in [
        ("ldawt", &job.ldawt),
        ("work-root", &job.work_root),
        ("log", &job.output_pattern),
    ] {
        if !is_single_line(value) {
            return Err(bad(option, value, "a non-empty single-line path"));
        }
    }
    if job.output_pattern.contains(char::is_whitespace) {
        return Err(bad(
            "log",
            &job.output_pattern,
            "sbatch directives cannot hold spaces",
        ));
    }
    if let Some(a) = job
        .node_args
        .iter()
        .find(|a| a.chars().any(char::is_control))
    {
        return Err(bad("node-arg", a, "no control characters"));
    }
    let mut extra = Vec::new();
    if let Some(p) = &job.partition {
        extra.push(format!("#SBATCH --partition={p}"));
    }
    if let Some(a) = &job.account {
        extra.push(format!("#SBATCH --account={a}"));
    }
    let node_args: String = job
        .node_args
        .iter()
        .map(|a| format!(" {}", shell_quote(a)))
        .collect();
    let script = TEMPLATE
        .replace("{{JOB_NAME}}", &job.job_name)
        .replace("{{NODES}}", &job.nodes.to_string())
        .replace("{{CPUS_PER_TASK}}", &job.cpus_per_task.to_string())
        .replace("{{MEM}}", &job.mem)
        .replace("{{TIME}}", &job.time)
        .replace("{{OUTPUT_PATTERN}}", &job.output_pattern)
        .replace(
            "{{EXTRA_DIRECTIVES}}\n",
            &extra.iter().map(|l| format!("{l}\n")).collect::<String>(),
        )
        .replace("{{LDAWT}}", &shell_quote(&job.ldawt))
        .replace("{{JOIN}}", &shell_quote(&job.join))
        .replace(
            "{{SWARM_KEY}}",
            &match &job.access {
                SwarmAccess::KeyFile(k) => shell_quote(k),
                SwarmAccess::Open => "''".to_string(),
            },
        )
        .replace(
            "{{ACCESS}}",
            match &job.access {
                SwarmAccess::KeyFile(_) => "--swarm-key \"${SWARM_KEY}\"",
                SwarmAccess::Open => "--open",
            },
        )
        .replace("{{WORK_ROOT}}", &shell_quote(&job.work_root))
        .replace("{{IDLE_SECS}}", &job.idle_secs.to_string())
        .replace("{{NODE_ARGS}}", &node_args);
    Ok(script)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> SlurmJob {
        SlurmJob {
            join: "/ip4/10.0.0.5/tcp/4001/p2p/12D3KooW".into(),
            access: SwarmAccess::KeyFile("/shared/ldawt/swarm.key".into()),
            idle_secs: 300,
            nodes: 4,
            cpus_per_task: 8,
            mem: "16G".into(),
            time: "4:00:00".into(),
            partition: Some("standard".into()),
            account: None,
            job_name: "ldawt".into(),
            ldawt: "/opt/ldawt/bin/ldawt".into(),
            work_root: "/tmp/ldawt work".into(),
            output_pattern: "ldawt-%j.out".into(),
            node_args: vec!["--out".into(), "it's here".into()],
        }
    }

    #[test]
    fn renders_every_placeholder() {
        let s = render(&job()).unwrap();
        assert!(!s.contains("{{"), "{s}");
        assert!(s.contains("#SBATCH --nodes=4\n") && s.contains("#SBATCH --cpus-per-task=8\n"));
        assert!(s.contains("#SBATCH --partition=standard\n") && !s.contains("--account"));
        assert!(s.contains("WORK_ROOT='/tmp/ldawt work'"));
        assert!(s.contains(r" --exit-when-idle 300 '--out' 'it'\''s here'"));
        assert!(s.contains("SWARM_KEY='/shared/ldawt/swarm.key'\n"));
        assert!(s.contains(r#"node --join "${JOIN}" --swarm-key "${SWARM_KEY}" --exit-when-idle"#));
        let mut open = job();
        open.access = SwarmAccess::Open;
        let s = render(&open).unwrap();
        assert!(
            s.contains(r#"node --join "${JOIN}" --open --exit-when-idle"#),
            "{s}"
        );
        // Directives start their lines (LDAWT's generator indented them, so sbatch ignored them).
        assert!(
            s.lines()
                .filter(|l| l.contains("SBATCH --"))
                .all(|l| l.starts_with("#SBATCH"))
        );
    }

    #[test]
    fn rejects_values_that_would_break_the_script() {
        let mut j = job();
        j.time = "4h".into();
        assert_eq!(render(&j).unwrap_err().option, "time");
        let mut j = job();
        j.partition = Some("a\n#SBATCH --x".into());
        assert_eq!(render(&j).unwrap_err().option, "partition");
        let mut j = job();
        j.join = "a b".into();
        assert_eq!(render(&j).unwrap_err().option, "join");
        j.join = "10.0.0.5:4001".into();
        assert_eq!(render(&j).unwrap_err().option, "join");
        let mut j = job();
        j.mem = "16GB".into();
        assert_eq!(render(&j).unwrap_err().option, "mem");
        let mut j = job();
        j.access = SwarmAccess::KeyFile("relative/swarm.key".into());
        assert_eq!(render(&j).unwrap_err().option, "swarm-key");
    }

    #[test]
    fn slurm_syntax() {
        for t in ["30", "30:00", "4:00:00", "1-00", "1-4:00", "2-04:00:00"] {
            assert!(is_slurm_time(t), "{t}");
        }
        for t in ["", "4h", "1-", "1:2:3:4", "-1"] {
            assert!(!is_slurm_time(t), "{t}");
        }
        assert!(
            is_slurm_mem("16G") && is_slurm_mem("4000") && !is_slurm_mem("0") && !is_slurm_mem("G")
        );
    }
}
