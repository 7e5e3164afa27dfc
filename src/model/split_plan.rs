//! Balanced assignment of classes to groups by the longest-processing-time-first (LPT) greedy
//! rule, as LDAWT's `SplitParquet.py` does, but deterministic (ties broken by class name, then
//! by lowest group index) and without relabelling classes. Used by `ldawt split` and by the
//! seeder's `--group-col` sharding.
//!
//! LPT guarantees `max_load <= (4/3 - 1/(3m)) * OPT`, and in absolute terms
//! `max_load - min_load <= largest single class weight` whenever there are at least as many
//! classes as groups.

use std::collections::BTreeMap;

/// One class and its weight (row count, or bytes with `--balance bytes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassWeight {
    /// The class value; `None` is the null class, kept as a class of its own.
    pub class: Option<String>,
    /// Rows of the class (bytes with `--balance bytes`): what the groups are balanced on.
    pub weight: u64,
}

/// The result of planning: which group (0-based) each class goes to, and each group's load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitPlan {
    /// Class → group index (0-based).
    pub assignment: BTreeMap<Option<String>, usize>,
    /// Total weight per group.
    pub loads: Vec<u64>,
    /// Number of classes per group.
    pub classes_per_group: Vec<usize>,
}

impl SplitPlan {
    /// Largest group load divided by the smallest (non-empty groups only); 1.0 when balanced.
    pub fn imbalance(&self) -> f64 {
        let max = self.loads.iter().copied().max().unwrap_or(0);
        let min = self
            .loads
            .iter()
            .copied()
            .filter(|l| *l > 0)
            .min()
            .unwrap_or(0);
        if min == 0 {
            return if max == 0 { 1.0 } else { f64::INFINITY };
        }
        max as f64 / min as f64
    }
}

/// Assigns every class to one of `groups` groups with the LPT rule. `groups` must be ≥ 1.
/// Classes are taken by weight descending, ties by class name ascending (null first); each goes
/// to the currently lightest group, ties to the lowest index.
pub fn plan_lpt(classes: &[ClassWeight], groups: usize) -> SplitPlan {
    let groups = groups.max(1);
    let mut order: Vec<&ClassWeight> = classes.iter().collect();
    order.sort_by(|a, b| b.weight.cmp(&a.weight).then_with(|| a.class.cmp(&b.class)));
    let mut loads = vec![0u64; groups];
    let mut classes_per_group = vec![0usize; groups];
    let mut assignment = BTreeMap::new();
    for c in order {
        let (idx, _) = loads
            .iter()
            .enumerate()
            .min_by(|(ia, la), (ib, lb)| la.cmp(lb).then(ia.cmp(ib)))
            .unwrap_or((0, &0));
        loads[idx] += c.weight;
        classes_per_group[idx] += 1;
        assignment.insert(c.class.clone(), idx);
    }
    SplitPlan {
        assignment,
        loads,
        classes_per_group,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cw(name: &str, w: u64) -> ClassWeight {
        ClassWeight {
            class: Some(name.to_string()),
            weight: w,
        }
    }

    #[test]
    fn lpt_balances_a_textbook_case() {
        let plan = plan_lpt(
            &[cw("a", 7), cw("b", 5), cw("c", 4), cw("d", 3), cw("e", 1)],
            2,
        );
        assert_eq!(plan.loads.iter().sum::<u64>(), 20);
        assert_eq!(plan.loads, vec![10, 10]);
        assert_eq!(plan.assignment[&Some("a".into())], 0);
        assert_eq!(plan.assignment[&Some("b".into())], 1);
    }

    #[test]
    fn null_class_is_a_class_of_its_own() {
        let classes = vec![
            ClassWeight {
                class: None,
                weight: 3,
            },
            cw("x", 3),
        ];
        let plan = plan_lpt(&classes, 2);
        assert_eq!(plan.assignment.len(), 2);
        assert_eq!(plan.loads, vec![3, 3]);
    }

    #[test]
    fn more_groups_than_classes_leaves_empty_groups() {
        let plan = plan_lpt(&[cw("a", 2)], 3);
        assert_eq!(plan.loads, vec![2, 0, 0]);
        assert_eq!(plan.imbalance(), 1.0);
    }

    proptest! {
        #[test]
        fn lpt_is_a_partition_within_the_greedy_bound(
            weights in proptest::collection::vec(1u64..500, 1..200),
            groups in 1usize..12,
        ) {
            let classes: Vec<ClassWeight> =
                weights.iter().enumerate().map(|(i, w)| cw(&format!("c{i}"), *w)).collect();
            let plan = plan_lpt(&classes, groups);
            prop_assert_eq!(plan.assignment.len(), classes.len());
            prop_assert_eq!(plan.loads.iter().sum::<u64>(), weights.iter().sum::<u64>());
            let max = *plan.loads.iter().max().unwrap();
            let min = *plan.loads.iter().min().unwrap();
            let biggest = *weights.iter().max().unwrap();
            // Greedy list scheduling: the last item placed on the fullest group went to the
            // lightest group at that time, so max - min <= that item's weight <= biggest.
            prop_assert!(max - min <= biggest);
            // Deterministic.
            prop_assert_eq!(plan_lpt(&classes, groups), plan);
        }
    }
}
