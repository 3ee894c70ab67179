//! Helpers shared by the data-driven signing tests.
#![allow(dead_code)]

use libtest_mimic::Failed;
use serde_json::Value;

/// A JSON object of strings, or an array of `[name, value]` pairs, as pairs.
pub fn pairs(value: &Value) -> Vec<(String, String)> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    match value {
        Value::Object(map) => map.iter().map(|(k, v)| (k.clone(), text(v))).collect(),
        Value::Array(list) => list
            .iter()
            .map(|pair| (text(&pair[0]), text(&pair[1])))
            .collect(),
        _ => Vec::new(),
    }
}

/// A string member, or a failure naming it.
pub fn str_field<'a>(value: &'a Value, key: &str) -> Result<&'a str, Failed> {
    value[key]
        .as_str()
        .ok_or_else(|| format!("no string {key:?} in the case").into())
}

/// Fails with both texts when they differ.
pub fn expect_eq(what: &str, expected: &str, got: &str) -> Result<(), Failed> {
    if expected == got {
        Ok(())
    } else {
        Err(format!("{what} differs\nexpected: {expected:?}\n     got: {got:?}").into())
    }
}

/// Compares two field lists as sets of pairs.
pub fn expect_same_fields(
    mut expected: Vec<(String, String)>,
    mut got: Vec<(String, String)>,
) -> Result<(), Failed> {
    expected.sort();
    got.sort();
    if expected == got {
        Ok(())
    } else {
        Err(format!("fields differ\nexpected: {expected:#?}\n     got: {got:#?}").into())
    }
}
