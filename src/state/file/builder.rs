//! Building the map of a whole state's resources as they are read, in
//! the memory a map needs and little more.

use std::collections::BTreeMap;

use crate::address::Address;
use crate::state::Resource;

/// The resources of a state file, with the first address that appeared
/// twice, if any.
pub(super) struct Resources {
    pub(super) map: BTreeMap<Address, Resource>,
    pub(super) twice: Option<Address>,
}

/// Builds the resources map as records are read.
///
/// A state file is sorted by address. Inserting sorted records one by one
/// leaves the map's nodes about half empty (and shifts large records around
/// at every split); building from sorted runs fills them. So records are
/// gathered in runs of [`RUN`], each run built bottom-up (`from_iter` checks
/// the order in one pass) and merged into a stack of maps like a binary
/// counter (`append` of sorted, disjoint maps rebuilds them bottom-up too):
/// each record moves a few times, and at most one run is held apart from
/// the maps. Once a record comes out of order (a hand-edited file) or twice,
/// the rest is inserted one by one, as a plain loop would.
pub(super) struct ResourcesBuilder {
    run: Vec<(Address, Resource)>,
    run_len: usize,
    levels: Vec<BTreeMap<Address, Resource>>,
    /// Out of order: everything is in `levels[0]`, inserted one by one.
    unordered: bool,
    twice: Option<Address>,
}

/// Records per sorted run.
const RUN: usize = 8 * 1024;

impl ResourcesBuilder {
    pub(super) fn new() -> Self {
        Self::with_run(RUN)
    }

    fn with_run(run_len: usize) -> Self {
        ResourcesBuilder { run: Vec::new(), run_len, levels: Vec::new(), unordered: false, twice: None }
    }

    fn last(&self) -> Option<&Address> {
        self.run.last().map(|(a, _)| a).or_else(|| self.levels.last().and_then(|m| m.last_key_value()).map(|(a, _)| a))
    }

    pub(super) fn push(&mut self, resource: Resource) {
        let address = resource.address.clone();
        if !self.unordered && self.last().is_some_and(|last| *last >= address) {
            let map = self.merged();
            self.levels = vec![map];
            self.unordered = true;
        }
        if self.unordered {
            if let Some(old) = self.levels[0].insert(address, resource) {
                self.twice.get_or_insert(old.address);
            }
            return;
        }
        self.run.push((address, resource));
        if self.run.len() >= self.run_len {
            self.flush();
        }
    }

    /// Builds the pending run and carries it up the stack.
    fn flush(&mut self) {
        if self.run.is_empty() {
            return;
        }
        let mut map: BTreeMap<Address, Resource> = self.run.drain(..).collect();
        while self.levels.last().is_some_and(|top| top.len() <= map.len()) {
            let mut lower = self.levels.pop().expect("checked");
            lower.append(&mut map);
            map = lower;
        }
        self.levels.push(map);
    }

    /// Everything as one map.
    fn merged(&mut self) -> BTreeMap<Address, Resource> {
        self.flush();
        let mut map = self.levels.pop().unwrap_or_default();
        while let Some(mut lower) = self.levels.pop() {
            lower.append(&mut map);
            map = lower;
        }
        map
    }

    pub(super) fn finish(mut self) -> Resources {
        Resources { map: self.merged(), twice: self.twice }
    }
}

#[cfg(test)]
mod tests {
    use super::ResourcesBuilder;
    use crate::state::file::tests::resource;
    use crate::state::Resource;

    #[test]
    fn the_builder_keeps_insertion_semantics() {
        let all: Vec<Resource> = (0..50).map(resource).collect();
        let mut sorted = all.clone();
        sorted.sort_by(|a, b| a.address.cmp(&b.address));
        // Sorted, through several runs and levels.
        let mut builder = ResourcesBuilder::with_run(3);
        sorted.iter().cloned().for_each(|r| builder.push(r));
        let built = builder.finish();
        assert!(built.twice.is_none());
        assert_eq!(built.map.values().cloned().collect::<Vec<_>>(), sorted);
        // Out of order, with a duplicate: the first address seen twice is named.
        let mut shuffled = sorted.clone();
        shuffled.swap(10, 40);
        shuffled.insert(45, sorted[20].clone());
        shuffled.insert(46, sorted[5].clone());
        let mut builder = ResourcesBuilder::with_run(4);
        shuffled.iter().cloned().for_each(|r| builder.push(r));
        let built = builder.finish();
        assert_eq!(built.twice.as_ref(), Some(&sorted[20].address));
        assert_eq!(built.map.len(), 50);
    }
}
