//! The published table as the suppression sees it: cells with values, additive relations
//! (a total equals the sum of its parts) and subset relations (a part is no larger than its whole).

/// `total = parts[0] + parts[1] + ...`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sum {
    pub total: usize,
    pub parts: Vec<usize>,
}

/// A table of non-negative counts and the relations an attacker knows.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub values: Vec<u64>,
    /// How aggregated a cell is (0 = innermost); secondary suppression prefers low ranks.
    pub rank: Vec<u8>,
    pub sums: Vec<Sum>,
    /// `(part, whole)`: part <= whole.
    pub subsets: Vec<(usize, usize)>,
    /// Cells that secondary suppression may not choose (empty: none).
    pub keep_published: Vec<bool>,
}

impl Table {
    #[must_use]
    pub fn len(&self) -> usize {
        self.values.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// May secondary suppression choose this cell?
    #[must_use]
    pub fn may_suppress(&self, cell: usize) -> bool {
        self.values[cell] > 0 && !self.keep_published.get(cell).copied().unwrap_or(false)
    }

    /// For each cell, the sums it takes part in (as part or total).
    #[must_use]
    pub fn sums_of_cells(&self) -> Vec<Vec<usize>> {
        let mut out = vec![Vec::new(); self.len()];
        for (i, s) in self.sums.iter().enumerate() {
            out[s.total].push(i);
            for &p in &s.parts {
                out[p].push(i);
            }
        }
        out
    }

    /// Checks that the values satisfy every relation (a bug guard before suppressing).
    #[must_use]
    pub fn is_consistent(&self) -> bool {
        self.sums
            .iter()
            .all(|s| s.parts.iter().map(|&p| self.values[p]).sum::<u64>() == self.values[s.total])
            && self
                .subsets
                .iter()
                .all(|&(a, b)| self.values[a] <= self.values[b])
    }
}
