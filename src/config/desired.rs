//! What each address should look like: the resolved members, in address
//! order.
//!
//! Not a `BTreeMap`: the members are resolved run by run (a run per piece of
//! a large file, see `load`), and the runs stay where they were made, with
//! an index of their entries in address order beside them. A map built
//! from them held every entry twice at its peak (46 MB each for the
//! benchmark's 114,850 addresses) and moved each one again; this way each
//! run's entries are written once, while the parsed members they come from
//! are freed run by run. Plan walks it in order; the few lookups are binary
//! searches.
//!
//! Each entry's attributes are boxed where they are resolved: a plan that
//! takes the entries (a first plan, where every entry becomes a change)
//! hands each box on as it is, rather than copying some 400 bytes into a
//! new box while the runs still hold the originals (43 MB of the
//! benchmark's 100k first plan went to those copies).

use std::fmt;
use std::ops::Range;

use crate::address::Address;
use crate::attributes::Attributes;

/// An address and its attributes, boxed where they were resolved.
pub type Entry = (Address, Box<Attributes>);

/// The desired attributes of every configured address, in address order,
/// each address once.
#[derive(Clone, Default)]
pub struct Desired {
    /// The entries as resolved, in runs, in listing order.
    runs: Vec<Vec<Entry>>,
    /// Where each kept entry is (run, index), in address order.
    order: Vec<(usize, usize)>,
}

/// [`Desired::iter`]'s iterator: entries in address order.
#[derive(Clone)]
pub struct Iter<'a> {
    runs: &'a [Vec<Entry>],
    at: std::slice::Iter<'a, (usize, usize)>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a Address, &'a Attributes);

    fn next(&mut self) -> Option<Self::Item> {
        let &(run, index) = self.at.next()?;
        let (address, attributes) = &self.runs[run][index];
        Some((address, attributes))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.at.size_hint()
    }
}

impl ExactSizeIterator for Iter<'_> {}

/// [`Desired`]'s owning iterator: entries in address order, each moved out.
pub struct IntoIter {
    /// Each entry is taken as it is reached (`Option` costs no space
    /// beside the box, and collecting into it reuses each run's vector).
    runs: Vec<Vec<Option<Entry>>>,
    at: std::vec::IntoIter<(usize, usize)>,
}

impl Iterator for IntoIter {
    type Item = (Address, Box<Attributes>);

    fn next(&mut self) -> Option<Self::Item> {
        let (run, index) = self.at.next()?;
        self.runs[run][index].take()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.at.size_hint()
    }
}

impl ExactSizeIterator for IntoIter {}

impl IntoIterator for Desired {
    type Item = (Address, Box<Attributes>);
    type IntoIter = IntoIter;

    /// Every address and its attributes, in address order, moved out (each
    /// run is freed with the iterator).
    fn into_iter(self) -> IntoIter {
        let runs = self.runs.into_iter().map(|run| run.into_iter().map(Some).collect()).collect();
        IntoIter { runs, at: self.order.into_iter() }
    }
}

impl Desired {
    /// Nothing desired.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// From entries in listing order; of an address listed twice, the last
    /// entry is kept (as inserting them into a map one by one would).
    #[must_use]
    pub fn from_entries(entries: Vec<(Address, Attributes)>) -> Self {
        Self::from_runs(vec![entries
            .into_iter()
            .map(|(address, attributes)| (address, Box::new(attributes)))
            .collect()])
    }

    /// From runs of entries, the runs and their entries in listing order;
    /// of an address listed twice, the last entry is kept.
    #[must_use]
    pub fn from_runs(runs: Vec<Vec<Entry>>) -> Self {
        let keys: Vec<(&str, usize, usize)> = runs
            .iter()
            .enumerate()
            .flat_map(|(run, entries)| entries.iter().enumerate().map(move |(i, (a, _))| (a.as_str(), run, i)))
            .collect();
        // Run and index break ties, so equal addresses stay in listing
        // order and the last of them is the one kept.
        let mut keys = sorted(keys);
        keys.dedup_by(|later, earlier| {
            let same = later.0 == earlier.0;
            if same {
                std::mem::swap(later, earlier);
            }
            same
        });
        let order = keys.into_iter().map(|(_, run, index)| (run, index)).collect();
        Self { runs, order }
    }

    /// How many addresses.
    #[must_use]
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether no address is desired.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Every address and its attributes, in address order.
    #[must_use]
    pub fn iter(&self) -> Iter<'_> {
        Iter { runs: &self.runs, at: self.order.iter() }
    }

    fn address_at(&self, &(run, index): &(usize, usize)) -> &Address {
        &self.runs[run][index].0
    }

    /// The attributes `address` should have.
    #[must_use]
    pub fn get(&self, address: &Address) -> Option<&Attributes> {
        let found = self.order.binary_search_by(|at| self.address_at(at).cmp(address)).ok()?;
        let (run, index) = self.order[found];
        Some(&self.runs[run][index].1)
    }

    /// Whether `address` is configured.
    #[must_use]
    pub fn contains_key(&self, address: &Address) -> bool {
        self.get(address).is_some()
    }

    /// The addresses in `range`, in order.
    #[must_use]
    pub fn range(&self, range: Range<Address>) -> Iter<'_> {
        let start = self.order.partition_point(|at| *self.address_at(at) < range.start);
        let end = start + self.order[start..].partition_point(|at| *self.address_at(at) < range.end);
        Iter { runs: &self.runs, at: self.order[start..end].iter() }
    }
}

impl PartialEq for Desired {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Desired {}

impl fmt::Debug for Desired {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
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

/// Sorts `keys`, in two halves on two threads when there are two cores and
/// enough keys, then merges them: addresses share long prefixes, so the
/// comparisons are most of a large config's sort.
fn sorted<K: Ord + Copy + Send>(mut keys: Vec<K>) -> Vec<K> {
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
        // However the entries are cut into runs.
        for cut in [1, 2, 5] {
            let runs: Vec<Vec<_>> = entries()
                .chunks(cut)
                .map(|run| {
                    run.iter().map(|(address, attributes)| (address.clone(), Box::new(attributes.clone()))).collect()
                })
                .collect();
            assert_eq!(Desired::from_runs(runs), desired, "runs of {cut}");
        }
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
