//! Text columns as a reader hands them out: plain `Utf8`, or `Dictionary(Int32, Utf8)` where a
//! Parquet extract is read with [`crate::ReadOptions::dictionaries`]. A dictionary column's
//! distinct values are judged once, and its rows compared by key.

use arrow_array::cast::AsArray;
use arrow_array::types::Int32Type;
use arrow_array::{Array, DictionaryArray, Int32Array, StringArray};
use arrow_schema::DataType;

/// The type of a dictionary-encoded text column as readers hand it out.
#[must_use]
pub fn dictionary_text() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

/// A text column, plain or dictionary-encoded.
#[derive(Debug, Clone, Copy)]
pub enum TextArray<'a> {
    Plain(&'a StringArray),
    /// Every key is an index into `values` (checked when the reader decoded it).
    Dictionary {
        keys: &'a Int32Array,
        values: &'a StringArray,
    },
}

impl<'a> TextArray<'a> {
    /// The column as text; `None` when it is neither `Utf8` nor `Dictionary(Int32, Utf8)`.
    #[must_use]
    pub fn of(array: &'a dyn Array) -> Option<Self> {
        if let Some(plain) = array.as_string_opt::<i32>() {
            return Some(Self::Plain(plain));
        }
        let dict: &DictionaryArray<Int32Type> = array.as_dictionary_opt()?;
        Some(Self::Dictionary {
            keys: dict.keys(),
            values: dict.values().as_string_opt::<i32>()?,
        })
    }

    #[must_use]
    pub fn len(&self) -> usize {
        match self {
            Self::Plain(a) => a.len(),
            Self::Dictionary { keys, .. } => keys.len(),
        }
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Row `i`'s value; `None` for a null.
    #[must_use]
    pub fn value(&self, i: usize) -> Option<&'a str> {
        match self {
            Self::Plain(a) => a.is_valid(i).then(|| a.value(i)),
            Self::Dictionary { keys, values } => keys
                .is_valid(i)
                .then(|| values.value(keys.value(i) as usize)),
        }
    }

    /// Row `i`'s key in the dictionary: rows with one key hold one value. `None` for a plain
    /// column or a null.
    #[must_use]
    pub fn key(&self, i: usize) -> Option<usize> {
        match self {
            Self::Plain(_) => None,
            Self::Dictionary { keys, .. } => keys.is_valid(i).then(|| keys.value(i) as usize),
        }
    }

    /// For each row, whether its value (not null) meets `holds`; a dictionary's values are each
    /// judged once.
    #[must_use]
    pub fn mask(&self, holds: impl Fn(&str) -> bool) -> Vec<bool> {
        match self {
            Self::Plain(a) => a.iter().map(|v| v.is_some_and(&holds)).collect(),
            Self::Dictionary { keys, values } => {
                let on: Vec<bool> = values.iter().map(|v| v.is_some_and(&holds)).collect();
                if keys.null_count() == 0 {
                    keys.values().iter().map(|&k| on[k as usize]).collect()
                } else {
                    keys.iter()
                        .map(|k| k.is_some_and(|k| on[k as usize]))
                        .collect()
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn plain_and_dictionary_columns_read_alike() {
        let rows = [Some("b"), None, Some("a"), Some("b"), Some("c")];
        let plain = StringArray::from(rows.to_vec());
        let dict: DictionaryArray<Int32Type> = rows.iter().copied().collect();
        let dict_ref: Arc<dyn Array> = Arc::new(dict);
        let (p, d) = (
            TextArray::of(&plain).unwrap(),
            TextArray::of(dict_ref.as_ref()).unwrap(),
        );
        for (i, &row) in rows.iter().enumerate() {
            assert_eq!(p.value(i), row);
            assert_eq!(d.value(i), row);
        }
        assert_eq!(p.key(0), None);
        assert_eq!(d.key(0), d.key(3));
        assert_ne!(d.key(0), d.key(2));
        assert_eq!(d.key(1), None);
        // A null meets nothing, in either form.
        for holds in [|v: &str| v != "a", |v: &str| v == "c"] {
            assert_eq!(p.mask(holds), d.mask(holds));
        }
        assert_eq!(d.mask(|v| v != "a"), vec![true, false, false, true, true]);
        assert!(TextArray::of(&Int32Array::from(vec![1])).is_none());
    }
}
