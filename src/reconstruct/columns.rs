//! Column handling of `ldawt reconstruct`: checks that the image column holds bytes (plain
//! binary, or the Hugging Face `{bytes, path}` struct) and extracts each row's bytes.

use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::{Array, StructArray};
use arrow_schema::DataType;

use crate::input::InputError;

fn is_binary(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Binary
            | DataType::LargeBinary
            | DataType::BinaryView
            | DataType::FixedSizeBinary(_)
    )
}

/// A `WrongColumnType` error unless `dt` can hold image bytes.
pub fn check_image_type(dt: &DataType, path: &Path, column: &str) -> Result<(), InputError> {
    let ok = match dt {
        DataType::Struct(fields) => fields
            .iter()
            .any(|f| f.name() == "bytes" && is_binary(f.data_type())),
        other => is_binary(other),
    };
    if ok {
        Ok(())
    } else {
        Err(crate::split::wrong_type(
            path,
            column,
            dt,
            "binary image bytes or a {bytes, path} struct",
        ))
    }
}

fn binary_values(array: &dyn Array) -> Vec<Option<&[u8]>> {
    match array.data_type() {
        DataType::Binary => array.as_binary::<i32>().iter().collect(),
        DataType::LargeBinary => array.as_binary::<i64>().iter().collect(),
        DataType::BinaryView => array.as_binary_view().iter().collect(),
        DataType::FixedSizeBinary(_) => array.as_fixed_size_binary().iter().collect(),
        _ => vec![None; array.len()],
    }
}

/// Each row's image bytes (`None` when the cell, the struct or its `bytes` field is null).
pub fn image_values(array: &dyn Array) -> Vec<Option<&[u8]>> {
    if let Some(s) = array.as_any().downcast_ref::<StructArray>() {
        let Some(bytes) = s.column_by_name("bytes") else {
            return vec![None; array.len()];
        };
        return binary_values(bytes.as_ref())
            .into_iter()
            .enumerate()
            .map(|(i, v)| if s.is_null(i) { None } else { v })
            .collect();
    }
    binary_values(array)
}
