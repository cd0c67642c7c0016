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
    /// The insider model: the gE that knows a cell's true count (its own cells), by cell;
    /// [`NOBODY`] for a cell no gE knows (RD and Bund cells). Empty: no insider is modelled.
    pub owner: Vec<u32>,
    /// The district (RD) a gE's cells belong to, by cell; [`NOBODY`] where there is none. An
    /// insider sees its own district's table.
    pub district: Vec<u32>,
}

/// No owner, or no district.
pub const NOBODY: u32 = u32::MAX;

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

    /// The gE that knows this cell, if the insider model applies to it.
    #[must_use]
    pub fn owner_of(&self, cell: usize) -> Option<u32> {
        self.owner.get(cell).copied().filter(|&o| o != NOBODY)
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
