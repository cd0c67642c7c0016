use std::collections::{HashMap, HashSet};
use std::path::Path;

use pseudagg_core::{
    ColumnClass, ColumnType, Error, Location, Problem, Problems, Result, Schema, parse_known,
};
use pseudagg_io::sha256_hex;

use crate::definition::ReportDefinition;
use crate::expr::{self, Expr};

/// A checked report: expressions parsed against the schema, indicators resolved.
#[derive(Debug, Clone)]
pub struct ReportPlan {
    pub definition: ReportDefinition,
    pub definition_sha256: String,
    /// The definition as read (a release record keeps it, so that a later report of the month can
    /// count its cells again).
    pub definition_text: String,
    pub schema: Schema,
    pub(crate) population: Expr,
    /// Per dimension, its categories.
    pub(crate) categories: Vec<Vec<Expr>>,
    /// Per indicator: its expression, already combined with those of its supersets.
    pub(crate) indicators: Vec<Expr>,
    /// Per indicator: the index of the indicator it is a subset of.
    pub(crate) subset_of: Vec<Option<usize>>,
    /// Groups of indicators no person is counted in two of, each under the indicator all of
    /// them are subsets of: `(parent, members)`, every largest such group, in index order.
    /// Their cells add up to no more than the parent's.
    pub(crate) exclusive: Vec<(usize, Vec<usize>)>,
    /// For each group of `exclusive`: whether its members hold every person of their whole
    /// (`kooperationsplan` and `not kooperationsplan` under `true`). Then the whole is their sum,
    /// which a reader of the definition knows as well as the published cells.
    pub(crate) exhaustive: Vec<bool>,
    /// The pairs among them that only the definition's `excludes` declares (the counting
    /// checks them on every row).
    pub(crate) declared_exclusive: Vec<(usize, usize)>,
    /// `(part, whole)`: indicators whose expressions put every row of one among the other's,
    /// beyond the declared `subset-of` chains (`massnahme = 'X'` inside `massnahme is not
    /// null`). The audit knows it, as a reader of the definition does. (A whole that counts
    /// everyone, `true`, is left to `subset-of`.)
    pub(crate) implied_subsets: Vec<(usize, usize)>,
    /// Per position (in the order of [`Self::position_coordinates`]): the `(part, whole)` pairs
    /// its categories imply beyond `implied_subsets` (at the position Ukraine, everyone counted
    /// is in an indicator `staatsangehoerigkeit = 'UKR'`).
    pub(crate) position_subsets: Vec<Vec<(usize, usize)>>,
    pub(crate) rd_column: usize,
    pub(crate) ge_column: usize,
    pub(crate) ge_name_column: Option<usize>,
}

/// Each position's category of each dimension (`None` at a dimension's total), positions in the
/// order of [`ReportPlan::position_coordinates`]: the last dimension varies fastest, each
/// dimension's total after its categories.
fn position_categories(categories: &[Vec<Expr>]) -> Vec<Vec<Option<usize>>> {
    let mut out: Vec<Vec<Option<usize>>> = vec![Vec::new()];
    for d in categories {
        out = out
            .into_iter()
            .flat_map(|prefix| {
                (0..=d.len()).map(move |c| {
                    let mut p = prefix.clone();
                    p.push((c < d.len()).then_some(c));
                    p
                })
            })
            .collect();
    }
    out
}

/// The `and` of the expressions `ks` of `own` (the expression itself for one).
fn and_of(own: &[Expr], ks: impl IntoIterator<Item = usize>) -> Expr {
    let mut parts: Vec<Expr> = ks.into_iter().map(|k| own[k].clone()).collect();
    if parts.len() == 1 {
        parts.pop().expect("one")
    } else {
        Expr::And(parts)
    }
}

/// The indicators `i` is a part of, nearest first (at most every other indicator: a cycle,
/// which the plan refuses, ends the walk).
fn wholes_of(i: usize, subset_of: &[Option<usize>]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut at = subset_of[i];
    while let Some(j) = at {
        if j == i || out.len() >= subset_of.len() {
            break;
        }
        out.push(j);
        at = subset_of[j];
    }
    out
}

/// Every largest group of two or more indicators, all parts of one indicator (directly or
/// through others), of which no two can count the same person (by their expressions, or
/// `declared`), as `(whole, members)`. A group whose members are all parts of one part of the
/// whole is that part's group, not the whole's.
fn exclusive_groups(
    indicators: &[Expr],
    subset_of: &[Option<usize>],
    declared: &[(usize, usize)],
) -> Vec<(usize, Vec<usize>)> {
    let n = indicators.len();
    let apart = |i: usize, j: usize| {
        declared.contains(&(i.min(j), i.max(j))) || expr::excludes(&indicators[i], &indicators[j])
    };
    let chains: Vec<Vec<usize>> = (0..n).map(|i| wholes_of(i, subset_of)).collect();
    let mut out = Vec::new();
    let wholes: std::collections::BTreeSet<usize> = subset_of.iter().flatten().copied().collect();
    for p in wholes {
        let below: Vec<usize> = (0..n).filter(|&i| chains[i].contains(&p)).collect();
        // The part of `p` that `i` lies in (itself, or a whole of it).
        let top = |i: usize| {
            let at = chains[i].iter().position(|&j| j == p).expect("below p");
            if at == 0 { i } else { chains[i][at - 1] }
        };
        // Bron-Kerbosch (a definition has a handful of indicators).
        let mut groups = Vec::new();
        largest_groups(&apart, Vec::new(), below, Vec::new(), &mut groups);
        for mut g in groups.into_iter().filter(|g| g.len() >= 2) {
            if g.iter().all(|&m| top(m) == top(g[0])) {
                continue;
            }
            g.sort_unstable();
            out.push((p, g));
        }
    }
    out.sort();
    out
}

/// The largest groups containing `chosen`, of which every two members are `apart`, from the
/// `candidates`, none of them containing one of `excluded` (Bron and Kerbosch).
fn largest_groups(
    apart: &impl Fn(usize, usize) -> bool,
    chosen: Vec<usize>,
    mut candidates: Vec<usize>,
    mut excluded: Vec<usize>,
    out: &mut Vec<Vec<usize>>,
) {
    if candidates.is_empty() && excluded.is_empty() {
        out.push(chosen);
        return;
    }
    while let Some(v) = candidates.pop() {
        let mut next = chosen.clone();
        next.push(v);
        let keep = |w: &&usize| apart(v, **w);
        largest_groups(
            apart,
            next,
            candidates.iter().filter(keep).copied().collect(),
            excluded.iter().filter(keep).copied().collect(),
            out,
        );
        excluded.push(v);
    }
}

fn is_name(s: &str) -> bool {
    pseudagg_core::is_plain_identifier(s)
}

impl ReportPlan {
    /// The schema columns the report reads: the gE, RD and gE name columns and every column of
    /// its expressions, sorted.
    #[must_use]
    pub fn columns_read(&self) -> Vec<usize> {
        let mut out = vec![self.rd_column, self.ge_column];
        out.extend(self.ge_name_column);
        self.population.columns(&mut out);
        for e in self.categories.iter().flatten().chain(&self.indicators) {
            e.columns(&mut out);
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Reads and checks a definition file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
        Self::from_toml(&text, path)
    }

    /// Parses and checks a definition, reporting every problem at once.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self> {
        let fail = |problems: Problems| Error::Definition {
            file: path.to_owned(),
            problems,
        };
        let (definition, problems) =
            parse_known::<ReportDefinition>(text, "schemas/report.schema.json");
        let Some(definition) = definition else {
            return Err(fail(problems));
        };
        Self::check(definition, text, problems).map_err(fail)
    }

    #[allow(clippy::too_many_lines)] // one list of rules, read top to bottom
    fn check(
        d: ReportDefinition,
        text: &str,
        mut problems: Problems,
    ) -> std::result::Result<Self, Problems> {
        let mut push =
            |key: &str, message: String| problems.push(Problem::new(Location::key(key), message));
        let name_ok = d.name.len() <= 32
            && d.name.starts_with(|c: char| c.is_ascii_lowercase())
            && d.name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !name_ok {
            push(
                "name",
                "must be 1 to 32 lower-case letters, digits or hyphens, starting with a letter"
                    .into(),
            );
        }
        for (i, level) in d.suppression.never_suppress.iter().enumerate() {
            if !["ge", "rd", "bund"].contains(&level.as_str()) {
                push(
                    &format!("suppression.never-suppress[{i}]"),
                    "is not a level; the levels are ge, rd and bund".into(),
                );
            }
        }
        if d.suppression.threshold < 1 {
            push("suppression.threshold", "must be at least 1".into());
        }
        let Some(schema) = Schema::builtin(&d.input_schema) else {
            let known: Vec<_> = Schema::builtin_names().collect();
            push(
                "input-schema",
                format!("is not a known schema; known are: {}", known.join(", ")),
            );
            return Err(problems);
        };

        let org = |key: &str, name: &str, problems: &mut Problems| -> Option<usize> {
            match schema.index_of(name) {
                Some(i)
                    if schema.columns[i].class == ColumnClass::Org
                        && schema.columns[i].ty == ColumnType::Str =>
                {
                    Some(i)
                }
                Some(_) => {
                    problems.push(Problem::new(
                        Location::key(key),
                        format!("`{name}` is not a text column of class org"),
                    ));
                    None
                }
                None => {
                    problems.push(Problem::new(
                        Location::key(key),
                        schema.unknown_column(name),
                    ));
                    None
                }
            }
        };
        let rd_column = org("rd-column", &d.rd_column, &mut problems);
        let ge_column = org("ge-column", &d.ge_column, &mut problems);
        let ge_name_column = d
            .ge_name_column
            .as_ref()
            .map(|n| org("ge-name-column", n, &mut problems));
        for (key, column) in [("rd-column", rd_column), ("ge-column", ge_column)] {
            // Their values name the recipients' folders (`rd=NRW`, `ge=31501`): only a code
            // column, whose every value the schema constrains, may be used.
            if let Some(c) = column {
                let spec = &schema.columns[c];
                let codes_ok = spec
                    .values
                    .as_ref()
                    .is_some_and(|v| v.iter().all(|x| crate::output::is_folder_code(x)));
                if !codes_ok && spec.pattern.is_none() {
                    problems.push(Problem::new(
                        Location::key(key),
                        format!(
                            "`{}` is not a code column (the schema gives it no pattern or allowed values of letters, digits, `-` and `_`); its values name the recipients' folders, so it must be one, such as `{}`",
                            spec.name,
                            if key == "rd-column" { "rd" } else { "ge_nr" }
                        ),
                    ));
                }
            }
            if let Some(c) = column
                && schema.columns[c].nullable
            {
                problems.push(Problem::new(
                    Location::key(key),
                    format!(
                        "`{}` may be empty; a level needs a value in every row",
                        schema.columns[c].name
                    ),
                ));
            }
        }

        let parse = |key: String, text: &str, problems: &mut Problems| -> Option<Expr> {
            expr::parse(text, &schema)
                .map_err(|e| problems.push(Problem::new(Location::key(key), e.to_string())))
                .ok()
        };
        let population = parse("population".into(), &d.population, &mut problems);

        let dims = d.dimension.all();
        // A key of the d-th dimension, as the user wrote it.
        let dim_key = |i: usize, rest: &str| {
            if dims.len() > 1 {
                format!("dimension[{i}].{rest}")
            } else {
                format!("dimension.{rest}")
            }
        };
        if dims.len() > 2 {
            problems.push(Problem::new(
                Location::key("dimension"),
                format!(
                    "declares {} dimensions; a report crosses at most two",
                    dims.len()
                ),
            ));
        }
        let mut categories: Vec<Vec<Option<Expr>>> = Vec::new();
        let mut dim_names = HashSet::new();
        for (di, dim) in dims.iter().enumerate() {
            if !is_name(&dim.name) {
                problems.push(Problem::new(
                    Location::key(dim_key(di, "name")),
                    "a dimension name is lower-case letters, digits and `_`",
                ));
            }
            if [
                "level",
                "rd",
                "ge_nr",
                "ge_name",
                "indicator",
                "value",
                "suppressed",
            ]
            .contains(&dim.name.as_str())
            {
                problems.push(Problem::new(
                    Location::key(dim_key(di, "name")),
                    format!("`{}` is an output column already", dim.name),
                ));
            }
            if !dim_names.insert(dim.name.as_str()) {
                problems.push(Problem::new(
                    Location::key(dim_key(di, "name")),
                    format!("`{}` names another dimension already", dim.name),
                ));
            }
            if dim.categories.is_empty() {
                problems.push(Problem::new(
                    Location::key(dim_key(di, "categories")),
                    "a dimension needs at least one category",
                ));
            }
            let mut seen = HashSet::new();
            let mut exprs = Vec::new();
            for (i, c) in dim.categories.iter().enumerate() {
                if c.name.is_empty() || c.name == dim.total || !seen.insert(c.name.as_str()) {
                    problems.push(Problem::new(
                        Location::key(dim_key(di, &format!("categories[{i}].name"))),
                        "a category needs a name of its own, other than the total's",
                    ));
                }
                exprs.push(parse(
                    dim_key(di, &format!("categories[{i}].when")),
                    &c.when,
                    &mut problems,
                ));
            }
            categories.push(exprs);
        }

        // Names and labels reach the CSVs and workbooks people open in spreadsheets: one that a
        // spreadsheet would read as a formula is refused here (the CSV writer neutralises it too).
        let mut texts: Vec<(String, &str)> = vec![
            ("title".into(), d.title.as_str()),
            ("description".into(), d.description.as_str()),
        ];
        for (di, dim) in dims.iter().enumerate() {
            texts.push((dim_key(di, "total"), dim.total.as_str()));
            for (i, c) in dim.categories.iter().enumerate() {
                texts.push((
                    dim_key(di, &format!("categories[{i}].name")),
                    c.name.as_str(),
                ));
                if let Some(label) = &c.label {
                    texts.push((
                        dim_key(di, &format!("categories[{i}].label")),
                        label.as_str(),
                    ));
                }
            }
        }
        for (i, ind) in d.indicators.iter().enumerate() {
            texts.push((format!("indicators[{i}].label"), ind.label.as_str()));
        }
        for (key, text) in texts {
            if crate::output::starts_like_a_formula(text) {
                problems.push(Problem::new(
                    Location::key(key),
                    "starts with `=`, `+`, `-`, `@`, a tab or a carriage return, which a spreadsheet reads as a formula: begin with a letter or digit",
                ));
            }
        }

        let index: HashMap<&str, usize> = d
            .indicators
            .iter()
            .enumerate()
            .map(|(i, x)| (x.name.as_str(), i))
            .collect();
        if d.indicators.is_empty() {
            problems.push(Problem::new(
                Location::key("indicators"),
                "a report needs at least one indicator",
            ));
        }
        if d.indicators.len() > 64 {
            problems.push(Problem::new(
                Location::key("indicators"),
                format!(
                    "has {} indicators; a report has at most 64: split it into two reports",
                    d.indicators.len()
                ),
            ));
        }
        let mut own = Vec::new();
        let mut subset_of = Vec::new();
        let mut seen = HashSet::new();
        for (i, ind) in d.indicators.iter().enumerate() {
            let key = format!("indicators[{i}]");
            if !is_name(&ind.name) || !seen.insert(ind.name.as_str()) {
                problems.push(Problem::new(
                    Location::key(format!("{key}.name")),
                    "needs a unique name of lower-case letters, digits and `_`",
                ));
            }
            own.push(parse(format!("{key}.when"), &ind.when, &mut problems));
            subset_of.push(match &ind.subset_of {
                None => None,
                Some(s) => match index.get(s.as_str()) {
                    Some(&j) if j != i => Some(j),
                    _ => {
                        problems.push(Problem::new(
                            Location::key(format!("{key}.subset-of")),
                            format!("`{s}` is not another indicator of this report"),
                        ));
                        None
                    }
                },
            });
        }
        // Subset chains must end: no indicator may be a part of itself.
        for start in 0..subset_of.len() {
            let mut at = subset_of[start];
            let mut steps = 0;
            while let Some(j) = at {
                steps += 1;
                if j == start || steps > subset_of.len() {
                    problems.push(Problem::new(
                        Location::key(format!("indicators[{start}].subset-of")),
                        "the subset relations form a cycle",
                    ));
                    break;
                }
                at = subset_of[j];
            }
        }
        // Declared exclusions: between parts of one whole.
        let mut declared = Vec::new();
        for (i, ind) in d.indicators.iter().enumerate() {
            let mine = wholes_of(i, &subset_of);
            let shared = |j: usize| wholes_of(j, &subset_of).iter().any(|w| mine.contains(w));
            for name in &ind.excludes {
                let key = Location::key(format!("indicators[{i}].excludes"));
                match index.get(name.as_str()) {
                    Some(&j) if j != i && shared(j) => {
                        declared.push((i.min(j), i.max(j)));
                    }
                    Some(&j) if j != i => problems.push(Problem::new(
                        key,
                        format!(
                            "`{name}` and `{}` are not both parts of one indicator (`subset-of`, directly or through others): exclusion is known only between parts of one whole",
                            ind.name
                        ),
                    )),
                    _ => problems.push(Problem::new(
                        key,
                        format!("`{name}` is not another indicator of this report"),
                    )),
                }
            }
        }
        declared.sort_unstable();
        declared.dedup();
        if !problems.is_empty() {
            return Err(problems);
        }
        let own: Vec<Expr> = own.into_iter().map(|e| e.expect("checked")).collect();
        let indicators: Vec<Expr> = (0..own.len())
            .map(|i| and_of(&own, std::iter::once(i).chain(wholes_of(i, &subset_of))))
            .collect();
        let population = population.expect("checked");
        // Read among the population's people: two parts may share nobody there only.
        let among: Vec<Expr> = indicators
            .iter()
            .map(|e| Expr::And(vec![population.clone(), e.clone()]))
            .collect();
        let exclusive = exclusive_groups(&among, &subset_of, &declared);
        let exhaustive = exclusive
            .iter()
            .map(|(whole, members)| {
                // Each member relative to the whole: its own expression and those of the
                // indicators between it and the whole.
                let relative: Vec<Expr> = members
                    .iter()
                    .map(|&m| {
                        let chain = wholes_of(m, &subset_of);
                        let upto = chain.iter().position(|w| w == whole).unwrap_or(chain.len());
                        and_of(
                            &own,
                            std::iter::once(m).chain(chain[..upto].iter().copied()),
                        )
                    })
                    .collect();
                // Among the population's people of the whole.
                let context = Expr::And(vec![population.clone(), indicators[*whole].clone()]);
                expr::covers(&relative.iter().collect::<Vec<_>>(), &context, &schema)
            })
            .collect();
        let categories: Vec<Vec<Expr>> = categories
            .into_iter()
            .map(|d| d.into_iter().map(|e| e.expect("checked")).collect())
            .collect();
        // Where `k`'s rows are all among `j`'s, counted among the rows that meet `context` too
        // (the population, and a position's categories): everyone the population counts is
        // `elb` when it says `elb`, and every Ukrainian is in an indicator `staatsangehoerigkeit
        // = 'UKR'` at the position Ukraine.
        // (A `k` that nobody can meet there is left out: its cells are published zeros.)
        let inside = |k: usize, j: usize, context: &[&Expr]| {
            let among = Expr::And(
                context
                    .iter()
                    .map(|e| (*e).clone())
                    .chain([indicators[k].clone()])
                    .collect(),
            );
            k != j
                && !expr::is_always(&indicators[j])
                && !wholes_of(k, &subset_of).contains(&j)
                && !expr::excludes(&among, &among)
                && expr::implies(&among, &indicators[j])
        };
        let pairs =
            || (0..indicators.len()).flat_map(|k| (0..indicators.len()).map(move |j| (k, j)));
        let implied_subsets: Vec<(usize, usize)> = pairs()
            .filter(|&(k, j)| inside(k, j, &[&population]))
            .collect();
        let position_subsets: Vec<Vec<(usize, usize)>> = position_categories(&categories)
            .iter()
            .map(|at| {
                let mut context = vec![&population];
                context.extend(
                    at.iter()
                        .zip(&categories)
                        .filter_map(|(c, d)| c.map(|c| &d[c])),
                );
                pairs()
                    .filter(|&(k, j)| !implied_subsets.contains(&(k, j)) && inside(k, j, &context))
                    .collect()
            })
            .collect();
        Ok(Self {
            exclusive,
            exhaustive,
            implied_subsets,
            position_subsets,
            declared_exclusive: declared,
            definition_sha256: sha256_hex(text.as_bytes()),
            definition_text: text.to_owned(),
            population,
            categories,
            indicators,
            subset_of,
            rd_column: rd_column.expect("checked"),
            ge_column: ge_column.expect("checked"),
            ge_name_column: ge_name_column.flatten(),
            schema,
            definition: d,
        })
    }

    /// The groups of indicators no person is counted in two of, by name: `(whole, parts,
    /// exhaustive)`, the last `true` where the parts hold every person of the whole.
    #[must_use]
    pub fn exclusive_names(&self) -> Vec<(String, Vec<String>, bool)> {
        let name = |k: usize| self.definition.indicators[k].name.clone();
        self.exclusive
            .iter()
            .zip(&self.exhaustive)
            .map(|((p, members), &all)| (name(*p), members.iter().map(|&k| name(k)).collect(), all))
            .collect()
    }

    /// The subset relations the expressions imply beyond the declared ones, by name:
    /// `(part, whole)`.
    #[must_use]
    pub fn implied_subset_names(&self) -> Vec<(String, String)> {
        let name = |k: usize| self.definition.indicators[k].name.clone();
        self.implied_subsets
            .iter()
            .map(|&(k, j)| (name(k), name(j)))
            .collect()
    }

    /// The subset relations a position's categories imply beyond [`Self::implied_subset_names`],
    /// by name: `(position, part, whole)`, the position as its category of each dimension (a
    /// total's name for a total).
    #[must_use]
    pub fn position_subset_names(&self) -> Vec<(Vec<String>, String, String)> {
        let name = |k: usize| self.definition.indicators[k].name.clone();
        self.position_coordinates()
            .into_iter()
            .zip(&self.position_subsets)
            .flat_map(|(at, pairs)| {
                pairs
                    .iter()
                    .map(move |&(k, j)| (at.clone(), name(k), name(j)))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// The number of categories of each dimension (without its total).
    #[must_use]
    pub fn dimension_sizes(&self) -> Vec<usize> {
        self.categories.iter().map(Vec::len).collect()
    }

    /// The number of combinations of categories a row can fall into (1 without a dimension):
    /// the counters keep one set of counts per combination.
    #[must_use]
    pub fn combinations(&self) -> usize {
        self.categories.iter().map(Vec::len).product()
    }

    /// The number of positions of the table, every dimension with its total (1 without a
    /// dimension).
    #[must_use]
    pub fn category_count(&self) -> usize {
        self.categories.iter().map(|c| c.len() + 1).product()
    }

    /// Each position's category per dimension (the total's name for a total), positions in
    /// order: the last dimension varies fastest, each dimension's total after its categories.
    #[must_use]
    pub fn position_coordinates(&self) -> Vec<Vec<String>> {
        let mut out: Vec<Vec<String>> = vec![Vec::new()];
        for d in self.definition.dimension.all() {
            let names: Vec<&String> = d
                .categories
                .iter()
                .map(|c| &c.name)
                .chain([&d.total])
                .collect();
            out = out
                .into_iter()
                .flat_map(|prefix| {
                    names.iter().map(move |n| {
                        let mut p = prefix.clone();
                        p.push((*n).clone());
                        p
                    })
                })
                .collect();
        }
        out
    }

    /// Position labels: the categories of a position joined by ` / ` (one empty label without a
    /// dimension).
    #[must_use]
    pub fn category_labels(&self) -> Vec<String> {
        self.position_coordinates()
            .into_iter()
            .map(|c| c.join(" / "))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::Op;
    use std::fmt::Write as _;

    /// Expressions over three columns with small domains, each with its negation.
    const ATOMS: [&str; 12] = [
        "kooperationsplan",
        "kooperationsplan = N",
        "beschaeftigung = 'keine'",
        "beschaeftigung = 'sv_pflichtig'",
        "beschaeftigung != 'keine'",
        "beschaeftigung in ('keine', 'ausbildung')",
        "beschaeftigung in ('sv_pflichtig', 'geringfuegig', 'selbststaendig')",
        "massnahme is null",
        "massnahme is not null",
        "massnahme = 'FbW'",
        "massnahme != 'FbW'",
        "massnahme in ('FbW', 'AGH')",
    ];

    const POPULATIONS: [&str; 4] = [
        "true",
        "kooperationsplan",
        "beschaeftigung != 'keine'",
        "massnahme is not null",
    ];

    /// A row of the three columns: (kooperationsplan, beschaeftigung, massnahme).
    type Row = (bool, &'static str, Option<&'static str>);

    /// Every row the schema allows, `massnahme` (free text) as one of the values the
    /// expressions name, another one, or empty.
    fn domain() -> Vec<Row> {
        let mut out = Vec::new();
        for kp in [true, false] {
            for b in [
                "keine",
                "sv_pflichtig",
                "geringfuegig",
                "selbststaendig",
                "ausbildung",
            ] {
                for m in [None, Some("FbW"), Some("AGH"), Some("anderes")] {
                    out.push((kp, b, m));
                }
            }
        }
        out
    }

    /// The expression on a row, as the counting reads it: a comparison with an empty value is
    /// false, `not` is true where its operand is false.
    fn holds(e: &Expr, row: Row, schema: &Schema) -> bool {
        let text = |c: usize| -> Option<&str> {
            match schema.columns[c].name.as_str() {
                "beschaeftigung" => Some(row.1),
                "massnahme" => row.2,
                other => panic!("{other} is not in the domain"),
            }
        };
        match e {
            Expr::Const(v) => *v,
            Expr::Or(p) => p.iter().any(|x| holds(x, row, schema)),
            Expr::And(p) => p.iter().all(|x| holds(x, row, schema)),
            Expr::Not(x) => !holds(x, row, schema),
            Expr::Flag(_) => row.0,
            Expr::BoolCmp { op, value, .. } => match op {
                Op::Eq => row.0 == *value,
                _ => row.0 != *value,
            },
            Expr::StrCmp { column, op, value } => text(*column).is_some_and(|v| match op {
                Op::Eq => v == value,
                _ => v != value,
            }),
            Expr::In { column, values } => {
                text(*column).is_some_and(|v| values.iter().any(|w| w == v))
            }
            Expr::IsNull { column, negated } => text(*column).is_none() != *negated,
            Expr::DateCmp { .. } => unreachable!("no dates in the domain"),
        }
    }

    /// What a reader of a definition knows of its indicators, checked against every row the
    /// schema allows: two parts no row can be in both of are an exclusive group; parts that
    /// every row of the whole is in one of cover it; an indicator every row of which is in
    /// another is its subset. Over 2,000 definitions of three indicators each, from single
    /// comparisons and their negations under four populations, the plan misses none.
    #[test]
    fn the_plan_knows_every_relation_the_expressions_make() {
        let rows = domain();
        let mut seed = 11u64;
        let mut next = |n: usize| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((seed >> 33) as usize) % n
        };
        let mut checked = [0usize; 3];
        for case in 0..2000 {
            let population = POPULATIONS[next(POPULATIONS.len())];
            let mut indicators = String::new();
            for i in 0..3 {
                let atom = ATOMS[next(ATOMS.len())];
                let when = if next(2) == 0 {
                    atom.to_owned()
                } else {
                    format!("not ({atom})")
                };
                writeln!(
                    indicators,
                    "[[indicators]]\nname = \"i{i}\"\nlabel = \"I{i}\"\nwhen = \"{when}\"\nsubset-of = \"bestand\""
                )
                .expect("a String takes text");
            }
            let text = format!(
                "name = \"t\"\ntitle = \"T\"\ninput-schema = \"opds-person\"\npopulation = \"{population}\"\n\
                 [[indicators]]\nname = \"bestand\"\nlabel = \"B\"\nwhen = \"true\"\n{indicators}"
            );
            let plan = ReportPlan::from_toml(&text, Path::new("t.toml")).unwrap();
            let s = &plan.schema;
            let people = |k: usize| -> Vec<usize> {
                (0..rows.len())
                    .filter(|&r| {
                        holds(&plan.population, rows[r], s)
                            && holds(&plan.indicators[k], rows[r], s)
                    })
                    .collect()
            };
            let of: Vec<Vec<usize>> = (0..4).map(people).collect();
            for i in 1..4 {
                for j in 1..4 {
                    if i == j || of[i].is_empty() || of[j].is_empty() {
                        continue;
                    }
                    if i < j && !of[i].iter().any(|r| of[j].contains(r)) {
                        checked[0] += 1;
                        assert!(
                            plan.exclusive
                                .iter()
                                .any(|(w, m)| *w == 0 && m.contains(&i) && m.contains(&j)),
                            "case {case}: i{} and i{} share nobody, the plan does not know:\n{text}",
                            i - 1,
                            j - 1
                        );
                    }
                    if of[i].iter().all(|r| of[j].contains(r)) {
                        checked[1] += 1;
                        assert!(
                            plan.implied_subsets.contains(&(i, j)),
                            "case {case}: i{} inside i{}, the plan does not know:\n{text}",
                            i - 1,
                            j - 1
                        );
                    }
                }
            }
            for (g, (_, members)) in plan.exclusive.iter().enumerate() {
                let all: std::collections::BTreeSet<usize> = members
                    .iter()
                    .flat_map(|&m| of[m].iter().copied())
                    .collect();
                if all.len() == of[0].len() {
                    checked[2] += 1;
                    assert!(
                        plan.exhaustive[g],
                        "case {case}: {members:?} hold all of bestand, the plan does not know:\n{text}"
                    );
                }
            }
        }
        assert!(checked.iter().all(|&n| n > 20), "{checked:?}");
    }
}
