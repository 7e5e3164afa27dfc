//! Turning one arrow column into per-row class keys (`Option<String>`, `None` for null) and
//! size weights. Strings are taken as they are; integers and booleans by their decimal text.

use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrowPrimitiveType};
use arrow_schema::DataType;

use crate::input::InputError;

/// True when a column of this type can name classes.
pub fn is_class_type(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Boolean
    ) || dt.is_integer()
}

/// The `WrongColumnType` error for `column` of `path`, found `dt`, `expected` something else.
pub fn wrong_type(path: &Path, column: &str, dt: &DataType, expected: &str) -> InputError {
    InputError::WrongColumnType {
        path: path.display().to_string(),
        column: column.to_string(),
        found: dt.to_string(),
        expected: expected.to_string(),
    }
}

/// A `WrongColumnType` error unless `dt` can name classes.
pub fn check_class_type(dt: &DataType, path: &Path, column: &str) -> Result<(), InputError> {
    if is_class_type(dt) {
        Ok(())
    } else {
        Err(wrong_type(
            path,
            column,
            dt,
            "a string, integer or boolean class",
        ))
    }
}

fn prim<T: ArrowPrimitiveType>(array: &dyn Array) -> Vec<Option<String>>
where
    T::Native: ToString,
{
    array
        .as_primitive::<T>()
        .iter()
        .map(|v| v.map(|n| n.to_string()))
        .collect()
}

/// The class key of every row of `array`.
pub fn class_keys(array: &dyn Array) -> Result<Vec<Option<String>>, String> {
    let owned =
        |it: &mut dyn Iterator<Item = Option<&str>>| it.map(|v| v.map(str::to_owned)).collect();
    Ok(match array.data_type() {
        DataType::Utf8 => owned(&mut array.as_string::<i32>().iter()),
        DataType::LargeUtf8 => owned(&mut array.as_string::<i64>().iter()),
        DataType::Utf8View => owned(&mut array.as_string_view().iter()),
        DataType::Boolean => array
            .as_boolean()
            .iter()
            .map(|v| v.map(|b| b.to_string()))
            .collect(),
        DataType::Int8 => prim::<Int8Type>(array),
        DataType::Int16 => prim::<Int16Type>(array),
        DataType::Int32 => prim::<Int32Type>(array),
        DataType::Int64 => prim::<Int64Type>(array),
        DataType::UInt8 => prim::<UInt8Type>(array),
        DataType::UInt16 => prim::<UInt16Type>(array),
        DataType::UInt32 => prim::<UInt32Type>(array),
        DataType::UInt64 => prim::<UInt64Type>(array),
        other => return Err(format!("unsupported class column type {other}")),
    })
}

fn prim_sizes<T: ArrowPrimitiveType>(array: &dyn Array) -> Vec<u64>
where
    T::Native: TryInto<u64>,
{
    array
        .as_primitive::<T>()
        .iter()
        .map(|v| v.and_then(|n| n.try_into().ok()).unwrap_or(0))
        .collect()
}

/// The size weight of every row of an integer column; null or negative sizes weigh 0.
pub fn sizes(array: &dyn Array) -> Vec<u64> {
    match array.data_type() {
        DataType::Int8 => prim_sizes::<Int8Type>(array),
        DataType::Int16 => prim_sizes::<Int16Type>(array),
        DataType::Int32 => prim_sizes::<Int32Type>(array),
        DataType::Int64 => prim_sizes::<Int64Type>(array),
        DataType::UInt8 => prim_sizes::<UInt8Type>(array),
        DataType::UInt16 => prim_sizes::<UInt16Type>(array),
        DataType::UInt32 => prim_sizes::<UInt32Type>(array),
        DataType::UInt64 => prim_sizes::<UInt64Type>(array),
        _ => vec![0; array.len()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int64Array, StringArray};

    #[test]
    fn strings_and_nulls_become_keys() {
        let a = StringArray::from(vec![Some("a"), None, Some("b")]);
        assert_eq!(
            class_keys(&a).unwrap(),
            vec![Some("a".to_string()), None, Some("b".to_string())]
        );
    }

    #[test]
    fn integers_become_decimal_keys_and_sizes() {
        let a = Int64Array::from(vec![Some(7), None, Some(-1)]);
        assert_eq!(
            class_keys(&a).unwrap(),
            vec![Some("7".to_string()), None, Some("-1".to_string())]
        );
        assert_eq!(sizes(&a), vec![7, 0, 0]);
    }
}
