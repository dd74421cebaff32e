//! A consistent hash ring: each member owns the arcs before its virtual nodes' points,
//! so that a member joining or leaving moves only its own share of the resources. Points
//! and keys are hashed with SHA-256 (the first eight bytes): every agent, whatever its
//! build, places them the same.

use sha2::{Digest, Sha256};

/// Virtual nodes per member: enough for shares within a few percent of even.
pub const VIRTUAL_NODES: usize = 128;

/// The ring of one group's members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashRing {
    /// Points, sorted, each with the index of its member.
    points: Vec<(u64, usize)>,
    members: Vec<String>,
}

fn hash(text: &str) -> u64 {
    let digest = Sha256::digest(text.as_bytes());
    u64::from_be_bytes(digest[..8].try_into().expect("eight bytes"))
}

impl HashRing {
    /// The ring of `members` (their order does not matter).
    pub fn new(members: &[String]) -> Self {
        let mut members = members.to_vec();
        members.sort();
        members.dedup();
        let mut points = Vec::with_capacity(members.len() * VIRTUAL_NODES);
        for (index, member) in members.iter().enumerate() {
            for node in 0..VIRTUAL_NODES {
                points.push((hash(&format!("{member}#{node}")), index));
            }
        }
        points.sort_unstable();
        Self { points, members }
    }

    /// The members, sorted.
    pub fn members(&self) -> &[String] {
        &self.members
    }

    /// The member that owns `key` (a resource's stable id); none on an empty ring.
    pub fn owner(&self, key: &str) -> Option<&str> {
        if self.points.is_empty() {
            return None;
        }
        let point = hash(key);
        let at = self.points.partition_point(|(p, _)| *p < point);
        let (_, member) = self.points[at % self.points.len()];
        Some(&self.members[member])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn shares_are_even_and_a_joining_member_takes_only_its_own() {
        let keys: Vec<String> = (0..10_000).map(|i| format!("image-{i:05}")).collect();
        let three = HashRing::new(&members(&["agent-a", "agent-b", "agent-c"]));
        let four = HashRing::new(&members(&["agent-a", "agent-b", "agent-c", "agent-d"]));
        let share = |ring: &HashRing, member: &str| keys.iter().filter(|k| ring.owner(k) == Some(member)).count();
        for member in ["agent-a", "agent-b", "agent-c"] {
            let share = share(&three, member);
            assert!((2_900..=3_800).contains(&share), "{member}: {share} of 10000");
        }
        let moved = keys.iter().filter(|k| three.owner(k) != four.owner(k)).count();
        // Ideally a quarter: what the new member takes, and nothing between the others.
        assert!((1_900..=3_000).contains(&moved), "{moved} of 10000 moved");
        assert!(keys.iter().all(|k| three.owner(k) == four.owner(k) || four.owner(k) == Some("agent-d")));
    }

    #[test]
    fn the_ring_is_the_same_for_every_agent() {
        let one = HashRing::new(&members(&["b", "a", "c"]));
        let other = HashRing::new(&members(&["c", "a", "b", "a"]));
        assert_eq!(one, other);
        assert_eq!(one.owner("volume-1"), other.owner("volume-1"));
        assert_eq!(HashRing::new(&[]).owner("x"), None);
        // Fixed by SHA-256, not by a build's hasher.
        assert_eq!(hash("pollen"), 0x1bd0_4e8c_6895_39b6);
    }
}
