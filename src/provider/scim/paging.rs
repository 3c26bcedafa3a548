//! Paging through `GET /Users` and `GET /Groups` (RFC 7644 §3.4.2.4).
//!
//! Services cap pages below the `count` asked for (some at 100, some
//! default to 20 and ignore `count`), so the next `startIndex` advances by
//! the number of resources actually returned, never by `count`. Listing
//! stops at `totalResults` or at an empty page. A service that ignores
//! `startIndex` and answers the same page again would loop forever, so a
//! page holding only ids already seen is an error, and so is passing a
//! maximum number of pages.

use std::collections::HashSet;

use super::wire::encode_query_value;

/// The page size asked for when nothing else says.
pub const DEFAULT_PAGE_SIZE: u64 = 100;
/// The most pages read in one listing.
pub const DEFAULT_MAX_PAGES: u32 = 10_000;

/// One page to ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageRequest {
    /// The 1-based index of the first resource wanted.
    pub start_index: u64,
    /// How many resources are asked for.
    pub count: u64,
}

impl PageRequest {
    /// The query string (without `?`): `startIndex=…&count=…`, plus the
    /// encoded `filter` when given.
    #[must_use]
    pub fn query(&self, filter: Option<&str>) -> String {
        let mut query = format!("startIndex={}&count={}", self.start_index, self.count);
        if let Some(filter) = filter {
            query.push_str("&filter=");
            query.push_str(&encode_query_value(filter));
        }
        query
    }
}

/// Why a listing was abandoned.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PagingError {
    /// The page at `start_index` held only resources already listed: the
    /// service ignores `startIndex`.
    #[error(
        "the page at startIndex {start_index} repeats resources already listed (the service ignores `startIndex`)"
    )]
    NoProgress {
        /// Where the page was asked for.
        start_index: u64,
    },
    /// More than `max_pages` pages.
    #[error("the listing did not end within {max_pages} pages")]
    TooManyPages {
        /// The limit.
        max_pages: u32,
    },
}

/// The paging state of one listing.
#[derive(Clone, Debug)]
pub struct Pager {
    page_size: u64,
    max_pages: u32,
    next: Option<PageRequest>,
    pages: u32,
    returned: u64,
    total: Option<u64>,
    seen: HashSet<String>,
}

impl Pager {
    /// A listing asking for `page_size` resources per page (at least one),
    /// reading at most `max_pages` pages.
    #[must_use]
    pub fn new(page_size: u64, max_pages: u32) -> Self {
        let page_size = page_size.max(1);
        Self {
            page_size,
            max_pages,
            next: Some(PageRequest { start_index: 1, count: page_size }),
            pages: 0,
            returned: 0,
            total: None,
            seen: HashSet::new(),
        }
    }

    /// The page to ask for next; `None` once the listing is complete.
    #[must_use]
    pub fn next_request(&self) -> Option<PageRequest> {
        self.next
    }

    /// Records the answer to [`next_request`](Self::next_request): its
    /// `totalResults` and the ids of the resources on it (an empty id, from
    /// a resource without one, counts as new). Returns the next page to ask
    /// for, or `None` when the listing is complete.
    pub fn record(&mut self, total_results: Option<u64>, ids: &[&str]) -> Result<Option<PageRequest>, PagingError> {
        let Some(asked) = self.next else {
            return Ok(None);
        };
        self.pages += 1;
        if ids.is_empty() {
            self.next = None;
            return Ok(None);
        }
        let mut progress = false;
        for id in ids {
            progress |= id.is_empty() || self.seen.insert((*id).to_owned());
        }
        if !progress {
            self.next = None;
            return Err(PagingError::NoProgress { start_index: asked.start_index });
        }
        let returned = ids.len() as u64;
        self.returned += returned;
        self.total = total_results.or(self.total);
        let start_index = asked.start_index + returned;
        if self.total.is_some_and(|total| start_index > total) {
            self.next = None;
            return Ok(None);
        }
        if self.pages >= self.max_pages {
            self.next = None;
            return Err(PagingError::TooManyPages { max_pages: self.max_pages });
        }
        self.next = Some(PageRequest { start_index, count: self.page_size });
        Ok(self.next)
    }

    /// How many resources the pages held, repeats included.
    #[must_use]
    pub fn returned(&self) -> u64 {
        self.returned
    }

    /// The service's last `totalResults`.
    #[must_use]
    pub fn total(&self) -> Option<u64> {
        self.total
    }

    /// How many pages were read.
    #[must_use]
    pub fn pages(&self) -> u32 {
        self.pages
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An imitation service: users `u1…`, pages capped at `cap` whatever
    /// `count` asks, `totalResults` as it claims, and optionally deaf to
    /// `startIndex`.
    struct Service {
        users: Vec<String>,
        cap: u64,
        claimed_total: Option<u64>,
        ignores_start: bool,
    }

    impl Service {
        fn new(total: usize, cap: u64) -> Self {
            Self {
                users: (1..=total).map(|n| format!("u{n}")).collect(),
                cap,
                claimed_total: Some(total as u64),
                ignores_start: false,
            }
        }

        fn page(&self, request: PageRequest) -> Vec<&str> {
            let start = if self.ignores_start { 0 } else { (request.start_index - 1) as usize };
            let take = request.count.min(self.cap) as usize;
            self.users.iter().skip(start).take(take).map(String::as_str).collect()
        }
    }

    fn list(service: &Service, page_size: u64, max_pages: u32) -> Result<(Vec<String>, Pager), PagingError> {
        let mut pager = Pager::new(page_size, max_pages);
        let mut listed = Vec::new();
        while let Some(request) = pager.next_request() {
            let page = service.page(request);
            listed.extend(page.iter().map(|id| (*id).to_owned()));
            pager.record(service.claimed_total, &page)?;
        }
        Ok((listed, pager))
    }

    #[test]
    fn capped_pages_advance_by_what_was_returned() {
        // Asked for 100, given 20 (a service's default): nothing is skipped.
        let service = Service::new(95, 20);
        let (listed, pager) = list(&service, 100, 100).unwrap();
        assert_eq!(listed, service.users);
        assert_eq!(pager.pages(), 5);
        assert_eq!(pager.returned(), 95);
        assert_eq!(pager.total(), Some(95));
    }

    #[test]
    fn a_listing_ends_at_total_results_without_an_extra_request() {
        let service = Service::new(200, 100);
        let (listed, pager) = list(&service, 100, 100).unwrap();
        assert_eq!(listed.len(), 200);
        assert_eq!(pager.pages(), 2);
    }

    #[test]
    fn a_listing_ends_at_an_empty_page_when_the_total_is_absent_or_wrong() {
        let mut service = Service::new(30, 10);
        service.claimed_total = None;
        let (listed, pager) = list(&service, 10, 100).unwrap();
        assert_eq!(listed.len(), 30);
        assert_eq!(pager.pages(), 4);
        service.claimed_total = Some(1000);
        let (listed, _) = list(&service, 10, 100).unwrap();
        assert_eq!(listed.len(), 30);
        let empty = Service::new(0, 10);
        let (listed, pager) = list(&empty, 10, 100).unwrap();
        assert!(listed.is_empty());
        assert_eq!(pager.pages(), 1);
    }

    #[test]
    fn a_service_that_ignores_start_index_is_an_error_not_a_loop() {
        let mut service = Service::new(50, 10);
        service.ignores_start = true;
        assert_eq!(list(&service, 10, 100).unwrap_err(), PagingError::NoProgress { start_index: 11 });
    }

    #[test]
    fn too_many_pages_is_an_error() {
        let service = Service::new(50, 10);
        assert_eq!(list(&service, 10, 3).unwrap_err(), PagingError::TooManyPages { max_pages: 3 });
        // Exactly enough pages is fine.
        assert_eq!(list(&service, 10, 5).unwrap().0.len(), 50);
    }

    #[test]
    fn resources_without_ids_still_count_as_progress() {
        let mut pager = Pager::new(2, 10);
        assert_eq!(pager.record(None, &["", ""]).unwrap(), Some(PageRequest { start_index: 3, count: 2 }));
        assert_eq!(pager.record(None, &[]).unwrap(), None);
        assert_eq!(pager.next_request(), None);
        assert_eq!(pager.record(None, &["x"]).unwrap(), None);
    }

    #[test]
    fn the_query_carries_the_page_and_an_encoded_filter() {
        let request = PageRequest { start_index: 21, count: 20 };
        assert_eq!(request.query(None), "startIndex=21&count=20");
        assert_eq!(
            request.query(Some(r#"userName eq "a&b""#)),
            "startIndex=21&count=20&filter=userName%20eq%20%22a%26b%22"
        );
        assert_eq!(Pager::new(0, 1).next_request(), Some(PageRequest { start_index: 1, count: 1 }));
    }
}
