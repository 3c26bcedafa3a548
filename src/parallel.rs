//! Work spread over the cores and answered in order: the config's files and
//! pieces are parsed, and its runs of members resolved, this way, and a
//! plan's configured addresses planned; large
//! outputs (the state file, a JSON plan) are turned into text on two
//! threads and written in order.

use std::io::{self, Write};
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

/// Takes `items` in chunks of `size` and turns each chunk into a result
/// with `work`, on this thread and a helper in turns, handing the results
/// to `take` in the items' order. Each thread's `work` is given a state of
/// its own, made by `new_state`. Only two chunks are out at a time, so the
/// items are never all taken out of `items` at once.
pub(crate) fn chunks_in_order<T: Send, R: Send, S>(
    items: impl Iterator<Item = T>,
    size: usize,
    new_state: impl Fn() -> S + Sync,
    work: impl Fn(&mut S, Vec<T>) -> R + Sync,
    mut take: impl FnMut(R),
) {
    let mut items = items.fuse();
    let mut next_chunk = || {
        let chunk: Vec<T> = items.by_ref().take(size).collect();
        (!chunk.is_empty()).then_some(chunk)
    };
    let mut mine = new_state();
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let Some(first) = next_chunk() else { return };
    let second = if cores > 1 { next_chunk() } else { None };
    let Some(second) = second else {
        take(work(&mut mine, first));
        while let Some(chunk) = next_chunk() {
            take(work(&mut mine, chunk));
        }
        return;
    };
    let (give, given) = std::sync::mpsc::sync_channel::<Vec<T>>(1);
    let (done, results) = std::sync::mpsc::sync_channel::<R>(1);
    let (new_state, work) = (&new_state, &work);
    std::thread::scope(|scope| {
        scope.spawn(move || {
            let mut state = new_state();
            for chunk in given {
                if done.send(work(&mut state, chunk)).is_err() {
                    return;
                }
            }
        });
        let mut pair = (first, Some(second));
        loop {
            let (first, second) = pair;
            let handed = second.is_some_and(|chunk| give.send(chunk).is_ok());
            take(work(&mut mine, first));
            if handed {
                // A helper that panicked is resumed when the scope ends.
                let Ok(result) = results.recv() else { break };
                take(result);
            }
            match next_chunk() {
                Some(first) => pair = (first, next_chunk()),
                None => break,
            }
        }
        drop(give);
    });
}

/// Writes the text `render(index, chunk, buffer)` puts into an empty
/// buffer for every chunk to `out`, in order. With two cores or more, a
/// helper renders every other chunk, a couple ahead at most, while this
/// thread renders the rest and writes: the whole text is never in memory at
/// once.
///
/// The buffers go round: each written buffer is emptied and handed back
/// for a later chunk. A fresh buffer of a few megabytes per chunk was new
/// memory each time, zeroed by the kernel page by page (the kernel's
/// zeroing went from 19% to 14% of a 100k JSON plan's profile with this).
pub(crate) fn write_in_order<T: Sync>(
    chunks: &[&[T]],
    render: impl Fn(usize, &[T], &mut Vec<u8>) -> io::Result<()> + Sync,
    out: &mut dyn Write,
) -> io::Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let mut mine = Vec::new();
    if cores < 2 || chunks.len() < 2 {
        for (index, chunk) in chunks.iter().enumerate() {
            mine.clear();
            render(index, chunk, &mut mine)?;
            out.write_all(&mine)?;
        }
        return Ok(());
    }
    let (done, received) = std::sync::mpsc::sync_channel::<io::Result<Vec<u8>>>(2);
    // Unbounded, and never more than the three buffers the helper can
    // have out: sending one back never waits.
    let (give_back, spare) = std::sync::mpsc::channel::<Vec<u8>>();
    let render = &render;
    std::thread::scope(|scope| {
        let received = received;
        scope.spawn(move || {
            for (index, chunk) in chunks.iter().enumerate().skip(1).step_by(2) {
                let mut buffer = spare.try_recv().unwrap_or_default();
                buffer.clear();
                let text = render(index, chunk, &mut buffer).map(|()| buffer);
                if done.send(text).is_err() {
                    return;
                }
            }
        });
        for (index, chunk) in chunks.iter().enumerate() {
            if index % 2 == 0 {
                mine.clear();
                render(index, chunk, &mut mine)?;
                out.write_all(&mine)?;
            } else {
                let text =
                    received.recv().map_err(|_| io::Error::other("the thread turning output into text stopped"))??;
                out.write_all(&text)?;
                // The helper may have finished; the buffer is then simply freed.
                give_back.send(text).ok();
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;
    use std::io::Write as _;

    use super::{chunks_in_order, map_in_order, write_in_order};

    #[test]
    fn chunks_come_back_in_order_each_thread_with_its_own_state() {
        for count in [0, 1, 7, 8, 9, 1000, 1001] {
            let mut seen = Vec::new();
            let mut chunk_sizes = Vec::new();
            chunks_in_order(
                0..count,
                8,
                || 0usize,
                |calls, chunk: Vec<usize>| {
                    *calls += 1;
                    chunk.into_iter().map(|n| n * n).collect::<Vec<_>>()
                },
                |squares| {
                    chunk_sizes.push(squares.len());
                    seen.extend(squares);
                },
            );
            assert_eq!(seen, (0..count).map(|n| n * n).collect::<Vec<_>>(), "{count} items");
            assert!(chunk_sizes.iter().all(|&size| size > 0 && size <= 8), "{chunk_sizes:?}");
        }
    }

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

    /// A disk that fills up after so many bytes.
    struct Full(usize);

    impl std::io::Write for Full {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            if self.0 < bytes.len() {
                return Err(std::io::Error::other("no space left"));
            }
            self.0 -= bytes.len();
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn chunks_are_written_in_order_and_a_failure_is_the_error() {
        let numbers: Vec<u32> = (0..10_000).collect();
        let chunks: Vec<&[u32]> = numbers.chunks(7).collect();
        let text = |index: usize, chunk: &[u32], out: &mut Vec<u8>| {
            assert!(out.is_empty(), "each chunk starts from an empty buffer");
            for n in chunk {
                write!(out, "{index}:{n} ")?;
            }
            Ok(())
        };
        let mut out = Vec::new();
        write_in_order(&chunks, text, &mut out).expect("written");
        let mut expected = String::new();
        for n in &numbers {
            write!(expected, "{}:{n} ", n / 7).expect("writing to a String cannot fail");
        }
        assert_eq!(String::from_utf8(out).expect("text"), expected);

        let failing = |index: usize, chunk: &[u32], out: &mut Vec<u8>| {
            if index == 5 {
                Err(std::io::Error::other("chunk 5 failed"))
            } else {
                text(index, chunk, out)
            }
        };
        let error = write_in_order(&chunks, failing, &mut Vec::new()).expect_err("chunk 5 fails");
        assert_eq!(error.to_string(), "chunk 5 failed");

        // The write fails part way, and the error comes back (the helper,
        // blocked on handing over its next chunk, is let go).
        let error = write_in_order(&chunks, text, &mut Full(1_000)).expect_err("the disk fills up");
        assert_eq!(error.to_string(), "no space left");
    }
}
