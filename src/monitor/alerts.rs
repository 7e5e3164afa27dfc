//! Threshold alerts: which limits a sample exceeds, and the transitions (raised / cleared)
//! between consecutive samples, so a sustained condition is announced once and its end is
//! announced too. Pure logic.

use std::collections::BTreeMap;

use super::Sample;

/// Alert thresholds; `None` disables one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Thresholds {
    /// CPU use above this percentage.
    pub cpu_percent: Option<f64>,
    /// Memory use above this percentage.
    pub mem_percent: Option<f64>,
    /// Disk use above this percentage.
    pub disk_percent: Option<f64>,
    /// Open file descriptors of the node above this count.
    pub fds: Option<u64>,
    /// Alert when a `--node` endpoint does not answer.
    pub node_down: bool,
}

/// The alert kinds, in a stable order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AlertKind {
    /// CPU above threshold.
    Cpu,
    /// Memory above threshold.
    Memory,
    /// Disk above threshold.
    Disk,
    /// File descriptors above threshold.
    Fds,
    /// The node's control endpoint does not answer.
    NodeDown,
}

/// Every limit `s` exceeds, with a message.
pub fn exceeded(s: &Sample, t: &Thresholds) -> BTreeMap<AlertKind, String> {
    let mut out = BTreeMap::new();
    if let Some(limit) = t.cpu_percent
        && s.cpu_percent > limit
    {
        out.insert(
            AlertKind::Cpu,
            format!("cpu {:.1}% > {limit}%", s.cpu_percent),
        );
    }
    if let Some(limit) = t.mem_percent
        && s.mem_used_percent > limit
    {
        out.insert(
            AlertKind::Memory,
            format!("memory {:.1}% > {limit}%", s.mem_used_percent),
        );
    }
    if let Some(limit) = t.disk_percent
        && s.disk_used_percent > limit
    {
        out.insert(
            AlertKind::Disk,
            format!(
                "disk {} {:.1}% > {limit}%",
                s.disk_mount, s.disk_used_percent
            ),
        );
    }
    if let (Some(limit), Some(fds)) = (t.fds, s.fds)
        && fds > limit
    {
        out.insert(AlertKind::Fds, format!("fds {fds} > {limit}"));
    }
    if t.node_down
        && let Some(node) = &s.node
        && !node.reachable
    {
        out.insert(
            AlertKind::NodeDown,
            format!("node {} not answering", node.addr),
        );
    }
    out
}

/// A change in the set of active alerts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertEvent {
    /// A limit is newly exceeded.
    Raised(String),
    /// A previously exceeded limit is back to normal.
    Cleared(String),
}

/// Remembers the active alerts between samples.
#[derive(Debug, Default)]
pub struct AlertState {
    active: BTreeMap<AlertKind, String>,
}

impl AlertState {
    /// Feeds the alerts of a new sample; returns what was raised or cleared.
    pub fn update(&mut self, now: BTreeMap<AlertKind, String>) -> Vec<AlertEvent> {
        let mut events = Vec::new();
        for (kind, msg) in &self.active {
            if !now.contains_key(kind) {
                events.push(AlertEvent::Cleared(msg.clone()));
            }
        }
        for (kind, msg) in &now {
            if !self.active.contains_key(kind) {
                events.push(AlertEvent::Raised(msg.clone()));
            }
        }
        self.active = now;
        events
    }

    /// The messages of the active alerts.
    pub fn active(&self) -> Vec<String> {
        self.active.values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample(cpu: f64, fds: Option<u64>) -> Sample {
        Sample {
            cpu_percent: cpu,
            fds,
            ..Default::default()
        }
    }

    #[test]
    fn limits_are_strict() {
        let t = Thresholds {
            cpu_percent: Some(90.0),
            fds: Some(10),
            ..Default::default()
        };
        assert!(exceeded(&sample(90.0, Some(10)), &t).is_empty());
        let e = exceeded(&sample(90.5, Some(11)), &t);
        assert_eq!(
            e.keys().copied().collect::<Vec<_>>(),
            vec![AlertKind::Cpu, AlertKind::Fds]
        );
        assert!(exceeded(&sample(100.0, None), &Thresholds::default()).is_empty());
    }

    proptest! {
        #[test]
        fn raised_and_cleared_alternate(cpus in proptest::collection::vec(0.0f64..100.0, 1..60)) {
            let t = Thresholds { cpu_percent: Some(50.0), ..Default::default() };
            let mut state = AlertState::default();
            let mut up = false;
            for c in cpus {
                let events = state.update(exceeded(&sample(c, None), &t));
                let above = c > 50.0;
                match (up, above) {
                    (false, true) => prop_assert!(matches!(events.as_slice(), [AlertEvent::Raised(_)])),
                    (true, false) => prop_assert!(matches!(events.as_slice(), [AlertEvent::Cleared(_)])),
                    _ => prop_assert!(events.is_empty()),
                }
                up = above;
                prop_assert_eq!(state.active().len(), usize::from(above));
            }
        }
    }
}
