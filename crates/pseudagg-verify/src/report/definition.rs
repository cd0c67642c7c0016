//! verify's own reading of a report's definition: what its expressions tell anyone who reads
//! them about how the indicators' cells relate, found again here rather than taken from the
//! manifest that the writer made.
//!
//! A report's release record (`release.json`) holds its definition as the writer read it; its
//! SHA-256 is the manifest's `report_sha256`. Its indicators' expressions are parsed here with a
//! parser of this crate (the grammar of the README's "Expressions", not the writer's code) and
//! read for three kinds of relation, each decided from the expressions alone:
//!
//! - two parts of one indicator that no person can be in both of (`x is null` beside a
//!   comparison of `x`; `in` lists or equalities with no value in common; date ranges or flag
//!   values that do not meet; a negation beside what it negates; a `!=` beside its equality, or a
//!   declared `excludes`) add up to no more than the whole;
//! - such parts that hold every person of the whole (an expression and its negation; comparisons
//!   of one column that leave none of its values out, its `is null` included where it may be
//!   empty) add up to the whole;
//! - an indicator whose expression puts every person among another's is no larger than it.
//!
//! Each relation the manifest does not state is a finding (the writer's audit did not know what
//! a reader of the definition knows) and joins this verify's audit, so a cell it gives away is a
//! disclosure finding too. The manifest's own relations stay in the audit: each is true of the
//! counts (the writer refuses a row that breaks a declared one).

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;
use sha2::{Digest, Sha256};

use pseudagg_core::{ColumnType, Result, Schema};

use super::Structure;
use super::together::{RELEASE_FILE, read_release};
use crate::finding::{Finding, Rule, Verdict};
use crate::manifest::Manifest;

/// Brackets and `not`s an expression may nest: the parser recurses once per level.
const MAX_DEPTH: usize = 64;

/// An expression as read here. A comparison with an empty value is false; `not` is true exactly
/// where its operand is false.
#[derive(Debug, Clone, PartialEq)]
enum E {
    Const(bool),
    Or(Vec<E>),
    And(Vec<E>),
    Not(Box<E>),
    /// A bool column compared with a value (a bare column is `= J`).
    Flag(usize, bool),
    /// A text column `=` (`equal`) or `!=` a value.
    Text {
        column: usize,
        equal: bool,
        value: String,
    },
    In(usize, Vec<String>),
    /// A date column within `[from, to]` days of the month's end, inclusive.
    Days(usize, i64, i64),
    /// `column is null` (`true`) or `is not null`.
    Null(usize, bool),
    /// Another comparison of a column (a date `!=`): false on an empty value, nothing more known.
    Compared(usize),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Text(String),
    Number(i64),
    Op(&'static str),
    Open,
    Close,
    Comma,
    Minus,
    Plus,
}

fn lex(text: &str) -> std::result::Result<Vec<Tok>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        i += 1;
        match c {
            c if c.is_whitespace() => {}
            '(' => out.push(Tok::Open),
            ')' => out.push(Tok::Close),
            ',' => out.push(Tok::Comma),
            '-' => out.push(Tok::Minus),
            '+' => out.push(Tok::Plus),
            '=' => out.push(Tok::Op("=")),
            '!' if next == Some('=') => {
                i += 1;
                out.push(Tok::Op("!="));
            }
            '<' | '>' => {
                let with_eq = next == Some('=');
                if with_eq {
                    i += 1;
                }
                out.push(Tok::Op(match (c, with_eq) {
                    ('<', false) => "<",
                    ('<', true) => "<=",
                    (_, false) => ">",
                    _ => ">=",
                }));
            }
            '\'' => {
                let mut s = String::new();
                loop {
                    match (chars.get(i), chars.get(i + 1)) {
                        (Some('\''), Some('\'')) => {
                            s.push('\'');
                            i += 2;
                        }
                        (Some('\''), _) => {
                            i += 1;
                            break;
                        }
                        (Some(&ch), _) => {
                            s.push(ch);
                            i += 1;
                        }
                        (None, _) => return Err("a quoted text is not closed".to_owned()),
                    }
                }
                out.push(Tok::Text(s));
            }
            c if c.is_ascii_digit() => {
                let mut n = i64::from(c.to_digit(10).unwrap_or(0));
                while let Some(d) = chars.get(i).and_then(|d| d.to_digit(10)) {
                    n = n
                        .checked_mul(10)
                        .and_then(|n| n.checked_add(i64::from(d)))
                        .ok_or("a number is too large")?;
                    i += 1;
                }
                out.push(Tok::Number(n));
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let mut w = String::from(c);
                while let Some(&d) = chars
                    .get(i)
                    .filter(|d| d.is_ascii_alphanumeric() || **d == '_')
                {
                    w.push(d);
                    i += 1;
                }
                out.push(Tok::Word(w));
            }
            _ => return Err(format!("unexpected character `{c}`")),
        }
    }
    Ok(out)
}

struct Parser<'a> {
    toks: Vec<Tok>,
    at: usize,
    depth: usize,
    schema: &'a Schema,
}

fn parse(text: &str, schema: &Schema) -> std::result::Result<E, String> {
    let mut p = Parser {
        toks: lex(text)?,
        at: 0,
        depth: 0,
        schema,
    };
    let e = p.or()?;
    if p.at != p.toks.len() {
        return Err("text after the end of the expression".to_owned());
    }
    Ok(e)
}

impl Parser<'_> {
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn word(&mut self, w: &str) -> bool {
        if matches!(self.toks.get(self.at), Some(Tok::Word(x)) if x == w) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> std::result::Result<E, String> {
        let mut parts = vec![self.and()?];
        while self.word("or") {
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            E::Or(parts)
        })
    }

    fn and(&mut self) -> std::result::Result<E, String> {
        let mut parts = vec![self.unary()?];
        while self.word("and") {
            parts.push(self.unary()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            E::And(parts)
        })
    }

    fn deeper(&mut self) -> std::result::Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!("nested more than {MAX_DEPTH} deep"));
        }
        Ok(())
    }

    fn unary(&mut self) -> std::result::Result<E, String> {
        if self.word("not") {
            self.deeper()?;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(negation(inner, self.schema));
        }
        match self.next() {
            Some(Tok::Open) => {
                self.deeper()?;
                let e = self.or()?;
                if self.next() != Some(Tok::Close) {
                    return Err("a `)` is missing".to_owned());
                }
                self.depth -= 1;
                Ok(e)
            }
            Some(Tok::Word(w)) if w == "true" => Ok(E::Const(true)),
            Some(Tok::Word(w)) if w == "false" => Ok(E::Const(false)),
            Some(Tok::Word(name)) => self.comparison(&name),
            _ => Err("expected a column, `not`, `(`, true or false".to_owned()),
        }
    }

    fn comparison(&mut self, name: &str) -> std::result::Result<E, String> {
        let col = self
            .schema
            .index_of(name)
            .ok_or_else(|| format!("`{name}` is not a column of `{}`", self.schema.name))?;
        let ty = self.schema.columns[col].ty;
        if self.word("is") {
            let negated = self.word("not");
            if !self.word("null") {
                return Err("`is` is followed by `null` or `not null`".to_owned());
            }
            return Ok(E::Null(col, !negated));
        }
        if self.word("in") {
            if self.next() != Some(Tok::Open) {
                return Err("`in` is followed by a list in brackets".to_owned());
            }
            let mut values = Vec::new();
            loop {
                match self.next() {
                    Some(Tok::Text(v)) => values.push(v),
                    _ => return Err("an `in` list holds quoted texts".to_owned()),
                }
                match self.next() {
                    Some(Tok::Comma) => {}
                    Some(Tok::Close) => break,
                    _ => return Err("an `in` list is closed with `)`".to_owned()),
                }
            }
            return Ok(E::In(col, values));
        }
        let op = match self.toks.get(self.at) {
            Some(Tok::Op(op)) => *op,
            // A bare bool column: true where J.
            _ if ty == ColumnType::Bool => return Ok(E::Flag(col, true)),
            _ => return Err(format!("`{name}` is not a bool column; compare it")),
        };
        self.at += 1;
        match (ty, self.next()) {
            (ColumnType::Bool, Some(Tok::Word(v))) if v == "J" || v == "N" => match op {
                "=" => Ok(E::Flag(col, v == "J")),
                "!=" => Ok(E::Flag(col, v != "J")),
                _ => Err("a bool column is compared with `=` or `!=`".to_owned()),
            },
            (ColumnType::Str, Some(Tok::Text(value))) if op == "=" || op == "!=" => Ok(E::Text {
                column: col,
                equal: op == "=",
                value,
            }),
            (ColumnType::Date, Some(Tok::Word(w))) if w == "month_end" => {
                let sign = match self.toks.get(self.at) {
                    Some(Tok::Minus) => -1,
                    Some(Tok::Plus) => 1,
                    _ => 0,
                };
                let mut d = 0i64;
                if sign != 0 {
                    self.at += 1;
                    let Some(Tok::Number(n)) = self.next() else {
                        return Err(
                            "`month_end` is followed by a number of days or weeks".to_owned()
                        );
                    };
                    let unit = match self.next() {
                        Some(Tok::Word(u)) if u == "days" || u == "day" => 1,
                        Some(Tok::Word(u)) if u == "weeks" || u == "week" => 7,
                        _ => return Err("a window is counted in days or weeks".to_owned()),
                    };
                    d = sign * n.checked_mul(unit).ok_or("a window is too long")?;
                }
                Ok(match op {
                    "=" => E::Days(col, d, d),
                    ">" => E::Days(col, d + 1, i64::MAX),
                    ">=" => E::Days(col, d, i64::MAX),
                    "<" => E::Days(col, i64::MIN, d - 1),
                    "<=" => E::Days(col, i64::MIN, d),
                    _ => E::Compared(col),
                })
            }
            _ => Err(format!("`{name}` is compared with a value it cannot hold")),
        }
    }
}

/// `not e` without `not`, pushed down to the comparisons: true on exactly the rows `not e` is
/// (a comparison with an empty value is false, so its negation holds there: `not (x = 'v')` is
/// `x != 'v' or x is null` where the schema lets `x` be empty). A date comparison keeps its
/// `not`.
fn negation(e: E, schema: &Schema) -> E {
    let or_empty = |c: usize, cond: E| {
        if schema.columns[c].nullable {
            E::Or(vec![cond, E::Null(c, true)])
        } else {
            cond
        }
    };
    match e {
        E::Not(inner) => *inner,
        E::Const(v) => E::Const(!v),
        E::And(parts) => E::Or(parts.into_iter().map(|p| negation(p, schema)).collect()),
        E::Or(parts) => E::And(parts.into_iter().map(|p| negation(p, schema)).collect()),
        E::Null(c, is_null) => E::Null(c, !is_null),
        E::Flag(c, v) => or_empty(c, E::Flag(c, !v)),
        E::Text {
            column,
            equal,
            value,
        } => or_empty(
            column,
            E::Text {
                column,
                equal: !equal,
                value,
            },
        ),
        E::In(c, values) => {
            let cond = match &schema.columns[c].values {
                Some(all) => {
                    let rest: Vec<String> = all
                        .iter()
                        .filter(|v| !values.contains(v))
                        .cloned()
                        .collect();
                    if rest.is_empty() {
                        E::Const(false)
                    } else {
                        E::In(c, rest)
                    }
                }
                None => E::And(
                    values
                        .into_iter()
                        .map(|value| E::Text {
                            column: c,
                            equal: false,
                            value,
                        })
                        .collect(),
                ),
            };
            or_empty(c, cond)
        }
        other => E::Not(Box::new(other)),
    }
}

fn conjuncts(e: &E) -> Vec<&E> {
    match e {
        E::And(parts) => parts.iter().flat_map(conjuncts).collect(),
        other => vec![other],
    }
}

/// The column a conjunct compares, where it is false on an empty value.
fn compared(e: &E) -> Option<usize> {
    match e {
        E::Flag(c, _)
        | E::Text { column: c, .. }
        | E::In(c, _)
        | E::Days(c, ..)
        | E::Compared(c)
        | E::Null(c, false) => Some(*c),
        _ => None,
    }
}

/// The texts a conjunct allows, where it is a list or an equality.
fn texts(e: &E) -> Option<(usize, Vec<&str>)> {
    match e {
        E::In(c, vs) => Some((*c, vs.iter().map(String::as_str).collect())),
        E::Text {
            column,
            equal: true,
            value,
        } => Some((*column, vec![value.as_str()])),
        _ => None,
    }
}

/// No row meets both conjuncts (one way round).
#[allow(clippy::many_single_char_names)] // two conjuncts, each a column and its values
fn apart(x: &E, y: &E) -> bool {
    match (x, y) {
        (E::Const(false), _) => true,
        (E::Null(c, true), y) => compared(y) == Some(*c),
        (
            E::Text {
                column,
                equal: false,
                value,
            },
            y,
        ) => texts(y).is_some_and(|(d, vs)| d == *column && vs.iter().all(|v| v == value)),
        (E::Days(c, a0, a1), E::Days(d, b0, b1)) => c == d && (a1 < b0 || b1 < a0),
        (E::Flag(c, v), E::Flag(d, w)) => c == d && v != w,
        _ => match (texts(x), texts(y)) {
            (Some((c, xs)), Some((d, ys))) => c == d && !xs.iter().any(|v| ys.contains(v)),
            _ => false,
        },
    }
}

/// Every row that meets the conjunct `x` meets `y`.
fn within(x: &E, y: &E) -> bool {
    if x == y {
        return true;
    }
    match (x, y) {
        (_, E::Null(c, false)) => compared(x) == Some(*c),
        (
            _,
            E::Text {
                column,
                equal: false,
                value,
            },
        ) => texts(x).is_some_and(|(c, xs)| c == *column && !xs.contains(&value.as_str())),
        (E::Days(c, a0, a1), E::Days(d, b0, b1)) => c == d && b0 <= a0 && a1 <= b1,
        _ => match (texts(x), texts(y)) {
            (Some((c, xs)), Some((d, ys))) => c == d && xs.iter().all(|v| ys.contains(v)),
            _ => false,
        },
    }
}

/// Every row that meets `a` meets `b`.
fn implies(a: &E, b: &E) -> bool {
    let xs = conjuncts(a);
    // No row meets `a`: it is inside everything.
    if xs
        .iter()
        .enumerate()
        .any(|(i, x)| xs[i + 1..].iter().any(|y| apart(x, y) || apart(y, x)))
    {
        return true;
    }
    // A conjunct `p or q` of `a`: `b` follows from each case.
    if let Some(at) = xs.iter().position(|x| matches!(x, E::Or(_))) {
        let E::Or(cases) = xs[at] else {
            return false;
        };
        return cases.iter().all(|case| {
            let mut with: Vec<E> = xs.iter().map(|x| (*x).clone()).collect();
            with[at] = case.clone();
            implies(&E::And(with), b)
        });
    }
    // A negation `not e` holds wherever `a` does when no row of `a` meets `e`; an `or` where one
    // of its branches does.
    conjuncts(b).into_iter().all(|y| {
        *y == E::Const(true)
            || xs.iter().any(|x| within(x, y))
            || matches!(y, E::Not(e) if excludes(a, e))
            || matches!(y, E::Or(ps) if ps.iter().any(|p| implies(a, p)))
    })
}

/// No row meets both `a` and `b`.
fn excludes(a: &E, b: &E) -> bool {
    let (xs, ys) = (conjuncts(a), conjuncts(b));
    let denies = |x: &E, other: &E| matches!(x, E::Not(e) if implies(other, e));
    // An `or` excludes what each of its branches excludes.
    let branches =
        |x: &E, other: &E| matches!(x, E::Or(ps) if ps.iter().all(|p| excludes(p, other)));
    // The `!=`s of one side rule out every value a list or equality of the other allows.
    let ruled_out = |xs: &[&E], ys: &[&E]| {
        ys.iter().any(|y| {
            texts(y).is_some_and(|(c, allowed)| {
                allowed.iter().all(|v| {
                    xs.iter().any(|x| {
                        matches!(x, E::Text { column, equal: false, value } if *column == c && value == v)
                    })
                })
            })
        })
    };
    ruled_out(&xs, &ys)
        || ruled_out(&ys, &xs)
        || xs
            .iter()
            .any(|x| ys.iter().any(|y| apart(x, y) || apart(y, x)))
        || xs.iter().any(|x| denies(x, b) || branches(x, b))
        || ys.iter().any(|y| denies(y, a) || branches(y, a))
}

/// Every row that meets `context` meets one of `parts`.
fn covers(parts: &[E], context: &E, schema: &Schema) -> bool {
    if parts
        .iter()
        .any(|p| conjuncts(p).iter().all(|x| **x == E::Const(true)))
        || parts
            .iter()
            .any(|p| parts.contains(&negation(p.clone(), schema)))
    {
        return true;
    }
    // An `or` covers what its branches cover together.
    if parts.iter().any(|p| matches!(p, E::Or(_))) {
        let flat: Vec<E> = parts
            .iter()
            .flat_map(|p| match p {
                E::Or(branches) => branches.clone(),
                other => vec![other.clone()],
            })
            .collect();
        return covers(&flat, context, schema);
    }
    let given = conjuncts(context);
    let columns: BTreeSet<usize> = parts
        .iter()
        .filter_map(|p| match p {
            E::Null(c, _) => Some(*c),
            p => compared(p),
        })
        .collect();
    columns.into_iter().any(|c| {
        let spec = &schema.columns[c];
        let has = |f: &dyn Fn(&E) -> bool| parts.iter().any(f);
        let empty_held = !spec.nullable
            || given.iter().any(|g| compared(g) == Some(c))
            || has(&|p| *p == E::Null(c, true));
        let mut taken: Vec<&str> = Vec::new();
        for p in parts {
            if let Some((d, vs)) = texts(p)
                && d == c
            {
                taken.extend(vs);
            }
        }
        // A flag value is held by a part, or ruled out by the context.
        let flag =
            |v: bool| has(&|p| *p == E::Flag(c, v)) || given.iter().any(|g| **g == E::Flag(c, !v));
        // The values a row may hold: each list of the context's, or the schema's.
        let mut lists: Vec<Vec<&str>> = given
            .iter()
            .filter_map(|g| texts(g).filter(|(d, _)| *d == c).map(|(_, v)| v))
            .collect();
        if spec.ty == ColumnType::Str
            && let Some(all) = &spec.values
        {
            lists.push(all.iter().map(String::as_str).collect());
        }
        let every_value = has(&|p| *p == E::Null(c, false))
            || (flag(true) && flag(false))
            || has(&|p| {
                matches!(p, E::Text { column, equal: false, value }
                    if *column == c && taken.contains(&value.as_str()))
            })
            || lists.iter().any(|l| l.iter().all(|v| taken.contains(v)));
        empty_held && every_value
    })
}

/// What the definition says of its indicators: `(whole, parts, exhaustive)` for every largest
/// group of parts of one indicator no two of which share a person; `(part, whole)` for every
/// indicator inside another beyond its `subset-of` chain, among the population's people; and
/// `(position, part, whole)` where that holds at one position only, by its categories.
struct Read {
    groups: Vec<(String, Vec<String>, bool)>,
    inside: Vec<(String, String)>,
    inside_at: Vec<(String, String, String)>,
}

/// A definition's expressions as read here.
struct Definition {
    schema: Schema,
    population: E,
    /// Per dimension: its categories (name, expression) and its total's name.
    dims: Vec<(Vec<(String, E)>, String)>,
    names: Vec<String>,
    own: Vec<E>,
    /// The chain of wholes above each indicator, nearest first.
    chains: Vec<Vec<usize>>,
    /// Each indicator's expression and those of its chain.
    full: Vec<E>,
    /// Pairs declared exclusive (`excludes`).
    declared: BTreeSet<(usize, usize)>,
}

/// Reads the definition's population, dimensions and indicators.
#[allow(clippy::too_many_lines)] // one TOML table after another, each checked
fn definition(text: &str) -> std::result::Result<Definition, String> {
    let doc: toml::Table = text.parse().map_err(|e| format!("not TOML: {e}"))?;
    let text_of =
        |t: &toml::Value, k: &str| t.get(k).and_then(toml::Value::as_str).map(str::to_owned);
    let schema_name = doc
        .get("input-schema")
        .and_then(toml::Value::as_str)
        .ok_or("no `input-schema`")?;
    let schema = Schema::builtin(schema_name).ok_or("an unknown `input-schema`")?;
    let population = parse(
        doc.get("population")
            .and_then(toml::Value::as_str)
            .ok_or("no `population`")?,
        &schema,
    )
    .map_err(|e| format!("the population: {e}"))?;
    let dim_tables: Vec<&toml::Value> = match doc.get("dimension") {
        None => Vec::new(),
        Some(toml::Value::Array(list)) => list.iter().collect(),
        Some(one) => vec![one],
    };
    let mut dims = Vec::new();
    for d in dim_tables {
        let total = text_of(d, "total").ok_or("a dimension without `total`")?;
        let mut categories = Vec::new();
        for c in d
            .get("categories")
            .and_then(toml::Value::as_array)
            .ok_or("a dimension without categories")?
        {
            let name = text_of(c, "name").ok_or("a category without a name")?;
            let when = text_of(c, "when").ok_or("a category without `when`")?;
            let e = parse(&when, &schema).map_err(|e| format!("category `{name}`: {e}"))?;
            categories.push((name, e));
        }
        dims.push((categories, total));
    }
    let list = doc
        .get("indicators")
        .and_then(toml::Value::as_array)
        .ok_or("no `[[indicators]]`")?;
    let names: Vec<String> = list
        .iter()
        .map(|t| text_of(t, "name").ok_or("an indicator without a name"))
        .collect::<std::result::Result<_, _>>()?;
    let index = |n: &str| names.iter().position(|x| x == n);
    let mut own = Vec::new();
    let mut whole_of = Vec::new();
    let mut declared: BTreeSet<(usize, usize)> = BTreeSet::new();
    for (i, t) in list.iter().enumerate() {
        let when = text_of(t, "when").ok_or("an indicator without `when`")?;
        own.push(parse(&when, &schema).map_err(|e| format!("indicator `{}`: {e}", names[i]))?);
        whole_of.push(match text_of(t, "subset-of") {
            Some(w) => Some(index(&w).ok_or("a `subset-of` that names no indicator")?),
            None => None,
        });
        for other in t
            .get("excludes")
            .and_then(toml::Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let j = other
                .as_str()
                .and_then(index)
                .ok_or("an `excludes` that names no indicator")?;
            declared.insert((i.min(j), i.max(j)));
        }
    }
    let chains: Vec<Vec<usize>> = (0..names.len())
        .map(|i| {
            let mut out = Vec::new();
            let mut at = whole_of[i];
            while let Some(w) = at {
                if w == i || out.contains(&w) || out.len() > names.len() {
                    break;
                }
                out.push(w);
                at = whole_of[w];
            }
            out
        })
        .collect();
    let full: Vec<E> = (0..names.len())
        .map(|i| {
            and_of(
                &own,
                std::iter::once(i)
                    .chain(chains[i].iter().copied())
                    .collect(),
            )
        })
        .collect();
    Ok(Definition {
        schema,
        population,
        dims,
        names,
        own,
        chains,
        full,
        declared,
    })
}

fn read(text: &str) -> std::result::Result<Read, String> {
    let d = definition(text)?;
    let n = d.names.len();
    let always = |e: &E| conjuncts(e).iter().all(|x| **x == E::Const(true));
    // `k` inside `j` among the rows that meet every expression of `context`.
    let inside = |k: usize, j: usize, context: &[&E]| {
        let mut among: Vec<E> = context.iter().map(|e| (*e).clone()).collect();
        among.push(d.full[k].clone());
        let among = E::And(among);
        // (A `k` nobody can meet there is left out: its cells are published zeros.)
        k != j
            && !always(&d.full[j])
            && !d.chains[k].contains(&j)
            && !excludes(&among, &among)
            && implies(&among, &d.full[j])
    };
    let pairs = || (0..n).flat_map(|k| (0..n).map(move |j| (k, j)));
    let global: Vec<(usize, usize)> = pairs()
        .filter(|&(k, j)| inside(k, j, &[&d.population]))
        .collect();
    // Every position: each dimension at one of its categories or at its total (`None`).
    let mut positions: Vec<Vec<Option<usize>>> = vec![Vec::new()];
    for (categories, _) in &d.dims {
        positions = positions
            .into_iter()
            .flat_map(|p| {
                (0..=categories.len()).map(move |c| {
                    let mut q = p.clone();
                    q.push((c < categories.len()).then_some(c));
                    q
                })
            })
            .collect();
    }
    let mut inside_at = Vec::new();
    for at in positions {
        let mut context = vec![&d.population];
        let mut key = Vec::new();
        for (c, (categories, total)) in at.iter().zip(&d.dims) {
            match c {
                Some(c) => {
                    context.push(&categories[*c].1);
                    key.push(categories[*c].0.as_str());
                }
                None => key.push(total.as_str()),
            }
        }
        for (k, j) in pairs() {
            if !global.contains(&(k, j)) && inside(k, j, &context) {
                inside_at.push((
                    key.join(super::POSITION_SEPARATOR),
                    d.names[k].clone(),
                    d.names[j].clone(),
                ));
            }
        }
    }
    Ok(Read {
        groups: groups(&d),
        inside: global
            .into_iter()
            .map(|(k, j)| (d.names[k].clone(), d.names[j].clone()))
            .collect(),
        inside_at,
    })
}

/// The `and` of the expressions `ks` of `own`.
fn and_of(own: &[E], ks: Vec<usize>) -> E {
    let mut parts: Vec<E> = ks.into_iter().map(|k| own[k].clone()).collect();
    if parts.len() == 1 {
        parts.remove(0)
    } else {
        E::And(parts)
    }
}

/// The largest groups of parts of one indicator no two of which share a person, each with
/// whether they hold every person of it among the population's: `(whole, parts, exhaustive)`.
fn groups(d: &Definition) -> Vec<(String, Vec<String>, bool)> {
    // Among the population's people.
    let among = |i: usize| E::And(vec![d.population.clone(), d.full[i].clone()]);
    let separate = |i: usize, j: usize| {
        d.declared.contains(&(i.min(j), i.max(j))) || excludes(&among(i), &among(j))
    };
    let mut groups = Vec::new();
    for w in 0..d.names.len() {
        let below: Vec<usize> = (0..d.names.len())
            .filter(|&i| d.chains[i].contains(&w))
            .collect();
        let mut found = Vec::new();
        cliques(&separate, Vec::new(), below, Vec::new(), &mut found);
        for mut g in found.into_iter().filter(|g| g.len() >= 2) {
            g.sort_unstable();
            // Each member relative to the whole: its expression and those between them.
            let relative: Vec<E> = g
                .iter()
                .map(|&m| {
                    let upto = d.chains[m].iter().position(|&x| x == w).unwrap_or(0);
                    and_of(
                        &d.own,
                        std::iter::once(m)
                            .chain(d.chains[m][..upto].iter().copied())
                            .collect(),
                    )
                })
                .collect();
            let context = E::And(vec![d.population.clone(), d.full[w].clone()]);
            let exhaustive = covers(&relative, &context, &d.schema);
            groups.push((
                d.names[w].clone(),
                g.iter().map(|&m| d.names[m].clone()).collect(),
                exhaustive,
            ));
        }
    }
    groups
}

/// The largest groups holding `chosen` whose every two members are `separate` (Bron and
/// Kerbosch; a definition has a handful of indicators).
fn cliques(
    separate: &dyn Fn(usize, usize) -> bool,
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
        let keep = |w: &&usize| separate(v, **w);
        cliques(
            separate,
            next,
            candidates.iter().filter(keep).copied().collect(),
            excluded.iter().filter(keep).copied().collect(),
            out,
        );
        excluded.push(v);
    }
}

/// Reads the definition in the release record of the report `dir` and adds to `s` each relation
/// between its indicators that the manifest does not state, with a finding for each. Nothing to
/// do for an output without a release record (layout 1, or written before them).
pub(super) fn confirm(
    dir: &Path,
    m: &Manifest,
    s: &mut Structure,
    verdict: &mut Verdict,
) -> Result<()> {
    if !m.files.iter().any(|f| f.path == RELEASE_FILE) {
        return Ok(());
    }
    verdict.check("definition-relations");
    let path = dir.join(RELEASE_FILE);
    let release = read_release(&path)?;
    let manifest_finding =
        |text: String| Finding::new(Rule::Manifest, text).file(path.display().to_string());
    let Some(text) = release.get("definition").and_then(Value::as_str) else {
        verdict.push(manifest_finding(
            "the release record holds no definition, so the relations between the indicators cannot be read from it".to_owned(),
        ));
        return Ok(());
    };
    let hash = hex::encode(Sha256::digest(text.as_bytes()));
    if m.str("report_sha256") != Some(hash.as_str()) {
        verdict.push(manifest_finding(
            "the definition in the release record is not the one the manifest names (`report_sha256`)".to_owned(),
        ));
    }
    let Read {
        groups,
        inside,
        inside_at,
    } = match read(text) {
        Ok(read) => read,
        Err(e) => {
            verdict.push(manifest_finding(format!(
                "verify cannot read the report's definition ({e}), so it cannot check the relations the manifest states"
            )));
            return Ok(());
        }
    };
    let mut added = 0usize;
    for (whole, parts, exhaustive) in groups {
        let stated = |need_sum: bool| {
            s.exclusive.iter().any(|(w, members, all)| {
                (!need_sum || (*w == whole && *all)) && parts.iter().all(|p| members.contains(p))
            })
        };
        if !stated(false) {
            verdict.push(manifest_finding(format!(
                "the definition makes `{}` (parts of `{whole}`) exclusive, which the manifest does not state: the report was protected without knowing that their cells add up to {} `{whole}`'s",
                parts.join("`, `"),
                if exhaustive { "exactly" } else { "no more than" }
            )));
        } else if exhaustive && !stated(true) {
            verdict.push(manifest_finding(format!(
                "by the definition `{}` hold every person of `{whole}`, which the manifest does not state: the report was protected without knowing that `{whole}` is their sum",
                parts.join("`, `")
            )));
        } else {
            continue;
        }
        added += 1;
        s.exclusive.push((whole, parts, exhaustive));
    }
    let declared = |part: &str, whole: &str| {
        s.indicators
            .iter()
            .any(|(n, w)| n == part && w.as_deref() == Some(whole))
            || s.implied_subsets
                .iter()
                .any(|(p, w)| p == part && w == whole)
    };
    let missing: Vec<(String, String)> = inside
        .into_iter()
        .filter(|(part, whole)| !declared(part, whole))
        .collect();
    for (part, whole) in missing {
        verdict.push(manifest_finding(format!(
            "by the definition everyone in `{part}` is in `{whole}`, which the manifest does not state"
        )));
        added += 1;
        s.implied_subsets.push((part, whole));
    }
    let missing_at: Vec<(String, String, String)> = inside_at
        .into_iter()
        .filter(|x| !s.position_subsets.contains(x))
        .collect();
    for (at, part, whole) in missing_at {
        verdict.push(manifest_finding(format!(
            "by the definition everyone in `{part}` is in `{whole}` at the position `{}`, which the manifest does not state",
            at.replace(super::POSITION_SEPARATOR, " / ")
        )));
        added += 1;
        s.position_subsets.push((at, part, whole));
    }
    verdict.fact("relations_added_from_the_definition", &added);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt::Write as _;

    fn schema() -> Schema {
        Schema::builtin("opds-person").unwrap()
    }

    fn e(text: &str) -> E {
        parse(text, &schema()).unwrap_or_else(|err| panic!("{text}: {err}"))
    }

    #[test]
    fn exclusion_cover_and_inclusion_are_read_where_the_expressions_say_so() {
        let x = |a: &str, b: &str| excludes(&e(a), &e(b));
        assert!(x("kooperationsplan", "not kooperationsplan"));
        assert!(x("kooperationsplan", "kooperationsplan = N"));
        assert!(x("massnahme is null", "elb and massnahme = 'FbW'"));
        assert!(x("beschaeftigung != 'keine'", "beschaeftigung = 'keine'"));
        assert!(x(
            "letztes_beratungsgespraech > month_end - 6 weeks",
            "letztes_beratungsgespraech <= month_end - 42 days"
        ));
        assert!(!x(
            "letztes_beratungsgespraech > month_end - 6 weeks",
            "letztes_beratungsgespraech >= month_end - 42 days"
        ));
        assert!(!x("kooperationsplan", "elb"));
        assert!(!x("kooperationsplan or elb", "not kooperationsplan"));
        let c = |parts: &[&str]| {
            covers(
                &parts.iter().map(|p| e(p)).collect::<Vec<_>>(),
                &E::Const(true),
                &schema(),
            )
        };
        assert!(c(&["kooperationsplan", "not kooperationsplan"]));
        assert!(c(&["kooperationsplan = J", "kooperationsplan = N"]));
        assert!(c(&[
            "beschaeftigung in ('keine', 'sv_pflichtig', 'geringfuegig')",
            "beschaeftigung in ('selbststaendig', 'ausbildung')"
        ]));
        assert!(!c(&[
            "beschaeftigung in ('keine', 'sv_pflichtig', 'geringfuegig')"
        ]));
        assert!(!c(&["massnahme = 'FbW'", "massnahme != 'FbW'"]));
        assert!(c(&[
            "massnahme = 'FbW'",
            "massnahme != 'FbW'",
            "massnahme is null"
        ]));
        let i = |a: &str, b: &str| implies(&e(a), &e(b));
        assert!(i("massnahme = 'Berufssprachkurs'", "massnahme is not null"));
        assert!(i(
            "elb and massnahme is null",
            "massnahme is null or kooperationsplan"
        ));
        assert!(!i(
            "massnahme is not null",
            "massnahme = 'Berufssprachkurs'"
        ));
    }

    #[test]
    fn a_definition_is_read_for_its_groups_and_subsets() {
        let shipped = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../pipelines/gefluechtete.toml"
        ))
        .unwrap();
        let Read {
            groups,
            inside,
            inside_at,
        } = read(&shipped).unwrap();
        assert_eq!(
            groups,
            vec![(
                "bestand".to_owned(),
                vec!["sv_beschaeftigt".to_owned(), "geringfuegig".to_owned()],
                false
            )]
        );
        assert!(inside.is_empty(), "{inside:?}");
        assert!(inside_at.is_empty(), "{inside_at:?}");
        let other = |name: &str| {
            std::fs::read_to_string(format!(
                "{}/../../pipelines/{name}.toml",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap()
        };
        let groups = read(&other("beratung-sprachniveau")).unwrap().groups;
        assert_eq!(
            groups,
            vec![(
                "elb".to_owned(),
                vec!["beraten_3m".to_owned(), "nie_beraten".to_owned()],
                false
            )]
        );
        assert_eq!(
            read(&other("gefluechtete-geschlecht"))
                .unwrap()
                .groups
                .len(),
            1
        );
        let head = shipped.split("[[indicators]]").next().unwrap();
        let text = format!(
            "{head}[[indicators]]\nname = \"bestand\"\nwhen = \"true\"\n\
             [[indicators]]\nname = \"mit\"\nwhen = \"kooperationsplan\"\nsubset-of = \"bestand\"\n\
             [[indicators]]\nname = \"ohne\"\nwhen = \"not kooperationsplan\"\nsubset-of = \"bestand\"\n\
             [[indicators]]\nname = \"kurs\"\nwhen = \"massnahme = 'Berufssprachkurs'\"\nsubset-of = \"bestand\"\n\
             [[indicators]]\nname = \"massnahme\"\nwhen = \"massnahme is not null\"\nsubset-of = \"bestand\"\n\
             [[indicators]]\nname = \"ukr\"\nwhen = \"staatsangehoerigkeit = 'UKR'\"\nsubset-of = \"bestand\"\n\
             [[indicators]]\nname = \"asyl\"\nwhen = \"staatsangehoerigkeit != 'UKR'\"\nsubset-of = \"bestand\"\n\
             [[indicators]]\nname = \"elb\"\nwhen = \"elb\"\nsubset-of = \"bestand\"\n"
        );
        let Read {
            groups,
            inside,
            inside_at,
        } = read(&text).unwrap();
        assert!(groups.contains(&(
            "bestand".to_owned(),
            vec!["mit".to_owned(), "ohne".to_owned()],
            true
        )));
        let pair = |a: &str, b: &str| (a.to_owned(), b.to_owned());
        // Among the population (all `elb`, all of nine nationalities) `ukr` and `asyl` hold
        // everyone of `bestand`; `elb` is everyone.
        assert!(groups.contains(&(
            "bestand".to_owned(),
            vec!["ukr".to_owned(), "asyl".to_owned()],
            true
        )));
        assert!(inside.contains(&pair("kurs", "massnahme")));
        assert!(inside.contains(&pair("bestand", "elb")));
        assert!(!inside.contains(&pair("bestand", "ukr")));
        // At the position Ukraine everyone is in `ukr`; at Asylherkunftslaender in `asyl`.
        let at = |p: &str, a: &str, b: &str| (p.to_owned(), a.to_owned(), b.to_owned());
        assert!(inside_at.contains(&at("Ukraine", "bestand", "ukr")));
        assert!(inside_at.contains(&at("Asylherkunftslaender", "bestand", "asyl")));
        assert!(
            !inside_at.iter().any(|x| x.0 == "Insgesamt"),
            "{inside_at:?}"
        );
        assert!(read(&text.replace("not kooperationsplan", "not (kooperationsplan")).is_err());
    }

    /// A row of (kooperationsplan, beschaeftigung, massnahme), every one the schema allows
    /// (`massnahme`, free text, as the values the expressions name, another, or empty).
    fn rows() -> Vec<(bool, &'static str, Option<&'static str>)> {
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

    fn holds(e: &E, row: (bool, &str, Option<&str>), schema: &Schema) -> bool {
        let text = |c: usize| match schema.columns[c].name.as_str() {
            "beschaeftigung" => Some(row.1),
            "massnahme" => row.2,
            other => panic!("{other}"),
        };
        match e {
            E::Const(v) => *v,
            E::Or(p) => p.iter().any(|x| holds(x, row, schema)),
            E::And(p) => p.iter().all(|x| holds(x, row, schema)),
            E::Not(x) => !holds(x, row, schema),
            E::Flag(_, v) => row.0 == *v,
            E::Text {
                column,
                equal,
                value,
            } => text(*column).is_some_and(|v| (v == value) == *equal),
            E::In(c, vs) => text(*c).is_some_and(|v| vs.iter().any(|w| w == v)),
            E::Null(c, is_null) => text(*c).is_none() == *is_null,
            E::Days(..) | E::Compared(_) => unreachable!("no dates here"),
        }
    }

    /// verify's reading misses no relation the expressions make, checked on every row the
    /// schema allows, over 2,000 definitions of three indicators from single comparisons and
    /// their negations under four populations (the writer's plan has the same test).
    #[test]
    #[allow(clippy::too_many_lines)] // the generator, the rows and the three checks side by side
    fn the_reading_knows_every_relation_the_expressions_make() {
        let atoms = [
            "kooperationsplan",
            "kooperationsplan = N",
            "beschaeftigung = 'keine'",
            "beschaeftigung != 'keine'",
            "beschaeftigung in ('keine', 'ausbildung')",
            "beschaeftigung in ('sv_pflichtig', 'geringfuegig', 'selbststaendig')",
            "massnahme is null",
            "massnahme is not null",
            "massnahme = 'FbW'",
            "massnahme != 'FbW'",
            "massnahme in ('FbW', 'AGH')",
        ];
        let populations = [
            "true",
            "kooperationsplan",
            "beschaeftigung != 'keine'",
            "massnahme is not null",
        ];
        let all = rows();
        let mut seed = 5u64;
        let mut next = |n: usize| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((seed >> 33) as usize) % n
        };
        let mut checked = [0usize; 3];
        for case in 0..2000 {
            let population = populations[next(populations.len())];
            let mut text = format!(
                "input-schema = \"opds-person\"\npopulation = \"{population}\"\n\
                 [[indicators]]\nname = \"bestand\"\nwhen = \"true\"\n"
            );
            for i in 0..3 {
                let atom = atoms[next(atoms.len())];
                let when = if next(2) == 0 {
                    atom.to_owned()
                } else {
                    format!("not ({atom})")
                };
                writeln!(
                    text,
                    "[[indicators]]\nname = \"i{i}\"\nwhen = \"{when}\"\nsubset-of = \"bestand\""
                )
                .expect("a String takes text");
            }
            let d = definition(&text).unwrap();
            let r = read(&text).unwrap();
            let of: Vec<Vec<usize>> = (0..4)
                .map(|k| {
                    (0..all.len())
                        .filter(|&x| {
                            holds(&d.population, all[x], &d.schema)
                                && holds(&d.full[k], all[x], &d.schema)
                        })
                        .collect()
                })
                .collect();
            let name = |k: usize| d.names[k].clone();
            for i in 1..4 {
                for j in 1..4 {
                    if i == j || of[i].is_empty() || of[j].is_empty() {
                        continue;
                    }
                    if i < j && !of[i].iter().any(|x| of[j].contains(x)) {
                        checked[0] += 1;
                        assert!(
                            r.groups
                                .iter()
                                .any(|(_, m, _)| m.contains(&name(i)) && m.contains(&name(j))),
                            "case {case}: {} and {} share nobody:\n{text}",
                            name(i),
                            name(j)
                        );
                    }
                    if of[i].iter().all(|x| of[j].contains(x)) {
                        checked[1] += 1;
                        assert!(
                            r.inside.contains(&(name(i), name(j))),
                            "case {case}: {} inside {}:\n{text}",
                            name(i),
                            name(j)
                        );
                    }
                }
            }
            for (w, members, exhaustive) in &r.groups {
                if w != "bestand" {
                    continue;
                }
                let held: BTreeSet<usize> = members
                    .iter()
                    .flat_map(|m| of[d.names.iter().position(|n| n == m).unwrap()].clone())
                    .collect();
                if held.len() == of[0].len() {
                    checked[2] += 1;
                    assert!(*exhaustive, "case {case}: {members:?} hold all:\n{text}");
                }
            }
        }
        assert!(checked.iter().all(|&n| n > 20), "{checked:?}");
    }
}
