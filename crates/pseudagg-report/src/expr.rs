//! The expression language of report definitions.
//!
//! Filters, categories and indicators are small boolean expressions over the input schema's columns:
//!
//! ```text
//! expr    := or
//! or      := and ("or" and)*
//! and     := unary ("and" unary)*
//! unary   := "not" unary | primary
//! primary := "(" expr ")" | "true" | "false"
//!          | column                               -- a bool column: true where J
//!          | column ("=" | "!=") literal          -- text: 'quoted', bool: J or N
//!          | column ("<" | "<=" | ">" | ">=" | "=" | "!=") window   -- date columns
//!          | column "in" "(" 'a', 'b', ... ")"
//!          | column "is" ["not"] "null"
//! window  := "month_end" [("-" | "+") N ("days" | "weeks")]
//! ```
//!
//! `month_end` is the last day of the report month. Dates can only be compared with it: an absolute
//! date would cut the data into calendar periods, the start of a time series, which the opDs rules
//! forbid. The Datenstand itself and every column of class identifier, personal, staff or free-text
//! are refused. A comparison with an empty (null) value is false; `is null` tests for it.

use std::fmt;

use pseudagg_core::{ColumnClass, ColumnType, Schema};

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    fn holds<T: PartialOrd>(self, a: &T, b: &T) -> bool {
        match self {
            Self::Eq => a == b,
            Self::Ne => a != b,
            Self::Lt => a < b,
            Self::Le => a <= b,
            Self::Gt => a > b,
            Self::Ge => a >= b,
        }
    }
}

/// A checked expression; columns are resolved to their index in the schema.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Const(bool),
    Or(Vec<Expr>),
    And(Vec<Expr>),
    Not(Box<Expr>),
    /// A bool column, true where J.
    Flag(usize),
    StrCmp {
        column: usize,
        op: Op,
        value: String,
    },
    BoolCmp {
        column: usize,
        op: Op,
        value: bool,
    },
    /// Compares a date column with `month_end + offset_days`.
    DateCmp {
        column: usize,
        op: Op,
        offset_days: i64,
    },
    In {
        column: usize,
        values: Vec<String>,
    },
    IsNull {
        column: usize,
        negated: bool,
    },
}

impl Expr {
    /// The columns the expression reads.
    pub fn columns(&self, out: &mut Vec<usize>) {
        match self {
            Self::Const(_) => {}
            Self::Or(v) | Self::And(v) => v.iter().for_each(|e| e.columns(out)),
            Self::Not(e) => e.columns(out),
            Self::Flag(c)
            | Self::StrCmp { column: c, .. }
            | Self::BoolCmp { column: c, .. }
            | Self::DateCmp { column: c, .. }
            | Self::In { column: c, .. }
            | Self::IsNull { column: c, .. } => out.push(*c),
        }
    }
}

/// Can no row satisfy both `a` and `b`? Decided from their conjuncts alone, so it answers
/// `true` only where the expressions themselves say so: one conjunct of each that no value of
/// one column meets together (`x is null` beside any comparison of `x`, which is false on a
/// null; `in` lists or equalities with no value in common; date or flag comparisons whose ranges
/// do not meet), or a conjunct `false`. `false` means "not known to exclude each other".
///
/// A negation excludes what it negates: `not e` beside an expression every row of which meets
/// `e` (`not kooperationsplan` and `kooperationsplan`), and `x != 'v'` beside `x = 'v'` (both
/// false on a null).
#[must_use]
pub fn excludes(a: &Expr, b: &Expr) -> bool {
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    conjuncts(a, &mut xs);
    conjuncts(b, &mut ys);
    // `x != 'a' and x != 'b'` beside `x in ('a', 'b')`: the `!=`s of one side together rule out
    // every value the other allows.
    let ruled_out = |xs: &[&Expr], ys: &[&Expr]| {
        ys.iter().any(|y| {
            allowed_texts(y).is_some_and(|(c, allowed)| {
                allowed.iter().all(|v| {
                    xs.iter().any(|x| {
                        matches!(x, Expr::StrCmp { column, op: Op::Ne, value }
                            if *column == c && value == v)
                    })
                })
            })
        })
    };
    if ruled_out(&xs, &ys) || ruled_out(&ys, &xs) {
        return true;
    }
    // An `or` excludes what each of its branches excludes.
    let branches_apart =
        |x: &Expr, other: &Expr| matches!(x, Expr::Or(ps) if ps.iter().all(|p| excludes(p, other)));
    xs.iter().any(|x| {
        ys.iter()
            .any(|y| atoms_exclude(x, y) || atoms_exclude(y, x))
    }) || xs.iter().any(|x| denies(x, b) || branches_apart(x, b))
        || ys.iter().any(|y| denies(y, a) || branches_apart(y, a))
}

/// Is the conjunct `x` a negation `not e` that no row of `other` meets, every one of them meeting
/// `e`?
fn denies(x: &Expr, other: &Expr) -> bool {
    matches!(x, Expr::Not(e) if implies(other, e))
}

/// Does every row that meets `context` meet at least one of `parts`? Decided from the
/// expressions alone, so it answers `true` only where they say so: one of them always true; one
/// the negation of another (`kooperationsplan`, `not kooperationsplan`); or comparisons of one
/// column that leave none of its values out (`x = 'v'` and `x != 'v'`; `in` lists and equalities
/// that hold every value the schema allows, or every value the context's own list of that
/// column allows; `flag` and `flag = N`), with `x is null` among them when the column may be
/// empty and the context does not rule that out. `false` means "not known to cover".
#[must_use]
pub fn covers(parts: &[&Expr], context: &Expr, schema: &Schema) -> bool {
    if parts.iter().any(|p| is_always(p)) {
        return true;
    }
    if parts.iter().any(|p| {
        let not_p = negation((*p).clone(), schema);
        parts.iter().any(|q| **q == not_p)
    }) {
        return true;
    }
    // An `or` covers what its branches cover together.
    if parts.iter().any(|p| matches!(p, Expr::Or(_))) {
        let mut flat: Vec<&Expr> = Vec::new();
        for p in parts {
            match p {
                Expr::Or(branches) => flat.extend(branches),
                other => flat.push(other),
            }
        }
        return covers(&flat, context, schema);
    }
    let mut given = Vec::new();
    conjuncts(context, &mut given);
    // Per column: the values the parts that compare it alone take in.
    let mut columns: Vec<usize> = parts.iter().filter_map(|p| compared_column(p)).collect();
    columns.extend(parts.iter().filter_map(|p| match p {
        Expr::IsNull { column, .. } => Some(*column),
        _ => None,
    }));
    columns.sort_unstable();
    columns.dedup();
    columns.into_iter().any(|c| {
        let spec = &schema.columns[c];
        let null = !spec.nullable
            || given.iter().any(|g| compared_column(g) == Some(c))
            || parts
                .iter()
                .any(|p| matches!(p, Expr::IsNull { column, negated: false } if *column == c));
        let every_value = parts
            .iter()
            .any(|p| matches!(p, Expr::IsNull { column, negated: true } if *column == c))
            || match spec.ty {
                ColumnType::Bool => {
                    let has = |v: bool| {
                        let is = |e: &&Expr| flag_value(e).is_some_and(|(d, w)| d == c && w == v);
                        parts.iter().any(is)
                            || given
                                .iter()
                                .any(|g| flag_value(g).is_some_and(|(d, w)| d == c && w != v))
                    };
                    has(true) && has(false)
                }
                ColumnType::Str => {
                    let mut taken: Vec<&str> = Vec::new();
                    for p in parts {
                        if let Some((d, vs)) = allowed_texts(p)
                            && d == c
                        {
                            taken.extend(vs);
                        }
                    }
                    let all_but = parts.iter().any(|p| {
                        matches!(p, Expr::StrCmp { column, op: Op::Ne, value }
                        if *column == c && taken.contains(&value.as_str()))
                    });
                    // The values a row may hold: each list of the context's, or the schema's.
                    let lists: Vec<Vec<&str>> = given
                        .iter()
                        .filter_map(|g| allowed_texts(g).filter(|(d, _)| *d == c).map(|(_, v)| v))
                        .chain(
                            spec.values
                                .iter()
                                .map(|all| all.iter().map(String::as_str).collect()),
                        )
                        .collect();
                    all_but || lists.iter().any(|l| l.iter().all(|v| taken.contains(v)))
                }
                // Dates: only `is not null` (above) holds every value.
                ColumnType::Date => false,
            };
        null && every_value
    })
}

/// Does every row that satisfies `a` satisfy `b`? Decided from their conjuncts alone: each
/// conjunct of `b` is met wherever one conjunct of `a` is (the same conjunct; `x is not null`
/// beside any comparison of `x`; an `in` list or equality within another; a date range within
/// another; `true`). `false` means "not known to be inside".
#[must_use]
pub fn implies(a: &Expr, b: &Expr) -> bool {
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    conjuncts(a, &mut xs);
    conjuncts(b, &mut ys);
    // No row meets `a` (two of its conjuncts exclude each other): it is inside everything.
    if xs.iter().enumerate().any(|(i, x)| {
        xs[i + 1..]
            .iter()
            .any(|y| atoms_exclude(x, y) || atoms_exclude(y, x))
    }) {
        return true;
    }
    // A conjunct `p or q` of `a`: `b` follows from each case.
    if let Some(at) = xs.iter().position(|x| matches!(x, Expr::Or(_))) {
        let Expr::Or(cases) = xs[at] else {
            unreachable!("an or")
        };
        return cases.iter().all(|case| {
            let mut with: Vec<Expr> = xs.iter().map(|x| (*x).clone()).collect();
            with[at] = case.clone();
            implies(&Expr::And(with), b)
        });
    }
    // A negation `not e` holds wherever `a` does when no row of `a` meets `e`; an `or` where
    // one of its branches does.
    ys.iter().all(|y| {
        matches!(y, Expr::Const(true))
            || xs.iter().any(|x| atom_implies(x, y))
            || matches!(y, Expr::Not(e) if excludes(a, e))
            || matches!(y, Expr::Or(ps) if ps.iter().any(|p| implies(a, p)))
    })
}

/// Is `e` true on every row (`true`, or `and`s of it)?
#[must_use]
pub fn is_always(e: &Expr) -> bool {
    let mut xs = Vec::new();
    conjuncts(e, &mut xs);
    xs.iter().all(|x| matches!(x, Expr::Const(true)))
}

/// Is `y` met wherever `x` is?
fn atom_implies(x: &Expr, y: &Expr) -> bool {
    if x == y {
        return true;
    }
    if let Expr::StrCmp {
        column: d,
        op: Op::Ne,
        value,
    } = y
        && let Some((c, xs)) = allowed_texts(x)
    {
        return c == *d && !xs.contains(&value.as_str());
    }
    if let Expr::IsNull {
        column,
        negated: true,
    } = y
    {
        return compared_column(x) == Some(*column);
    }
    if let (Some((c, xs)), Some((d, ys))) = (allowed_texts(x), allowed_texts(y)) {
        return c == d && xs.iter().all(|v| ys.contains(v));
    }
    if let (Some((c, a0, a1)), Some((d, b0, b1))) = (day_range(x), day_range(y)) {
        return c == d && b0 <= a0 && a1 <= b1;
    }
    if let (Some((c, v)), Some((d, w))) = (flag_value(x), flag_value(y)) {
        return c == d && v == w;
    }
    false
}

/// The conjuncts of `e` (nested `and`s flattened).
fn conjuncts<'a>(e: &'a Expr, out: &mut Vec<&'a Expr>) {
    match e {
        Expr::And(parts) => parts.iter().for_each(|p| conjuncts(p, out)),
        other => out.push(other),
    }
}

/// The column a comparison reads, for a conjunct that is false on a null.
fn compared_column(e: &Expr) -> Option<usize> {
    match e {
        Expr::Flag(c)
        | Expr::StrCmp { column: c, .. }
        | Expr::BoolCmp { column: c, .. }
        | Expr::DateCmp { column: c, .. }
        | Expr::In { column: c, .. }
        | Expr::IsNull {
            column: c,
            negated: true,
        } => Some(*c),
        _ => None,
    }
}

/// The text values a conjunct allows, where it is an `in` list or an equality.
fn allowed_texts(e: &Expr) -> Option<(usize, Vec<&str>)> {
    match e {
        Expr::In { column, values } => Some((*column, values.iter().map(String::as_str).collect())),
        Expr::StrCmp {
            column,
            op: Op::Eq,
            value,
        } => Some((*column, vec![value.as_str()])),
        _ => None,
    }
}

/// The days (relative to the month's end) a date comparison allows: `[from, to]`, inclusive.
fn day_range(e: &Expr) -> Option<(usize, i64, i64)> {
    let Expr::DateCmp {
        column,
        op,
        offset_days: d,
    } = e
    else {
        return None;
    };
    let (from, to) = match op {
        Op::Eq => (*d, *d),
        Op::Gt => (d + 1, i64::MAX),
        Op::Ge => (*d, i64::MAX),
        Op::Lt => (i64::MIN, d - 1),
        Op::Le => (i64::MIN, *d),
        Op::Ne => return None,
    };
    Some((*column, from, to))
}

/// The value a flag conjunct requires: `flag`, `flag = true`, `flag = false`.
fn flag_value(e: &Expr) -> Option<(usize, bool)> {
    match e {
        Expr::Flag(c) => Some((*c, true)),
        Expr::BoolCmp {
            column,
            op: Op::Eq,
            value,
        } => Some((*column, *value)),
        Expr::BoolCmp {
            column,
            op: Op::Ne,
            value,
        } => Some((*column, !value)),
        _ => None,
    }
}

/// Does no row meet both conjuncts (checked one way round; [`excludes`] asks both)?
fn atoms_exclude(x: &Expr, y: &Expr) -> bool {
    if matches!(x, Expr::Const(false)) {
        return true;
    }
    if let Expr::IsNull {
        column,
        negated: false,
    } = x
    {
        return compared_column(y) == Some(*column);
    }
    if let Expr::StrCmp {
        column,
        op: Op::Ne,
        value,
    } = x
        && let Some((d, ys)) = allowed_texts(y)
    {
        return *column == d && ys.iter().all(|w| *w == value);
    }
    if let (Some((c, xs)), Some((d, ys))) = (allowed_texts(x), allowed_texts(y)) {
        return c == d && !xs.iter().any(|v| ys.contains(v));
    }
    if let (Some((c, a0, a1)), Some((d, b0, b1))) = (day_range(x), day_range(y)) {
        return c == d && (a1 < b0 || b1 < a0);
    }
    if let (Some((c, v)), Some((d, w))) = (flag_value(x), flag_value(y)) {
        return c == d && v != w;
    }
    false
}

/// A problem in an expression, with the character position where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExprError {
    pub position: usize,
    pub message: String,
}

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at character {}: {}", self.position + 1, self.message)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Int(i64),
    Op(Op),
    LParen,
    RParen,
    Comma,
    Minus,
    Plus,
}

fn lex(text: &str) -> Result<Vec<(usize, Tok)>, ExprError> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let err = |position: usize, message: &str| ExprError {
        position,
        message: message.to_owned(),
    };
    while i < chars.len() {
        let (pos, c) = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push((pos, Tok::LParen));
                i += 1;
            }
            ')' => {
                out.push((pos, Tok::RParen));
                i += 1;
            }
            ',' => {
                out.push((pos, Tok::Comma));
                i += 1;
            }
            '-' => {
                out.push((pos, Tok::Minus));
                i += 1;
            }
            '+' => {
                out.push((pos, Tok::Plus));
                i += 1;
            }
            '=' => {
                out.push((pos, Tok::Op(Op::Eq)));
                i += 1;
            }
            '!' if chars.get(i + 1).map(|c| c.1) == Some('=') => {
                out.push((pos, Tok::Op(Op::Ne)));
                i += 2;
            }
            '<' | '>' => {
                let eq = chars.get(i + 1).map(|c| c.1) == Some('=');
                let op = match (c, eq) {
                    ('<', true) => Op::Le,
                    ('<', false) => Op::Lt,
                    (_, true) => Op::Ge,
                    _ => Op::Gt,
                };
                out.push((pos, Tok::Op(op)));
                i += if eq { 2 } else { 1 };
            }
            '\'' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(err(pos, "a text in quotes is not closed")),
                        Some((_, '\'')) if chars.get(i + 1).map(|c| c.1) == Some('\'') => {
                            s.push('\'');
                            i += 2;
                        }
                        Some((_, '\'')) => {
                            i += 1;
                            break;
                        }
                        Some((_, ch)) => {
                            s.push(*ch);
                            i += 1;
                        }
                    }
                }
                out.push((pos, Tok::Str(s)));
            }
            c if c.is_ascii_digit() => {
                let start = i;
                while i < chars.len() && chars[i].1.is_ascii_digit() {
                    i += 1;
                }
                let digits: String = chars[start..i].iter().map(|c| c.1).collect();
                let n = digits
                    .parse()
                    .map_err(|_| err(pos, "the number is too large"))?;
                out.push((pos, Tok::Int(n)));
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].1.is_ascii_alphanumeric() || chars[i].1 == '_') {
                    i += 1;
                }
                out.push((
                    pos,
                    Tok::Ident(chars[start..i].iter().map(|c| c.1).collect()),
                ));
            }
            _ => return Err(err(pos, &format!("unexpected character `{c}`"))),
        }
    }
    Ok(out)
}

/// `not e` as the same condition without `not` where one exists, pushed down to the comparisons
/// (`not (a and b)` is `not a or not b`): `not (x is null)` is `x is not null`; `not (x = 'v')`
/// is `x != 'v' or x is null` (`x != 'v'` alone on a column the schema never leaves empty); `not
/// flag` is `flag = N` (or empty); `not (x in (...))` the schema's other values (or empty), or
/// `!=` each value. Each is true on exactly the rows `not e` is, and the relations between
/// indicators are read from comparisons ([`excludes`], [`implies`], [`covers`]). Only a date
/// comparison keeps its `not`.
#[must_use]
pub fn negation(e: Expr, schema: &Schema) -> Expr {
    let may_be_empty = |c: usize| schema.columns[c].nullable;
    // `cond`, or the column empty where it may be.
    let or_empty = |column: usize, cond: Expr| {
        if may_be_empty(column) {
            Expr::Or(vec![
                cond,
                Expr::IsNull {
                    column,
                    negated: false,
                },
            ])
        } else {
            cond
        }
    };
    let flip = |op: Op| if op == Op::Eq { Op::Ne } else { Op::Eq };
    match e {
        Expr::Not(inner) => *inner,
        Expr::Const(v) => Expr::Const(!v),
        Expr::And(parts) => Expr::Or(parts.into_iter().map(|p| negation(p, schema)).collect()),
        Expr::Or(parts) => Expr::And(parts.into_iter().map(|p| negation(p, schema)).collect()),
        Expr::IsNull { column, negated } => Expr::IsNull {
            column,
            negated: !negated,
        },
        Expr::Flag(column) => or_empty(
            column,
            Expr::BoolCmp {
                column,
                op: Op::Eq,
                value: false,
            },
        ),
        Expr::BoolCmp { column, op, value } if matches!(op, Op::Eq | Op::Ne) => or_empty(
            column,
            Expr::BoolCmp {
                column,
                op: flip(op),
                value,
            },
        ),
        Expr::StrCmp { column, op, value } if matches!(op, Op::Eq | Op::Ne) => or_empty(
            column,
            Expr::StrCmp {
                column,
                op: flip(op),
                value,
            },
        ),
        Expr::In { column, values } => {
            let cond = match &schema.columns[column].values {
                Some(all) => {
                    let rest: Vec<String> = all
                        .iter()
                        .filter(|v| !values.contains(v))
                        .cloned()
                        .collect();
                    if rest.is_empty() {
                        Expr::Const(false)
                    } else {
                        Expr::In {
                            column,
                            values: rest,
                        }
                    }
                }
                None => Expr::And(
                    values
                        .into_iter()
                        .map(|value| Expr::StrCmp {
                            column,
                            op: Op::Ne,
                            value,
                        })
                        .collect(),
                ),
            };
            or_empty(column, cond)
        }
        other => Expr::Not(Box::new(other)),
    }
}

struct Parser<'a> {
    toks: Vec<(usize, Tok)>,
    at: usize,
    end: usize,
    schema: &'a Schema,
    /// Brackets and `not`s open around the current position.
    depth: usize,
}

/// The deepest nesting of brackets and `not` an expression may have. The parser and the
/// evaluator recurse once per level, so this bounds their stack; a real filter needs a handful.
pub const MAX_DEPTH: usize = 64;

/// The most tokens (names, values, operators, brackets) an expression may have. Flat `and` and
/// `or` chains are evaluated without recursion, but every token costs work on every row.
pub const MAX_TOKENS: usize = 10_000;

/// Parses and checks an expression against `schema`.
pub fn parse(text: &str, schema: &Schema) -> Result<Expr, ExprError> {
    let toks = lex(text)?;
    if let Some((pos, _)) = toks.get(MAX_TOKENS) {
        return Err(ExprError {
            position: *pos,
            message: format!(
                "the expression has more than {MAX_TOKENS} names, values and operators; split it, or use `in (...)` for a list of values"
            ),
        });
    }
    let mut p = Parser {
        toks,
        at: 0,
        end: text.chars().count(),
        schema,
        depth: 0,
    };
    if p.toks.is_empty() {
        return Err(ExprError {
            position: 0,
            message: "the expression is empty".to_owned(),
        });
    }
    let e = p.or()?;
    if let Some((pos, _)) = p.toks.get(p.at) {
        return Err(ExprError {
            position: *pos,
            message: "unexpected text after the end of the expression".to_owned(),
        });
    }
    Ok(e)
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at).map(|t| &t.1)
    }

    fn pos(&self) -> usize {
        self.toks.get(self.at).map_or(self.end, |t| t.0)
    }

    #[allow(clippy::unused_self)] // reads as `self.fail(...)` beside the other parser steps
    fn fail<T>(&self, position: usize, message: impl Into<String>) -> Result<T, ExprError> {
        Err(ExprError {
            position,
            message: message.into(),
        })
    }

    fn keyword(&mut self, word: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Ident(w)) if w == word) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<Expr, ExprError> {
        let mut parts = vec![self.and()?];
        while self.keyword("or") {
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 {
            parts.pop().expect("one")
        } else {
            Expr::Or(parts)
        })
    }

    fn and(&mut self) -> Result<Expr, ExprError> {
        let mut parts = vec![self.unary()?];
        while self.keyword("and") {
            parts.push(self.unary()?);
        }
        Ok(if parts.len() == 1 {
            parts.pop().expect("one")
        } else {
            Expr::And(parts)
        })
    }

    /// Enters one level of nesting at `pos`, or refuses one too deep.
    fn enter(&mut self, pos: usize) -> Result<(), ExprError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.fail(
                pos,
                format!("brackets and `not` are nested more than {MAX_DEPTH} deep; simplify the expression"),
            );
        }
        Ok(())
    }

    fn unary(&mut self) -> Result<Expr, ExprError> {
        let pos = self.pos();
        if self.keyword("not") {
            self.enter(pos)?;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(negation(inner, self.schema));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, ExprError> {
        let pos = self.pos();
        match self.peek().cloned() {
            Some(Tok::LParen) => {
                self.enter(pos)?;
                self.at += 1;
                let e = self.or()?;
                if self.peek() != Some(&Tok::RParen) {
                    return self.fail(self.pos(), "a `)` is missing");
                }
                self.at += 1;
                self.depth -= 1;
                Ok(e)
            }
            Some(Tok::Ident(w)) if w == "true" || w == "false" => {
                self.at += 1;
                Ok(Expr::Const(w == "true"))
            }
            Some(Tok::Ident(name)) => {
                self.at += 1;
                self.comparison(pos, &name)
            }
            Some(_) => self.fail(pos, "expected a column name, `not`, `(` or true/false"),
            None => self.fail(pos, "the expression ends too early"),
        }
    }

    fn column(&self, pos: usize, name: &str) -> Result<(usize, ColumnType), ExprError> {
        let Some(i) = self.schema.index_of(name) else {
            return self.fail(pos, self.schema.unknown_column(name));
        };
        let spec = &self.schema.columns[i];
        match spec.class {
            ColumnClass::Attribute | ColumnClass::Org | ColumnClass::Flag => Ok((i, spec.ty)),
            ColumnClass::Meta => self.fail(
                pos,
                format!("`{name}` is the Datenstand; a report covers one month, and grouping or filtering by the month would build a time series, which is not allowed"),
            ),
            class => self.fail(pos, format!("`{name}` is {class} data; a report may count by attribute and org columns only")),
        }
    }

    #[allow(clippy::too_many_lines)] // one arm per column type, read side by side
    fn comparison(&mut self, pos: usize, name: &str) -> Result<Expr, ExprError> {
        let (column, ty) = self.column(pos, name)?;
        if self.keyword("is") {
            let negated = self.keyword("not");
            if !self.keyword("null") {
                return self.fail(self.pos(), "expected `null` after `is`");
            }
            return Ok(Expr::IsNull { column, negated });
        }
        if self.keyword("in") {
            if ty != ColumnType::Str {
                return self.fail(pos, format!("`in` needs a text column; `{name}` is {ty}"));
            }
            return self.list(column);
        }
        let Some(Tok::Op(op)) = self.peek().cloned() else {
            return if ty == ColumnType::Bool {
                Ok(Expr::Flag(column))
            } else {
                self.fail(
                    self.pos(),
                    format!(
                        "expected a comparison after `{name}` (=, !=, <, <=, >, >=, in, is null)"
                    ),
                )
            };
        };
        self.at += 1;
        let vpos = self.pos();
        match ty {
            ColumnType::Str => {
                if !matches!(op, Op::Eq | Op::Ne) {
                    return self.fail(vpos, "text is compared with = or != only");
                }
                match self.peek().cloned() {
                    Some(Tok::Str(value)) => {
                        self.at += 1;
                        self.check_value(column, vpos, &value)?;
                        Ok(Expr::StrCmp { column, op, value })
                    }
                    _ => self.fail(
                        vpos,
                        format!("`{name}` is text: compare it with a value in single quotes"),
                    ),
                }
            }
            ColumnType::Bool => {
                if !matches!(op, Op::Eq | Op::Ne) {
                    return self.fail(vpos, "J/N values are compared with = or != only");
                }
                match self.peek().cloned() {
                    Some(Tok::Ident(v)) if v == "J" || v == "N" => {
                        self.at += 1;
                        Ok(Expr::BoolCmp {
                            column,
                            op,
                            value: v == "J",
                        })
                    }
                    _ => self.fail(vpos, format!("`{name}` is J/N: compare it with J or N")),
                }
            }
            ColumnType::Date => {
                if !self.keyword("month_end") {
                    return self.fail(
                        vpos,
                        format!("`{name}` is a date: compare it with `month_end` (minus some days or weeks); \
                                 an absolute date would cut the data into periods, a time series, which is not allowed"),
                    );
                }
                let sign = match self.peek() {
                    Some(Tok::Minus) => -1,
                    Some(Tok::Plus) => 1,
                    _ => {
                        return Ok(Expr::DateCmp {
                            column,
                            op,
                            offset_days: 0,
                        });
                    }
                };
                self.at += 1;
                let npos = self.pos();
                let Some(Tok::Int(n)) = self.peek().cloned() else {
                    return self.fail(npos, "expected a number of days or weeks");
                };
                self.at += 1;
                let unit = if self.keyword("days") || self.keyword("day") {
                    1
                } else if self.keyword("weeks") || self.keyword("week") {
                    7
                } else {
                    return self.fail(self.pos(), "expected `days` or `weeks`");
                };
                if n > 3660 {
                    return self.fail(npos, "a window longer than about ten years is not allowed");
                }
                Ok(Expr::DateCmp {
                    column,
                    op,
                    offset_days: sign * n * unit,
                })
            }
        }
    }

    fn list(&mut self, column: usize) -> Result<Expr, ExprError> {
        if self.peek() != Some(&Tok::LParen) {
            return self.fail(self.pos(), "expected `(` after `in`");
        }
        self.at += 1;
        let mut values = Vec::new();
        loop {
            let vpos = self.pos();
            match self.peek().cloned() {
                Some(Tok::Str(v)) => {
                    self.at += 1;
                    self.check_value(column, vpos, &v)?;
                    values.push(v);
                }
                _ => return self.fail(vpos, "expected a value in single quotes"),
            }
            match self.peek() {
                Some(Tok::Comma) => self.at += 1,
                Some(Tok::RParen) => {
                    self.at += 1;
                    return Ok(Expr::In { column, values });
                }
                _ => return self.fail(self.pos(), "expected `,` or `)`"),
            }
        }
    }

    /// A value that the column can never hold is a typo: refuse it.
    fn check_value(&self, column: usize, pos: usize, value: &str) -> Result<(), ExprError> {
        let spec = &self.schema.columns[column];
        if let Some(values) = &spec.values
            && !values.iter().any(|v| v == value)
        {
            return self.fail(
                pos,
                format!(
                    "`{}` never holds '{value}'; it holds one of: {}",
                    spec.name,
                    values.join(", ")
                ),
            );
        }
        if let Some(pattern) = &spec.pattern
            && !regex::Regex::new(pattern).is_ok_and(|re| re.is_match(value))
        {
            return self.fail(
                pos,
                format!(
                    "'{value}' does not match the pattern of `{}` ({pattern})",
                    spec.name
                ),
            );
        }
        Ok(())
    }
}

/// Evaluates expressions over a batch of typed columns, all rows at once.
pub mod eval {
    use arrow_array::cast::AsArray;
    use arrow_array::types::Date32Type;
    use arrow_array::{Array, RecordBatch};
    use pseudagg_io::TextArray;

    use super::Expr;

    /// One boolean per row.
    #[must_use]
    pub fn eval(e: &Expr, batch: &RecordBatch, month_end_days: i32) -> Vec<bool> {
        let n = batch.num_rows();
        match e {
            Expr::Const(v) => vec![*v; n],
            Expr::Or(parts) => fold(parts, batch, month_end_days, |a, b| a || b),
            Expr::And(parts) => fold(parts, batch, month_end_days, |a, b| a && b),
            Expr::Not(inner) => eval(inner, batch, month_end_days)
                .into_iter()
                .map(|v| !v)
                .collect(),
            Expr::Flag(c) => {
                let a = batch.column(*c).as_boolean();
                (0..n).map(|i| a.is_valid(i) && a.value(i)).collect()
            }
            Expr::BoolCmp { column, op, value } => {
                let a = batch.column(*column).as_boolean();
                (0..n)
                    .map(|i| a.is_valid(i) && op.holds(&a.value(i), value))
                    .collect()
            }
            Expr::StrCmp { column, op, value } => {
                text(batch, *column).mask(|v| op.holds(&v, &value.as_str()))
            }
            Expr::DateCmp {
                column,
                op,
                offset_days,
            } => {
                let a = batch.column(*column).as_primitive::<Date32Type>();
                let bound = i64::from(month_end_days) + offset_days;
                a.iter()
                    .map(|v| v.is_some_and(|v| op.holds(&i64::from(v), &bound)))
                    .collect()
            }
            Expr::In { column, values } => {
                text(batch, *column).mask(|v| values.iter().any(|w| w == v))
            }
            Expr::IsNull { column, negated } => {
                let a = batch.column(*column);
                (0..n).map(|i| a.is_null(i) != *negated).collect()
            }
        }
    }

    /// A text column of the batch, plain or dictionary-encoded.
    fn text(batch: &RecordBatch, column: usize) -> TextArray<'_> {
        TextArray::of(batch.column(column).as_ref()).expect("a text column is read as text")
    }

    fn fold(
        parts: &[Expr],
        batch: &RecordBatch,
        month_end_days: i32,
        f: fn(bool, bool) -> bool,
    ) -> Vec<bool> {
        // A flat chain: one pass per part, no recursion along the chain.
        let mut acc = eval(&parts[0], batch, month_end_days);
        for p in &parts[1..] {
            for (a, b) in acc.iter_mut().zip(eval(p, batch, month_end_days)) {
                *a = f(*a, b);
            }
        }
        acc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Schema {
        Schema::builtin("opds-person").unwrap()
    }

    fn ok(text: &str) -> Expr {
        parse(text, &schema()).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn err(text: &str) -> String {
        parse(text, &schema()).unwrap_err().to_string()
    }

    #[test]
    fn parses_the_report_expressions() {
        let e = ok("elb and staatsangehoerigkeit in ('UKR', 'SYR')");
        assert!(matches!(e, Expr::And(ref v) if v.len() == 2));
        assert!(matches!(ok("elb = J"), Expr::BoolCmp { value: true, .. }));
        assert!(matches!(
            ok("letztes_beratungsgespraech >= month_end - 6 weeks"),
            Expr::DateCmp {
                op: Op::Ge,
                offset_days: -42,
                ..
            }
        ));
        // `not` is pushed down to the comparisons.
        assert!(matches!(
            ok("not (massnahme is null)"),
            Expr::IsNull { negated: true, .. }
        ));
        assert!(matches!(ok("not (massnahme = 'FbW')"), Expr::Or(ref v) if v.len() == 2));
        assert!(matches!(
            ok("not kooperationsplan"),
            Expr::BoolCmp { value: false, .. }
        ));
        assert!(matches!(
            ok("not (letztes_beratungsgespraech > month_end - 6 weeks)"),
            Expr::Not(_)
        ));
        assert!(matches!(
            ok("massnahme is not null"),
            Expr::IsNull { negated: true, .. }
        ));
        ok(
            "integrationskurs = 'abgeschlossen' and (beschaeftigung = 'sv_pflichtig' or beschaeftigung = 'geringfuegig')",
        );
    }

    #[test]
    fn exclusion_is_read_from_the_conjuncts_and_only_where_they_say_so() {
        let x = |a: &str, b: &str| excludes(&ok(a), &ok(b));
        // A null is never compared true: "never advised" and "advised lately" exclude each other.
        assert!(x(
            "letztes_beratungsgespraech is null",
            "letztes_beratungsgespraech > month_end - 13 weeks"
        ));
        assert!(x("massnahme is null", "elb and massnahme is not null"));
        // Lists and equalities with no value in common; date ranges that do not meet.
        assert!(x(
            "staatsangehoerigkeit in ('UKR', 'SYR')",
            "elb and staatsangehoerigkeit = 'AFG'"
        ));
        assert!(x(
            "letztes_beratungsgespraech >= month_end - 6 weeks",
            "letztes_beratungsgespraech < month_end - 6 weeks"
        ));
        assert!(x("elb = J", "elb = N"));
        // Not known to exclude: overlapping lists and ranges, other columns, negations, `or`.
        assert!(!x(
            "staatsangehoerigkeit in ('UKR', 'SYR')",
            "staatsangehoerigkeit in ('SYR', 'AFG')"
        ));
        assert!(!x(
            "letztes_beratungsgespraech >= month_end - 6 weeks",
            "letztes_beratungsgespraech > month_end - 13 weeks"
        ));
        assert!(!x(
            "massnahme is null",
            "letztes_beratungsgespraech is null"
        ));
        assert!(!x(
            "massnahme is null",
            "not (massnahme is null) or letztes_beratungsgespraech is null"
        ));
        assert!(!x("elb", "elb"));
        // A negation excludes what it negates, and `!=` the equality it denies.
        assert!(x("kooperationsplan", "not kooperationsplan"));
        assert!(x("elb and not (massnahme is null)", "massnahme is null"));
        assert!(x(
            "not (staatsangehoerigkeit in ('UKR', 'SYR'))",
            "staatsangehoerigkeit = 'SYR'"
        ));
        assert!(x(
            "beschaeftigung != 'keine'",
            "elb and beschaeftigung = 'keine'"
        ));
        assert!(!x(
            "beschaeftigung != 'keine'",
            "beschaeftigung = 'ausbildung'"
        ));
        assert!(!x(
            "not (staatsangehoerigkeit in ('UKR', 'SYR'))",
            "staatsangehoerigkeit in ('SYR', 'AFG')"
        ));
        assert!(!x("not kooperationsplan", "not kooperationsplan"));
    }

    #[test]
    fn cover_is_read_from_the_expressions_and_only_where_they_say_so() {
        let c = |parts: &[&str]| {
            let parsed: Vec<Expr> = parts.iter().map(|p| ok(p)).collect();
            covers(
                &parsed.iter().collect::<Vec<_>>(),
                &Expr::Const(true),
                &schema(),
            )
        };
        // An expression and its negation; an equality and its `!=` (a column never empty).
        assert!(c(&["kooperationsplan", "not kooperationsplan"]));
        assert!(c(&[
            "massnahme = 'FbW' and elb",
            "not (massnahme = 'FbW' and elb)"
        ]));
        assert!(c(&[
            "beschaeftigung = 'keine'",
            "beschaeftigung != 'keine'"
        ]));
        // Both values of a flag that is never empty; every value the schema allows.
        assert!(c(&["kooperationsplan", "kooperationsplan = N"]));
        assert!(c(&[
            "beschaeftigung in ('keine', 'sv_pflichtig')",
            "beschaeftigung = 'geringfuegig'",
            "beschaeftigung in ('selbststaendig', 'ausbildung')"
        ]));
        // A column that may be empty needs its `is null`.
        assert!(!c(&["massnahme = 'FbW'", "massnahme != 'FbW'"]));
        assert!(c(&[
            "massnahme = 'FbW'",
            "massnahme != 'FbW'",
            "massnahme is null"
        ]));
        assert!(c(&["massnahme is null", "massnahme is not null"]));
        // Not known to cover: a value left out, other columns, an `or` of the parts.
        assert!(!c(&[
            "beschaeftigung in ('keine', 'sv_pflichtig')",
            "beschaeftigung = 'geringfuegig'"
        ]));
        assert!(!c(&["kooperationsplan", "not elb"]));
        assert!(!c(&[
            "beschaeftigung = 'keine'",
            "beschaeftigung != 'ausbildung'"
        ]));
        assert!(!c(&["kooperationsplan or elb"]));
        // Within a population: the nationalities it counts, a flag it fixes, a column it
        // rules empty out of.
        let within = |parts: &[&str], context: &str| {
            let parsed: Vec<Expr> = parts.iter().map(|p| ok(p)).collect();
            covers(&parsed.iter().collect::<Vec<_>>(), &ok(context), &schema())
        };
        let population = "elb and staatsangehoerigkeit in ('UKR', 'SYR', 'AFG')";
        assert!(within(
            &[
                "staatsangehoerigkeit = 'UKR'",
                "staatsangehoerigkeit in ('SYR', 'AFG')"
            ],
            population
        ));
        assert!(!within(
            &[
                "staatsangehoerigkeit = 'UKR'",
                "staatsangehoerigkeit = 'SYR'"
            ],
            population
        ));
        assert!(within(&["elb = J"], population));
        assert!(within(
            &["massnahme = 'FbW'", "massnahme != 'FbW'"],
            "massnahme is not null"
        ));
    }

    #[test]
    fn inclusion_is_read_from_the_conjuncts_and_only_where_they_say_so() {
        let i = |a: &str, b: &str| implies(&ok(a), &ok(b));
        assert!(i("massnahme = 'Berufssprachkurs'", "massnahme is not null"));
        assert!(i(
            "elb and staatsangehoerigkeit = 'UKR'",
            "staatsangehoerigkeit in ('UKR', 'SYR')"
        ));
        assert!(i(
            "letztes_beratungsgespraech > month_end - 6 weeks",
            "letztes_beratungsgespraech > month_end - 13 weeks"
        ));
        assert!(i("elb and massnahme is null", "massnahme is null"));
        assert!(!i(
            "massnahme is not null",
            "massnahme = 'Berufssprachkurs'"
        ));
        assert!(!i(
            "staatsangehoerigkeit in ('UKR', 'SYR')",
            "staatsangehoerigkeit = 'UKR'"
        ));
        assert!(!i(
            "letztes_beratungsgespraech > month_end - 13 weeks",
            "letztes_beratungsgespraech > month_end - 6 weeks"
        ));
        assert!(!i("massnahme is null or elb", "massnahme is null"));
        // Into an `or` through one of its branches; into a `!=` from a value it is not.
        assert!(i(
            "elb and massnahme is null",
            "massnahme is null or kooperationsplan"
        ));
        assert!(i(
            "beschaeftigung = 'keine'",
            "beschaeftigung != 'ausbildung'"
        ));
        assert!(!i("beschaeftigung = 'keine'", "beschaeftigung != 'keine'"));
        assert!(!i("elb", "massnahme is null or kooperationsplan"));
    }

    #[test]
    fn refuses_time_series_and_personal_columns_with_position() {
        assert!(err("datenstand = '2025-03'").contains("time series"));
        let e = err("elb and integrationskurs_ende >= '01.01.2025'");
        assert!(
            e.starts_with("at character 34") && e.contains("time series"),
            "{e}"
        );
        assert!(err("nachname = 'Meier'").contains("personal data"));
        assert!(err("fachkraft_id = 'x'").contains("staff data"));
        assert!(err("kundennummer is null").contains("identifier data"));
    }

    #[test]
    fn reports_unknown_columns_types_and_typos() {
        assert_eq!(
            err("elb and integrationskur = 'x'"),
            "at character 9: `integrationskur` is not a column of the schema `opds-person`; did you mean `integrationskurs`?"
        );
        assert!(err("elb = 'J'").contains("compare it with J or N"));
        assert!(err("integrationskurs = 'abgeschlosen'").contains("never holds"));
        assert!(err("integrationskurs < 'a'").contains("= or != only"));
        assert!(err("elb and (sprachniveau = 'A1'").contains("`)` is missing"));
        assert!(err("").contains("empty"));
        assert!(err("elb elb").contains("after the end"));
    }

    /// Issue 18: 10,000 brackets overflowed the stack (exit 134).
    #[test]
    fn deep_nesting_is_refused_with_its_position_not_a_crash() {
        let deep = format!("{}elb{}", "(".repeat(1_000), ")".repeat(1_000));
        let e = err(&deep);
        assert!(
            e.starts_with("at character 65:") && e.contains("nested more than 64"),
            "{e}"
        );
        // 10,000 deep is refused as well (it is also too long), never a stack overflow.
        let deeper = format!("{}elb{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(err(&deeper).contains("more than"));
        let nots = format!("{}elb", "not ".repeat(1_000));
        assert!(err(&nots).contains("nested more than 64"));
        // The limit itself is allowed.
        let ok64 = format!("{}elb{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert_eq!(ok(&ok64), Expr::Flag(schema().index_of("elb").unwrap()));
        let e = err(&format!(
            "{}elb{}",
            "(".repeat(MAX_DEPTH + 1),
            ")".repeat(MAX_DEPTH + 1)
        ));
        assert!(e.contains("nested more than"), "{e}");
    }

    #[test]
    fn long_chains_are_flat_and_bounded() {
        let chain = vec!["elb"; 4_000].join(" and ");
        let Expr::And(parts) = ok(&chain) else {
            panic!("a flat chain")
        };
        assert_eq!(parts.len(), 4_000);
        let e = err(&vec!["elb"; 50_000].join(" and "));
        assert!(e.contains("more than 10000"), "{e}");
    }
}
