//! Sealing the secrets that an earlier version stored in clear: every stored spec,
//! of a task or a schedule, gets each of its `secrets` values passed through the
//! runtime's seal, once per database (see [`crate::Store::seal_clear_secrets`]).

use crate::StoreError;
use std::sync::Arc;

/// Seals one stored value: the sealed text, or `None` for a value already sealed.
pub type Seal = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The name in `cursors` marking a database whose secrets were all sealed.
pub(crate) const SEALED_MARK: &str = "secrets-sealed";

/// Where a task spec keeps its secrets, and where a schedule's does.
pub(crate) const IN_TASK: &[&str] = &["secrets"];
pub(crate) const IN_SCHEDULE: &[&str] = &["task", "secrets"];

/// The stored spec `json` with the values of the `secrets` object at `path` sealed;
/// `None` when none was in clear.
pub(crate) fn reseal(json: &str, path: &[&str], seal: &Seal) -> Result<Option<String>, StoreError> {
    let mut spec: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| StoreError::Corrupt(format!("a stored spec is not JSON: {e}")))?;
    let mut at = &mut spec;
    for key in path {
        match at.get_mut(*key) {
            Some(v) => at = v,
            None => return Ok(None),
        }
    }
    let Some(secrets) = at.as_object_mut() else {
        return Ok(None);
    };
    let mut changed = false;
    for value in secrets.values_mut() {
        if let Some(clear) = value.as_str()
            && let Some(sealed) = seal(clear)
        {
            *value = serde_json::Value::String(sealed);
            changed = true;
        }
    }
    if !changed {
        return Ok(None);
    }
    serde_json::to_string(&spec)
        .map(Some)
        .map_err(|e| StoreError::Corrupt(format!("a resealed spec: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_clear_values_are_sealed_and_the_rest_is_kept() {
        let seal: Seal = Arc::new(|v: &str| (!v.starts_with("S:")).then(|| format!("S:{v}")));
        let json = r#"{"command":"x","secrets":{"A":"one","B":"S:two"},"env":{"C":"three"}}"#;
        let out = reseal(json, IN_TASK, &seal).unwrap().unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["secrets"]["A"], "S:one");
        assert_eq!(v["secrets"]["B"], "S:two");
        assert_eq!(v["env"]["C"], "three");
        assert_eq!(reseal(&out, IN_TASK, &seal).unwrap(), None, "sealed once");
        assert_eq!(reseal(r#"{"command":"x"}"#, IN_TASK, &seal).unwrap(), None);
        let sched = r#"{"name":"n","task":{"command":"x","secrets":{"A":"one"}}}"#;
        let out = reseal(sched, IN_SCHEDULE, &seal).unwrap().unwrap();
        assert!(out.contains(r#""A":"S:one""#), "{out}");
    }
}
