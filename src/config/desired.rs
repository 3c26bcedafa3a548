//! What each address should look like: the resolved members, in address
//! order.
//!
//! A sorted vector rather than a `BTreeMap`: the members are resolved into
//! a vector and sorted once, and a map built from that vector held both at
//! its peak (46 MB each for the benchmark's 114,850 addresses) and copied
//! every entry again. Plan walks it in order; the few lookups are binary
//! searches.

use std::ops::Range;

use crate::address::Address;
use crate::attributes::Attributes;

/// The desired attributes of every configured address, sorted by address,
/// each address once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Desired {
    entries: Vec<(Address, Attributes)>,
}

/// [`Desired::iter`]'s iterator.
pub type Iter<'a> =
    std::iter::Map<std::slice::Iter<'a, (Address, Attributes)>, fn(&(Address, Attributes)) -> (&Address, &Attributes)>;

fn pair(entry: &(Address, Attributes)) -> (&Address, &Attributes) {
    (&entry.0, &entry.1)
}

impl Desired {
    /// Nothing desired.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// From entries in any order; of an address listed twice, the last
    /// entry is kept (as inserting them into a map one by one would).
    #[must_use]
    pub fn from_entries(mut entries: Vec<(Address, Attributes)>) -> Self {
        sort_keeping_order(&mut entries);
        // Equal addresses are adjacent and in listing order: keep the last
        // (`dedup_by` drops the later one, so it first takes its place).
        entries.dedup_by(|later, earlier| {
            let same = later.0 == earlier.0;
            if same {
                std::mem::swap(later, earlier);
            }
            same
        });
        Self { entries }
    }

    /// How many addresses.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no address is desired.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every address and its attributes, in address order.
    pub fn iter(&self) -> Iter<'_> {
        self.entries.iter().map(pair as fn(&(Address, Attributes)) -> (&Address, &Attributes))
    }

    /// The attributes `address` should have.
    #[must_use]
    pub fn get(&self, address: &Address) -> Option<&Attributes> {
        self.entries.binary_search_by(|(a, _)| a.cmp(address)).ok().map(|i| &self.entries[i].1)
    }

    /// Whether `address` is configured.
    #[must_use]
    pub fn contains_key(&self, address: &Address) -> bool {
        self.get(address).is_some()
    }

    /// The addresses in `range`, in order.
    pub fn range(&self, range: Range<Address>) -> Iter<'_> {
        let start = self.entries.partition_point(|(a, _)| *a < range.start);
        let end = start + self.entries[start..].partition_point(|(a, _)| *a < range.end);
        self.entries[start..end].iter().map(pair as fn(&(Address, Attributes)) -> (&Address, &Attributes))
    }
}

impl<'a> IntoIterator for &'a Desired {
    type Item = (&'a Address, &'a Attributes);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl FromIterator<(Address, Attributes)> for Desired {
    fn from_iter<I: IntoIterator<Item = (Address, Attributes)>>(iter: I) -> Self {
        Self::from_entries(iter.into_iter().collect())
    }
}

/// Sorts by address, equal addresses staying in listing order.
///
/// Only compact (address, index) pairs are sorted, then the entries are
/// permuted in place, so each large entry moves at most a few times rather
/// than on every step of the sort.
fn sort_keeping_order(entries: &mut [(Address, Attributes)]) {
    let keys: Vec<(&str, usize)> = entries.iter().enumerate().map(|(i, (a, _))| (a.as_str(), i)).collect();
    // The index breaks ties, so equal addresses stay in listing order.
    let mut order: Vec<usize> = sorted(keys).into_iter().map(|(_, i)| i).collect();
    // Afterwards `entries[i]` holds what was at `order[i]`: follow each cycle.
    for start in 0..order.len() {
        let mut current = start;
        loop {
            let next = order[current];
            order[current] = current;
            if next == start || next == current {
                break;
            }
            entries.swap(current, next);
            current = next;
        }
    }
}

/// Sorts `keys`, in two halves on two threads when there are two cores and
/// enough keys, then merges them: addresses share long prefixes, so the
/// comparisons are most of a large config's sort.
fn sorted(mut keys: Vec<(&str, usize)>) -> Vec<(&str, usize)> {
    const PARALLEL_FROM: usize = 1 << 14;
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    if cores < 2 || keys.len() < PARALLEL_FROM {
        keys.sort_unstable();
        return keys;
    }
    let half = keys.len() / 2;
    let (left, right) = keys.split_at_mut(half);
    std::thread::scope(|scope| {
        let helper = scope.spawn(|| right.sort_unstable());
        left.sort_unstable();
        helper.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    });
    let (left, right) = keys.split_at(half);
    let mut merged = Vec::with_capacity(keys.len());
    let (mut l, mut r) = (0, 0);
    while l < left.len() && r < right.len() {
        if right[r] < left[l] {
            merged.push(right[r]);
            r += 1;
        } else {
            merged.push(left[l]);
            l += 1;
        }
    }
    merged.extend_from_slice(&left[l..]);
    merged.extend_from_slice(&right[r..]);
    merged
}

#[cfg(test)]
mod tests {
    use super::Desired;
    use crate::address::Address;
    use crate::attributes::Attributes;

    fn entries() -> Vec<(Address, Attributes)> {
        let mut entries = Vec::new();
        for i in [5usize, 3, 9, 3, 0, 7, 1, 9, 2, 8, 6, 4, 5] {
            let email = format!("m{i}@example.com");
            let attributes =
                Attributes { email: email.clone(), name: Some(format!("#{}", entries.len())), ..Attributes::default() };
            entries.push((Address::new(if i % 2 == 0 { "a" } else { "a-b" }, &email), attributes));
        }
        entries
    }

    #[test]
    fn it_is_what_inserting_into_a_map_one_by_one_gives() {
        let mut expected = std::collections::BTreeMap::new();
        for (address, attributes) in entries() {
            expected.insert(address, attributes);
        }
        let desired = Desired::from_entries(entries());
        assert_eq!(desired.len(), expected.len());
        assert!(desired.iter().eq(expected.iter()));
        for (address, attributes) in &expected {
            assert_eq!(desired.get(address), Some(attributes));
        }
        assert!(!desired.contains_key(&Address::new("a", "m1@example.com")));
    }

    #[test]
    fn a_large_sort_on_two_threads_is_a_sort() {
        let texts: Vec<String> =
            (0..40_000u64).map(|i| format!("p/{:x}@example.com", i.wrapping_mul(0x9e37_79b9_7f4a_7c15))).collect();
        let keys: Vec<(&str, usize)> = texts.iter().enumerate().map(|(i, t)| (t.as_str(), i % 7)).collect();
        let mut expected = keys.clone();
        expected.sort_unstable();
        assert_eq!(super::sorted(keys), expected);
    }

    #[test]
    fn a_provider_range_is_that_provider_s_addresses() {
        let desired = Desired::from_entries(entries());
        let expected = desired.iter().filter(|(a, _)| a.provider() == "a").count();
        assert!(expected > 0);
        assert_eq!(desired.range(Address::provider_range("a")).count(), expected);
        assert!(desired.range(Address::provider_range("a")).all(|(a, _)| a.provider() == "a"));
        assert_eq!(desired.range(Address::provider_range("zzz")).count(), 0);
        assert_eq!(Desired::new().range(Address::provider_range("a")).count(), 0);
    }
}
