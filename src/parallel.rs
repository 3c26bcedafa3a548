//! Work spread over the cores and answered in order: the config's files and
//! pieces are parsed, and its runs of members resolved, this way.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

/// Runs `work` on every item, on as many threads as there are cores (the
/// calling thread is one of them, and runs `alongside` first), and answers
/// the results in the items' order with what `alongside` gave. One item, or
/// one core, is done on the calling thread alone.
pub(crate) fn map_in_order<T: Send, R: Send, A>(
    items: Vec<T>,
    work: impl Fn(T) -> R + Sync,
    alongside: impl FnOnce() -> A,
) -> (Vec<R>, A) {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let workers = cores.min(items.len());
    if workers <= 1 {
        let results = items.into_iter().map(&work).collect();
        return (results, alongside());
    }
    let count = items.len();
    // Each item is taken once, by whichever thread gets to it first.
    let items: Vec<Mutex<Option<T>>> = items.into_iter().map(|item| Mutex::new(Some(item))).collect();
    let next = AtomicUsize::new(0);
    let work_some = || {
        let mut done = Vec::new();
        loop {
            let index = next.fetch_add(1, Ordering::Relaxed);
            let Some(slot) = items.get(index) else { return done };
            let item = slot.lock().unwrap_or_else(PoisonError::into_inner).take().expect("each item is taken once");
            done.push((index, work(item)));
        }
    };
    let mut slots: Vec<Option<R>> = std::iter::repeat_with(|| None).take(count).collect();
    let also = std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..workers).map(|_| scope.spawn(work_some)).collect();
        let also = alongside();
        let mut done = work_some();
        for helper in helpers {
            done.extend(helper.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)));
        }
        for (index, result) in done {
            slots[index] = Some(result);
        }
        also
    });
    (slots.into_iter().map(|slot| slot.expect("every item is done once")).collect(), also)
}

#[cfg(test)]
mod tests {
    use super::map_in_order;

    #[test]
    fn results_come_back_in_order_whatever_thread_made_them() {
        let items: Vec<usize> = (0..1000).collect();
        let (squares, also) = map_in_order(items, |n| n * n, || "alongside");
        assert_eq!(squares, (0..1000).map(|n| n * n).collect::<Vec<_>>());
        assert_eq!(also, "alongside");
        let (none, also) = map_in_order(Vec::<usize>::new(), |n| n, || 7);
        assert!(none.is_empty());
        assert_eq!(also, 7);
    }
}
