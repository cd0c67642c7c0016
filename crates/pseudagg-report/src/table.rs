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
    /// What each cell is (empty: every cell is [`Kind::Published`]). Reports protected together
    /// add cells that are never published: the atoms their cells are sums of, and the groups of
    /// people two nested cells differ by.
    pub kind: Vec<Kind>,
    /// Cells suppressed from the start (empty: none): those an earlier release of the month
    /// suppressed, and a regenerated report's pattern as released.
    pub preset: Vec<bool>,
}

/// What a cell of a [`Table`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kind {
    /// A cell of a published table: published, or suppressed when small or to protect another.
    #[default]
    Published,
    /// A count that is never published and need not be protected (an atom of the reports of a
    /// month: the people with one combination of every definition's predicates, in one gE; or a
    /// cell of a released table that its release did not show). It may be 0.
    Atom,
    /// A group of people that is never published but must be protected like a published cell:
    /// what a cell of one report counts beyond a cell of another that it contains. It may be 0.
    Group,
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
        self.values[cell] > 0
            && !self.keep_published.get(cell).copied().unwrap_or(false)
            && self.kind_of(cell) == Kind::Published
    }

    /// What the cell is.
    #[must_use]
    pub fn kind_of(&self, cell: usize) -> Kind {
        self.kind.get(cell).copied().unwrap_or_default()
    }

    /// The least value the cell can take once suppressed: 1 for a published table's cell (zeros
    /// are published, so a suppressed cell is known to be positive), 0 for one never published.
    #[must_use]
    pub fn floor(&self, cell: usize) -> f64 {
        match self.kind_of(cell) {
            Kind::Published => 1.0,
            Kind::Atom | Kind::Group => 0.0,
        }
    }

    /// Must the cell be protected at this threshold: a published table's cell or a group of
    /// people with a count from 1 to `threshold - 1`.
    #[must_use]
    pub fn is_primary(&self, cell: usize, threshold: u64) -> bool {
        let v = self.values[cell];
        v > 0 && v < threshold && self.kind_of(cell) != Kind::Atom
    }

    /// May an attacker know the cell's count exactly without harm: an atom, or a group of people
    /// of no small count (none, or at least `threshold`). A suppressed cell of a published table
    /// must not be known exactly (a primary or secondary cell), nor a small group.
    #[must_use]
    pub fn may_be_known(&self, cell: usize, threshold: u64) -> bool {
        match self.kind_of(cell) {
            Kind::Published => false,
            Kind::Atom => true,
            Kind::Group => !self.is_primary(cell, threshold),
        }
    }

    /// Is the cell suppressed before any rule runs: never published, or preset.
    #[must_use]
    pub fn starts_suppressed(&self, cell: usize) -> bool {
        self.kind_of(cell) != Kind::Published || self.preset.get(cell).copied().unwrap_or(false)
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
