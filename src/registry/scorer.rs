//! A thread-owned scorer that follows a deployment's publications.
//!
//! Each call reads the deployment's publication count (one plain load) and,
//! only when it changed, the pointer (an `arc-swap` load: no lock, no
//! allocation), and scores on the version it read; the result says
//! which version that was. The scorer keeps per-version state (arena or
//! tract state) for the versions the registry keeps warm, so swapping back
//! and forth allocates only the first time a version is seen on this
//! thread. State for a retired version is dropped at the next version
//! change, which frees the version once no other user holds it.

use std::sync::Arc;

use super::{Lineage, ModelVersion};
use crate::error::{LoadError, ScoreError};
use crate::scorer::Scorer;

/// Scores rows on the version a [`Deployment`](super::Deployment) serves
/// (or on one pinned version), reporting which version scored each call.
pub struct VersionedScorer {
    /// `None` when pinned to `active`.
    lineage: Option<Arc<Lineage>>,
    active: Arc<ModelVersion>,
    scorer: Scorer,
    /// Warm state for other versions (most recently used last).
    cache: Vec<(Arc<ModelVersion>, Scorer)>,
    cache_cap: usize,
    switch_failures: u64,
    /// The lineage's publication count at the last look.
    seen: u64,
}

impl std::fmt::Debug for VersionedScorer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VersionedScorer")
            .field("name", &self.active.name())
            .field("version", &self.active.version())
            .field("pinned", &self.lineage.is_none())
            .finish_non_exhaustive()
    }
}

impl VersionedScorer {
    pub(crate) fn following(lineage: Arc<Lineage>) -> Result<VersionedScorer, LoadError> {
        let seen = lineage.publications();
        let active = lineage.current().load_full();
        let cache_cap = lineage.keep_warm();
        let mut s = VersionedScorer::pinned(active)?;
        s.cache = Vec::with_capacity(cache_cap + 1);
        s.cache_cap = cache_cap;
        s.lineage = Some(lineage);
        s.seen = seen;
        Ok(s)
    }

    pub(crate) fn pinned(version: Arc<ModelVersion>) -> Result<VersionedScorer, LoadError> {
        let scorer = version.model().scorer()?;
        Ok(VersionedScorer {
            lineage: None,
            active: version,
            scorer,
            cache: Vec::new(),
            cache_cap: 0,
            switch_failures: 0,
            seen: 0,
        })
    }

    /// The version the last call scored on (or will score on, if nothing
    /// has been published since).
    pub fn version(&self) -> &Arc<ModelVersion> {
        &self.active
    }

    /// Whether this scorer ignores publications.
    pub fn is_pinned(&self) -> bool {
        self.lineage.is_none()
    }

    /// How often a newly published version could not get scoring state on
    /// this thread (the scorer kept scoring the version it had, and says so
    /// in every result). Should stay 0.
    pub fn switch_failures(&self) -> u64 {
        self.switch_failures
    }

    /// Score one row into `out` on the serving version; returns that
    /// version's number. Checks the manifest's bounds, then the model's
    /// own validation. On error `out` is untouched.
    #[inline]
    pub fn score(&mut self, row: &[f32], out: &mut [f32]) -> Result<u64, ScoreError> {
        self.refresh();
        self.check_bounds(row, 0)?;
        self.scorer.score(row, out)?;
        Ok(self.active.version())
    }

    /// Score rows stored back to back (see [`Scorer::score_batch`]), all
    /// on one version; returns its number.
    pub fn score_batch(&mut self, rows: &[f32], out: &mut [f32]) -> Result<u64, ScoreError> {
        self.refresh();
        if self.active.bounds().is_some() {
            let w = self.active.model().info().input_width;
            for (i, row) in rows.chunks(w).enumerate() {
                self.check_bounds(row, i)?;
            }
        }
        self.scorer.score_batch(rows, out)?;
        Ok(self.active.version())
    }

    #[inline]
    fn check_bounds(&self, row: &[f32], row_ix: usize) -> Result<(), ScoreError> {
        if let Some(bounds) = self.active.bounds() {
            for (column, (v, (lo, hi))) in row.iter().zip(bounds).enumerate() {
                let v = f64::from(*v);
                // NaN compares false: the NaN policy decides about it.
                if v < *lo || v > *hi {
                    return Err(ScoreError::OutOfBounds {
                        row: row_ix,
                        column,
                    });
                }
            }
        }
        Ok(())
    }

    #[inline]
    fn refresh(&mut self) {
        let Some(lineage) = &self.lineage else {
            return;
        };
        // Nothing published since the last look: one plain load.
        let publications = lineage.publications();
        if publications == self.seen {
            return;
        }
        // Read before the pointer: a publication racing with this look is
        // seen (again) at the next call.
        self.seen = publications;
        let current = lineage.current().load();
        if Arc::ptr_eq(&current, &self.active) {
            return;
        }
        let next = Arc::clone(&current);
        drop(current);
        self.switch(next);
    }

    #[cold]
    fn switch(&mut self, next: Arc<ModelVersion>) {
        let scorer = match self.cache.iter().position(|(v, _)| Arc::ptr_eq(v, &next)) {
            Some(i) => self.cache.remove(i).1,
            None => match next.model().scorer() {
                Ok(s) => s,
                Err(_) => {
                    // Keep scoring the version we have; results say which.
                    // Try again at the next call.
                    self.switch_failures += 1;
                    self.seen = self.seen.wrapping_sub(1);
                    return;
                }
            },
        };
        let old_scorer = std::mem::replace(&mut self.scorer, scorer);
        let old = std::mem::replace(&mut self.active, next);
        self.cache.push((old, old_scorer));
        self.cache.retain(|(v, _)| !v.is_retired());
        while self.cache.len() > self.cache_cap {
            self.cache.remove(0);
        }
    }
}
