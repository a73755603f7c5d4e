//! Reading a biometric embedding from JSON: what `postern client enroll
//! --biometric FILE` and `postern client login --biometric FILE` take.
//!
//! The file holds one JSON array of exactly [`DIMENSIONS`] (128) numbers,
//! the output of a face or voice model; scale does not matter (it is
//! L2-normalised before quantising, see [`crate::biometric`]). The errors
//! say what is wrong in the terms of the file, because this is where a
//! new user's first try fails: a wrong length, a string, a `NaN` written
//! by Python's `json.dumps`, a number too large for `f32`, or all zeros.

pub use postern_auth::biometric::DIMENSIONS;

/// Why a file's text is not an embedding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmbeddingError {
    #[error("not JSON ({0}); an embedding is a JSON array of {DIMENSIONS} numbers")]
    NotJson(String),
    #[error("NaN and Infinity are not numbers an embedding may hold (JSON has neither; Python's json.dumps writes them unless allow_nan=False)")]
    NotFinite,
    #[error("not a JSON array; an embedding is a JSON array of {DIMENSIONS} numbers")]
    NotAnArray,
    #[error("holds {0} numbers; an embedding has exactly {DIMENSIONS}")]
    WrongLength(usize),
    #[error("item {index} (counting from 0) is not a number: {found}")]
    NotANumber { index: usize, found: String },
    #[error("item {0} (counting from 0) is too large for a 32-bit float")]
    OutOfRange(usize),
    #[error("every number is zero; an embedding needs a direction")]
    Zero,
}

/// Parses `text` as an embedding of [`DIMENSIONS`] finite numbers, not
/// all zero.
pub fn parse(text: &str) -> Result<Vec<f32>, EmbeddingError> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        if ["NaN", "Infinity"].iter().any(|word| text.contains(word)) {
            EmbeddingError::NotFinite
        } else {
            EmbeddingError::NotJson(e.to_string())
        }
    })?;
    let items = value.as_array().ok_or(EmbeddingError::NotAnArray)?;
    if items.len() != DIMENSIONS {
        return Err(EmbeddingError::WrongLength(items.len()));
    }
    let mut embedding = Vec::with_capacity(DIMENSIONS);
    for (index, item) in items.iter().enumerate() {
        let number = item.as_f64().ok_or_else(|| EmbeddingError::NotANumber {
            index,
            found: shorten(&item.to_string()),
        })?;
        let narrowed = number as f32;
        if !narrowed.is_finite() {
            return Err(EmbeddingError::OutOfRange(index));
        }
        embedding.push(narrowed);
    }
    if embedding.iter().all(|v| *v == 0.0) {
        return Err(EmbeddingError::Zero);
    }
    Ok(embedding)
}

/// `text` cut to a length that fits an error message.
fn shorten(text: &str) -> String {
    const MAX: usize = 40;
    match text.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_string(),
    }
}

/// `embedding` as the JSON text [`parse`] reads (one array, six decimals:
/// far below the quantisation step of 1/64 of the unit vector).
pub fn to_json(embedding: &[f32]) -> String {
    let items: Vec<String> = embedding.iter().map(|v| format!("{v:.6}")).collect();
    format!("[{}]\n", items.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::biometric::TestPerson;

    fn array_of(items: &[&str]) -> String {
        format!("[{}]", items.join(","))
    }

    #[test]
    fn a_written_embedding_reads_back_within_the_rounding() {
        let person = TestPerson::new(3).capture(0.2, 4);
        let read = parse(&to_json(&person)).unwrap();
        assert_eq!(read.len(), DIMENSIONS);
        for (a, b) in read.iter().zip(&person) {
            assert!((a - b).abs() <= 5e-7, "{a} vs {b}");
        }
    }

    #[test]
    fn each_kind_of_bad_file_gets_its_own_error() {
        let ones = vec!["1"; DIMENSIONS];
        assert_eq!(parse(&array_of(&ones)).map(|e| e.len()), Ok(DIMENSIONS));
        assert_eq!(
            parse(&array_of(&ones[..127])),
            Err(EmbeddingError::WrongLength(127))
        );
        assert_eq!(parse("[]"), Err(EmbeddingError::WrongLength(0)));
        assert_eq!(
            parse(&array_of(&vec!["1"; 129])),
            Err(EmbeddingError::WrongLength(129))
        );
        let mut with_string = ones.clone();
        with_string[5] = "\"0.5\"";
        assert_eq!(
            parse(&array_of(&with_string)),
            Err(EmbeddingError::NotANumber {
                index: 5,
                found: "\"0.5\"".into()
            })
        );
        let mut with_null = ones.clone();
        with_null[0] = "null";
        assert!(matches!(
            parse(&array_of(&with_null)),
            Err(EmbeddingError::NotANumber { index: 0, .. })
        ));
        for literal in ["NaN", "Infinity", "-Infinity"] {
            let mut with_nan = ones.clone();
            with_nan[9] = literal;
            assert_eq!(
                parse(&array_of(&with_nan)),
                Err(EmbeddingError::NotFinite),
                "{literal}"
            );
        }
        let mut huge = ones.clone();
        huge[7] = "1e39";
        assert_eq!(parse(&array_of(&huge)), Err(EmbeddingError::OutOfRange(7)));
        assert_eq!(
            parse(&array_of(&vec!["0"; DIMENSIONS])),
            Err(EmbeddingError::Zero)
        );
        assert_eq!(
            parse("{\"embedding\": [1, 2]}"),
            Err(EmbeddingError::NotAnArray)
        );
        assert!(matches!(parse("[1, 2,"), Err(EmbeddingError::NotJson(_))));
        assert_eq!(
            EmbeddingError::WrongLength(127).to_string(),
            "holds 127 numbers; an embedding has exactly 128"
        );
    }
}
