//! Server-side partition assignment. Pure and deterministic.
//!
//! Every partition of every subscribed topic goes to exactly one member that subscribes
//! to its topic. Topics are dealt most constrained first (fewest subscribers, then by
//! name), partitions in ascending order, each to the subscribed member holding the fewest
//! partitions so far, ties going to the smallest member id.
//! With identical subscriptions this is round-robin over all partitions (6 partitions
//! over 4 members: 2-2-1-1); with different subscriptions it stays as even as the
//! subscriptions allow. The same input always gives the same output.

use std::collections::{BTreeMap, BTreeSet};

use super::PARTITIONS_PER_TOPIC_MAX;

/// One member's partitions: topics sorted, partitions ascending.
pub type Assignment = Vec<(String, Vec<i32>)>;

/// Spreads the partitions of all subscribed topics over `members`.
///
/// `members` pairs a member id with its subscription (topic, partition count). When
/// members disagree on a topic's partition count (metadata raced), the largest wins.
/// Counts are clamped to `0..=PARTITIONS_PER_TOPIC_MAX`. Every member id in the input
/// gets an entry in the output, possibly empty.
pub fn assign(members: &[(String, Vec<(String, i32)>)]) -> BTreeMap<String, Assignment> {
    // Topic → (partition count, subscribed member ids in sorted order).
    let mut topics: BTreeMap<&str, (i32, BTreeSet<&str>)> = BTreeMap::new();
    for (member, subscription) in members {
        for (topic, count) in subscription {
            let entry = topics.entry(topic.as_str()).or_insert((0, BTreeSet::new()));
            entry.0 = entry.0.max((*count).clamp(0, PARTITIONS_PER_TOPIC_MAX));
            entry.1.insert(member.as_str());
        }
    }

    let mut load: BTreeMap<&str, usize> = members.iter().map(|(m, _)| (m.as_str(), 0)).collect();
    let mut out: BTreeMap<String, BTreeMap<&str, Vec<i32>>> = members
        .iter()
        .map(|(m, _)| (m.clone(), BTreeMap::new()))
        .collect();
    // Most constrained topics first, so flexible ones can even out the load after.
    let mut order: Vec<(&str, &(i32, BTreeSet<&str>))> =
        topics.iter().map(|(t, v)| (*t, v)).collect();
    order.sort_by_key(|(t, (_, subs))| (subs.len(), *t));
    for (topic, (count, subscribers)) in order {
        for partition in 0..*count {
            // Least loaded subscriber; BTreeSet order breaks ties by member id.
            let Some(owner) = subscribers
                .iter()
                .copied()
                .min_by_key(|m| load.get(m).copied())
            else {
                continue;
            };
            if let Some(n) = load.get_mut(owner) {
                *n += 1;
            }
            if let Some(mine) = out.get_mut(owner) {
                mine.entry(topic).or_default().push(partition);
            }
        }
    }
    out.into_iter()
        .map(|(m, per_topic)| {
            let assignment = per_topic
                .into_iter()
                .map(|(t, ps)| (t.to_string(), ps))
                .collect();
            (m, assignment)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(n: usize, topics: &[(&str, i32)]) -> Vec<(String, Vec<(String, i32)>)> {
        (0..n)
            .map(|i| {
                let subs = topics.iter().map(|(t, c)| (t.to_string(), *c)).collect();
                (format!("m{i}"), subs)
            })
            .collect()
    }

    fn counts(a: &BTreeMap<String, Assignment>) -> Vec<usize> {
        a.values()
            .map(|v| v.iter().map(|(_, ps)| ps.len()).sum())
            .collect()
    }

    /// Every (topic, partition) appears exactly once across all members.
    fn assert_each_partition_once(a: &BTreeMap<String, Assignment>, topics: &[(&str, i32)]) {
        let mut seen: Vec<(String, i32)> = a
            .values()
            .flat_map(|v| {
                v.iter()
                    .flat_map(|(t, ps)| ps.iter().map(move |p| (t.clone(), *p)))
            })
            .collect();
        seen.sort();
        let mut want: Vec<(String, i32)> = topics
            .iter()
            .flat_map(|(t, c)| (0..*c).map(move |p| (t.to_string(), p)))
            .collect();
        want.sort();
        assert_eq!(seen, want);
    }

    #[test]
    fn six_partitions_over_three_members_is_two_each_and_every_partition_once() {
        let topics = [("orders", 6)];
        let a = assign(&members(3, &topics));
        assert_eq!(counts(&a), vec![2, 2, 2]);
        assert_each_partition_once(&a, &topics);
    }

    #[test]
    fn six_partitions_of_two_topics_over_four_members_is_two_two_one_one() {
        let topics = [("a", 3), ("b", 3)];
        let a = assign(&members(4, &topics));
        assert_eq!(counts(&a), vec![2, 2, 1, 1]);
        assert_each_partition_once(&a, &topics);
    }

    #[test]
    fn assignment_is_deterministic_whatever_the_input_order() {
        let topics = [("a", 5), ("b", 7)];
        let mut ms = members(3, &topics);
        let first = assign(&ms);
        ms.reverse();
        assert_eq!(assign(&ms), first);
    }

    #[test]
    fn partitions_go_only_to_subscribers_and_the_load_stays_even() {
        let ms = vec![
            ("m0".to_string(), vec![("a".to_string(), 4)]),
            (
                "m1".to_string(),
                vec![("a".to_string(), 4), ("b".to_string(), 2)],
            ),
        ];
        let a = assign(&ms);
        // "b" is dealt first (one subscriber), then "a" evens the load out: 3-3.
        assert_eq!(a["m0"], vec![("a".to_string(), vec![0, 1, 2])]);
        assert_eq!(
            a["m1"],
            vec![("a".to_string(), vec![3]), ("b".to_string(), vec![0, 1])]
        );
    }

    #[test]
    fn more_members_than_partitions_leaves_some_empty() {
        let a = assign(&members(3, &[("t", 1)]));
        assert_eq!(counts(&a), vec![1, 0, 0]);
    }
}
